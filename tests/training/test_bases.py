"""The base-encoder catalogue: ONNX-to-BertModel conversion, its refusals, the pinned checksum, names."""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizer
from typer.testing import CliRunner

from finsentry.cli import app
from foundation.settings import Settings, get_settings
from inference.bundle import sha256_of
from training.bases import (
    BGE_SMALL_ZH,
    CHECK_TEXTS,
    MARKER,
    BaseEncoder,
    BaseModelError,
    BertShape,
    Downloader,
    MavenOnnx,
    convert_onnx_bert,
    describe_base,
    packaged_base_model,
    prepare_base,
    prepared_folder,
    resolve_base_model,
)

TINY = BertShape(
    vocab_size=0,  # set from the tiny vocabulary below
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
)


class Traceable(BertModel):
    """BertModel returning last_hidden_state alone, so the export's names stay the Hugging Face ones."""

    def forward(  # type: ignore[override]
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return (
            super()
            .forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            .last_hidden_state
        )


@dataclasses.dataclass(frozen=True)
class TinyExport:
    model: BertModel
    shape: BertShape
    onnx_path: Path
    tokenizer_json: Path
    jar: Path


def tiny_vocab() -> dict[str, int]:
    chars = sorted({c for text in CHECK_TEXTS for c in text if not c.isspace()})
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    return {token: i for i, token in enumerate(tokens)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyExport:
    """A random 2-layer BERT exported like the real file: same inputs, opset, transposed MatMul weights."""
    out = tmp_path_factory.mktemp("tiny-export")
    vocab = tiny_vocab()
    shape = dataclasses.replace(TINY, vocab_size=len(vocab))
    torch.manual_seed(0)
    model = Traceable(BertConfig(**dataclasses.asdict(shape)), add_pooling_layer=False).eval()
    with torch.no_grad():
        # Distinct values everywhere: the exporter merges equal initializers (zero biases, unit norms).
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=False)
    batch = tokenizer(list(CHECK_TEXTS[:2]), padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    onnx_path = out / "tiny.onnx"
    torch.onnx.export(
        model,
        tuple(batch[name] for name in names),
        str(onnx_path),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )
    tokenizer_json = out / "tokenizer.json"
    tokenizer.backend_tokenizer.save(str(tokenizer_json))
    jar = out / "tiny.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        archive.write(onnx_path, "tiny.onnx")
        archive.write(tokenizer_json, "tiny-tokenizer.json")
    return TinyExport(model, shape, onnx_path, tokenizer_json, jar)


def tiny_entry(tiny: TinyExport, **changes: object) -> BaseEncoder:
    obtain = MavenOnnx("test:tiny:1", sha256_of(tiny.jar), "tiny.onnx", "tiny-tokenizer.json", tiny.shape)
    base = BaseEncoder("tiny-zh", "zh", "MIT", 1, 0.1, "a test export", obtain)
    return dataclasses.replace(base, obtain=dataclasses.replace(obtain, **changes))


def fetch_from(jar: Path, copy_to: Path | None = None) -> Downloader:
    def download(artifact: str, into: Path) -> Path:
        target = copy_to or into / jar.name
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(jar, target))

    return download


def edited(tiny: TinyExport, tmp_path: Path, edit: Callable[[onnx.GraphProto], None]) -> Path:
    proto = onnx.load(str(tiny.onnx_path))
    edit(proto.graph)
    path = tmp_path / "edited.onnx"
    onnx.save(proto, str(path))
    return path


def initializer(graph: onnx.GraphProto, name: str) -> onnx.TensorProto:
    return next(init for init in graph.initializer if init.name == name)


def matmul_weights(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    return [init for init in graph.initializer if init.name.startswith("onnx::MatMul")]


def test_the_converter_reproduces_the_exported_model(tiny: TinyExport) -> None:
    converted = convert_onnx_bert(tiny.onnx_path, tiny.shape)
    original = tiny.model.state_dict()
    assert converted.state_dict().keys() == original.keys()
    for name, tensor in converted.state_dict().items():
        assert torch.equal(tensor, original[name]), name


def test_a_fetched_export_is_converted_checked_and_described(tiny: TinyExport, tmp_path: Path) -> None:
    base = tiny_entry(tiny)
    steps: list[str] = []
    folder = prepare_base(base, tmp_path, download=fetch_from(tiny.jar), progress=steps.append)

    assert folder == tmp_path / "bases" / "tiny-zh"
    assert [p.name for p in (tmp_path / "bases").iterdir()] == ["tiny-zh"]  # no staging left behind
    assert len(steps) == 3
    record = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    assert record["sha256"] == sha256_of(tiny.jar)
    assert record["max_abs_diff"] < 1e-4
    assert describe_base(folder) == {**record, "path": str(folder)}
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert tokenizer.is_fast and not tokenizer.do_lower_case
    batch = tokenizer(list(CHECK_TEXTS), padding=True, return_tensors="pt")
    assert tokenizer.unk_token_id not in batch["input_ids"]
    model = AutoModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
    with torch.no_grad():
        expected = tiny.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        actual = model(**batch).last_hidden_state
    assert torch.allclose(actual, expected, atol=1e-5)
    # Prepared once: the next use neither fetches nor converts.
    assert prepare_base(base, tmp_path, download=lambda *_: pytest.fail("fetched again")) == folder


def test_a_conversion_that_does_not_reproduce_the_graph_is_refused(tiny: TinyExport, tmp_path: Path) -> None:
    # Same weight shapes, different attention: only the numerical check can tell.
    wrong = dataclasses.replace(tiny.shape, num_attention_heads=4)
    with pytest.raises(
        BaseModelError, match=r"differs from the ONNX graph by \S+ \(at most 0\.0001 allowed\)"
    ):
        prepare_base(tiny_entry(tiny, shape=wrong), tmp_path, download=fetch_from(tiny.jar))
    assert list((tmp_path / "bases").iterdir()) == []


def drop_first_matmul_weight(graph: onnx.GraphProto) -> None:
    graph.initializer.remove(matmul_weights(graph)[0])


def widen_layer_norm(graph: onnx.GraphProto) -> None:
    init = initializer(graph, "embeddings.LayerNorm.weight")
    init.CopyFrom(numpy_helper.from_array(np.ones(31, dtype=np.float32), init.name))


def transpose_intermediate(graph: onnx.GraphProto) -> None:
    init = next(init for init in matmul_weights(graph) if list(init.dims) == [32, 64])  # layer 0
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).T.copy(), init.name))


def drop_a_bias(graph: onnx.GraphProto) -> None:
    graph.initializer.remove(initializer(graph, "encoder.layer.1.output.LayerNorm.bias"))


def add_a_classifier(graph: onnx.GraphProto) -> None:
    graph.initializer.append(numpy_helper.from_array(np.ones((3, 32), dtype=np.float32), "classifier.weight"))


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (drop_first_matmul_weight, r"11 MatMul weight initializers; a 2-layer BERT has 12"),
        (widen_layer_norm, r"wrong shapes: embeddings\.LayerNorm\.weight \(31,\) \(expected \(32,\)\)"),
        (transpose_intermediate, r"wrong shapes: encoder\.layer\.0\.intermediate\.dense\.weight \(32, 64\)"),
        (drop_a_bias, r"lacks 1 weights: encoder\.layer\.1\.output\.LayerNorm\.bias"),
        (add_a_classifier, r"1 unmapped weights: classifier\.weight"),
    ],
)
def test_a_graph_of_another_layout_is_refused(
    tiny: TinyExport, tmp_path: Path, edit: Callable[[onnx.GraphProto], None], problem: str
) -> None:
    with pytest.raises(BaseModelError, match=problem):
        convert_onnx_bert(edited(tiny, tmp_path, edit), tiny.shape)


def test_a_fetched_file_with_the_wrong_checksum_is_deleted_and_refused(
    tiny: TinyExport, tmp_path: Path
) -> None:
    pinned = "0" * 64
    fetched = tmp_path / "fetched" / "tiny.jar"
    with pytest.raises(BaseModelError) as refused:
        prepare_base(tiny_entry(tiny, sha256=pinned), tmp_path, download=fetch_from(tiny.jar, fetched))
    assert f"sha256 {sha256_of(tiny.jar)}, expected {pinned}" in str(refused.value)
    assert not fetched.exists()
    assert list((tmp_path / "bases").iterdir()) == []


def test_names_resolve_to_the_catalogue_or_a_local_folder(tmp_path: Path) -> None:
    packaged = packaged_base_model()
    assert resolve_base_model(None, tmp_path) == packaged
    assert resolve_base_model("minilm", tmp_path) == packaged
    assert resolve_base_model("minilm-l6-en", tmp_path) == packaged
    local = tmp_path / "local"
    local.mkdir()
    with pytest.raises(BaseModelError, match=r"no config\.json"):
        resolve_base_model(str(local), tmp_path)
    (local / "config.json").write_text("{}", encoding="utf-8")
    assert resolve_base_model(str(local), tmp_path) == local
    assert describe_base(local)["name"] is None
    assert describe_base(local)["path"] == str(local)
    described = describe_base(packaged)
    assert described["name"] == "minilm-l6-en"
    assert len(described["sha256"]) == 64


def test_an_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    message = (
        "unknown base model 'bert-huge'; known: minilm-l6-en, bge-small-zh, or a local Hugging Face folder"
    )
    with pytest.raises(BaseModelError, match=message):
        resolve_base_model("bert-huge", tmp_path)


@pytest.fixture()
def cli_cache(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {"FINSENTRY_CACHE_DIR": str(tmp_path), "COLUMNS": "300"}
    get_settings.cache_clear()  # the command read the test's environment into the cached settings


def test_base_list_shows_the_catalogue_and_what_is_prepared(
    cli_cache: dict[str, str], tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["base", "list"], env=cli_cache)
    assert result.exit_code == 0, result.output
    assert "minilm-l6-en" in result.output and "Apache-2.0" in result.output
    assert "bge-small-zh" in result.output and "23.7M" in result.output
    assert "no (finsentry base fetch bge-small-zh)" in result.output
    folder = tmp_path / "bases" / "bge-small-zh"
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("{}", encoding="utf-8")
    assert f"yes: {folder}" in runner.invoke(app, ["base", "list"], env=cli_cache).output


def test_base_fetch_of_an_unknown_name_fails(cli_cache: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["base", "fetch", "bert-huge"], env=cli_cache)
    assert result.exit_code == 1
    assert "known: minilm-l6-en, bge-small-zh" in result.output


@pytest.fixture(scope="module")
def bge_folder() -> Path:
    """The real bge-small-zh in the normal cache: fetched and converted once (about 20 s), then reused."""
    cache = Settings().cache_dir
    if prepared_folder(BGE_SMALL_ZH, cache) is None and shutil.which("mvn") is None:
        pytest.skip("bge-small-zh is not prepared and Maven is not installed to fetch it")
    return resolve_base_model("bge-small-zh", cache)


def test_the_real_chinese_encoder_matches_its_onnx_graph(bge_folder: Path) -> None:
    described = describe_base(bge_folder)
    assert described["sha256"] == BGE_SMALL_ZH.obtain.sha256  # type: ignore[union-attr]
    assert described["max_abs_diff"] < 1e-4
    tokenizer = AutoTokenizer.from_pretrained(str(bge_folder))
    tokens = tokenizer.tokenize("平安银行发布业绩预告，净利润同比下降30%")
    assert "平" in tokens and tokens.count(tokenizer.unk_token) == 0
    model = AutoModel.from_pretrained(str(bge_folder), add_pooling_layer=False)
    assert sum(p.numel() for p in model.parameters()) == BGE_SMALL_ZH.parameters
