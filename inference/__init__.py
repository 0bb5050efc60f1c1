"""Batched topic + sentiment inference over a model bundle (ONNX Runtime or torch), with hot reload."""

from inference.bundle import Bundle, BundleError
from inference.engine import InferenceEngine, Prediction

__all__ = ["Bundle", "BundleError", "InferenceEngine", "Prediction"]
