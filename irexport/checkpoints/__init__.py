"""Checkpoint formats: our own (transformers directory + routing_config.json) and the research formats."""

from .native import load_model, save_model

__all__ = ["load_model", "save_model"]
