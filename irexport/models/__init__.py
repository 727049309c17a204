"""The PyTorch reference of routed decoders: the ground truth every backend is checked against."""

from .config import FAMILIES, UNITS, RoutingConfig
from .routed import MODES, SUPPORTED_MODEL_TYPES, RoutedCausalLM, RoutedOutput

__all__ = ["FAMILIES", "MODES", "SUPPORTED_MODEL_TYPES", "UNITS", "RoutedCausalLM", "RoutedOutput", "RoutingConfig"]
