"""The routing ops: one description per op (spec.py) drives the torch ops the reference runs
(torch_ops.py), the custom ONNX nodes (onnx_functions.py), their portable function bodies
(function_bodies.py), and the TensorRT plugins' names and fields."""

from .spec import DOMAIN, DOMAIN_OPSET, OPS, OpSpec

__all__ = ["DOMAIN", "DOMAIN_OPSET", "OPS", "OpSpec"]
