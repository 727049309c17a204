"""irexport: deploy token-routed LLMs.

Importing the package is cheap: torch, transformers, onnxruntime and TensorRT load only in the
modules (and CLI subcommands) that need them.
"""

__version__ = "0.1.0"
