"""irexport's ONNX Runtime kernels for the routing ops: a custom-op library (``libirexport_onnxrt.so``, built
from ``plugins/onnxruntime`` by ``irexport plugins build``) that registers native CPU kernels for the
``irexport`` domain. With it registered, ONNX Runtime runs the kernels for the routing nodes instead of
inlining their function bodies; the same ``model.onnx`` runs either way.

Every irexport session uses the kernels when the library is built and the session runs on the CPU
(``routing_ops="auto"``); ``"kernels"`` requires them, ``"bodies"`` never loads them. For your own sessions
(or Triton's ``op_library_filename``): ``SessionOptions.register_custom_ops_library(irexport.ort_library_path())``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import IrexportError
from .resources import plugin_build_dir

LIBRARY = "libirexport_onnxrt.so"
REPO_BUILD = plugin_build_dir() / LIBRARY
ROUTING_OPS = ("auto", "kernels", "bodies")
HOW_TO_BUILD = ("build it with `irexport plugins build` (ONNX Runtime's C API header onnxruntime_c_api.h under "
                "--onnxruntime-root or $ONNXRUNTIME_ROOT), or set $IREXPORT_ONNXRT_KERNELS to its path")


def find_library() -> Path | None:
    """$IREXPORT_ONNXRT_KERNELS (a path), else the library `irexport plugins build` writes, if it is there."""
    given = os.environ.get("IREXPORT_ONNXRT_KERNELS")
    if given:
        if not Path(given).is_file():
            raise IrexportError(f"{given}: $IREXPORT_ONNXRT_KERNELS names no file; {HOW_TO_BUILD}")
        return Path(given).resolve()
    return REPO_BUILD if REPO_BUILD.is_file() else None


def ort_library_path() -> str:
    """The kernels' library, for ``SessionOptions.register_custom_ops_library``; a one-line error saying how to
    build it when it is not built, or when it was built for a newer ONNX Runtime than the one installed."""
    path = find_library()
    if path is None:
        raise IrexportError(f"irexport's ONNX Runtime kernels are not built ({REPO_BUILD}); {HOW_TO_BUILD}")
    check_library(path)
    return str(path)


def library_api_version(path: Path) -> int:
    """The ONNX Runtime C API version the library was compiled against (irexportOrtApiVersion)."""
    import ctypes

    try:
        return int(ctypes.CDLL(str(path)).irexportOrtApiVersion())
    except OSError as e:
        raise IrexportError(f"{path}: cannot load this library ({e})") from None
    except AttributeError:
        raise IrexportError(f"{path}: not irexport's ONNX Runtime kernels (no irexportOrtApiVersion); "
                            "rebuild it with `irexport plugins build`") from None


def check_library(path: Path) -> None:
    """ONNX Runtime 1.N serves C API versions up to N: a library built with newer headers does not load."""
    import onnxruntime as ort

    api = library_api_version(path)
    installed = tuple(int(p) for p in ort.__version__.split(".")[:2] if p.isdigit())
    if installed < (1, api):
        raise IrexportError(f"{path}: built for ONNX Runtime >= 1.{api} (C API {api}), this is ONNX Runtime "
                            f"{ort.__version__}; upgrade it, or rebuild the kernels against its headers")


def register(options, routing_ops: str, providers) -> str:
    """Register the kernels on ``options`` as ``routing_ops`` asks; returns what the routing nodes will run:
    "kernels" or "bodies". The kernels are CPU kernels: "auto" leaves sessions on a GPU to the bodies, and
    falls back to them, saying why in one line, when the library cannot serve this ONNX Runtime."""
    if routing_ops not in ROUTING_OPS:
        raise IrexportError(f"routing ops {routing_ops!r}: one of {', '.join(ROUTING_OPS)}")
    if routing_ops == "bodies" or (routing_ops == "auto" and list(providers)[:1] != ["CPUExecutionProvider"]):
        return "bodies"
    if routing_ops == "kernels":
        path = ort_library_path()
    else:
        try:
            path = find_library()
            if path is None:
                return "bodies"
            check_library(path)
        except IrexportError as e:
            print(f"irexport: routing nodes run as function bodies: {e}", file=sys.stderr)
            return "bodies"
    options.register_custom_ops_library(str(path))
    return "kernels"
