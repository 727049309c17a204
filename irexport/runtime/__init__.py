"""The runtimes that run an export, one module per backend; each takes a graph_io feed per phase and hands
``GraphIO.greedy`` its ``run``:

  onnxrt     ONNX Runtime: the export's model.onnx in one session (irexport's kernels or the function bodies)
  tensorrt   TensorRT and TensorRT-RTX: the engine ``irexport build`` wrote, checked against its build record
             (``engine.record``) before it is deserialized

A check of a feed or of the machine a backend runs on goes in its module; a check of an engine against its
build goes in ``engine.record``.
"""

from .onnxrt import OnnxGenerator
from .tensorrt import Engine, EngineGenerator

__all__ = ["Engine", "EngineGenerator", "OnnxGenerator"]
