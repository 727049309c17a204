"""The routing ops: one description per op (spec.py) drives the torch ops the reference runs
(torch_ops.py), the custom ONNX nodes and their portable function bodies (onnx_functions.py), and
the TensorRT plugins' names and fields."""

from .spec import OPS, DOMAIN, OpSpec

__all__ = ["DOMAIN", "OPS", "OpSpec"]
