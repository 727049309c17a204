"""irexport: deploy token-routed LLMs.

Importing the package is cheap: torch, transformers, onnxruntime and TensorRT load only in the
modules (and CLI subcommands) that need them.
"""

__version__ = "0.1.0"


def ort_library_path() -> str:
    """irexport's ONNX Runtime kernels for the routing ops, for ``SessionOptions.register_custom_ops_library``
    (``onnxruntime_extensions.get_library_path()``'s convention); a one-line error when they are not built."""
    from .onnxrt_kernels import ort_library_path as path

    return path()
