"""The multi-task network: one shared encoder, a topic head and a sentiment head."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, PretrainedConfig

from inference.bundle import ENCODER_DIR, WEIGHTS, Bundle


class MultiTaskClassifier(nn.Module):
    """Mean-pooled encoder output feeds two linear heads, so one encoder pass scores both tasks."""

    def __init__(
        self, encoder: nn.Module, num_topics: int, num_sentiments: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        # A head with zero classes still exists so that every bundle has the same two outputs.
        self.topic_head = nn.Linear(hidden, max(num_topics, 1))
        self.sentiment_head = nn.Linear(hidden, max(num_sentiments, 1))

    @classmethod
    def from_config(
        cls, config: PretrainedConfig, num_topics: int, num_sentiments: int
    ) -> MultiTaskClassifier:
        return cls(AutoModel.from_config(config, add_pooling_layer=False), num_topics, num_sentiments)

    @classmethod
    def from_pretrained(cls, encoder_dir: str, num_topics: int, num_sentiments: int) -> MultiTaskClassifier:
        encoder = AutoModel.from_pretrained(encoder_dir, add_pooling_layer=False)
        return cls(encoder, num_topics, num_sentiments)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        pooled = self.dropout(pooled)
        return self.topic_head(pooled), self.sentiment_head(pooled)


def load_module(bundle: Bundle) -> MultiTaskClassifier:
    """Rebuilds the network from a bundle's encoder config and safetensors weights."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(bundle.path(ENCODER_DIR)))
    module = MultiTaskClassifier.from_config(config, len(bundle.topic_labels), len(bundle.sentiment_labels))
    module.load_state_dict(load_file(str(bundle.path(WEIGHTS))))
    return module
