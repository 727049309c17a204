"""Finding irexport's plugin library and loading it into a TensorRT target, with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import IrexportError
from ..resources import plugin_build_dir
from .targets import Target, plugin_headers_major

PLUGIN_LIBRARY = "libirexport_plugins.so"
REPO_BUILD = plugin_build_dir() / PLUGIN_LIBRARY


def find_plugin_library(path=None) -> Path:
    """--plugins PATH, else $IREXPORT_PLUGINS, else the library `irexport plugins build` writes."""
    candidate = Path(path or os.environ.get("IREXPORT_PLUGINS") or REPO_BUILD)
    if not candidate.is_file():
        how = "the path given" if path else ("$IREXPORT_PLUGINS" if os.environ.get("IREXPORT_PLUGINS") else "the default")
        raise IrexportError(f"{candidate}: plugin library not found ({how}); build it with `irexport plugins build`, "
                            "or pass --plugins PATH")
    return candidate.resolve()


_LOADED: dict[tuple, object] = {}  # (target, resolved path) -> its registry's handle: a library loads once per process


def load_plugin_library(target: Target, trt, path: Path) -> None:
    """Register the library's creators with the target's registry (getCreators, as trtexec --dynamicPlugins).

    TensorRT refuses to register the same creators twice, so each library is loaded once per process.
    """
    path = Path(path)
    if not path.is_file():
        raise IrexportError(f"{path}: plugin library not found")
    key = (target.name, str(path.resolve()))  # each target has a registry of its own
    if key in _LOADED:
        return
    check_plugin_major(Path(key[1]), target, trt.__version__)
    handle = trt.get_plugin_registry().load_library(key[1])
    if handle is None:
        raise IrexportError(f"{path}: {target.title} could not load this plugin library (built for another TensorRT or CUDA, "
                            "or another copy of it is already loaded in this process)")
    _LOADED[key] = handle


def version_tuple(text: str) -> tuple:
    """'10.8.0.43' -> (10, 8, 0, 43); parts that are not numbers are left out."""
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def plugin_tensorrt_major(path: Path) -> int:
    """The TensorRT major of the headers irexport's plugin library was built with (ILogger / ILoggerFinder
    changed layout between 10 and 11). Loading it to ask registers nothing (no load-time side effects)."""
    import ctypes

    try:
        return ctypes.CDLL(str(path)).irexportPluginTensorRTMajor()
    except OSError as e:
        raise IrexportError(f"{path}: cannot load this plugin library ({e})") from None
    except AttributeError:
        raise IrexportError(f"{path}: not an irexport plugin library of this version (no irexportPluginTensorRTMajor); "
                            "rebuild it with `irexport plugins build`") from None


def check_plugin_major(path: Path, target: Target, version: str) -> None:
    """A plugin library built with the headers of another TensorRT major than the target's plugin interfaces
    is refused before the target calls into it."""
    built, wanted = plugin_tensorrt_major(path), plugin_headers_major(target, version)
    if built != wanted:
        raise IrexportError(f"{path}: built against TensorRT {built} headers, {target.title} {version} takes plugins "
                            f"built with TensorRT {wanted}'s; rebuild it with `irexport plugins build --tensorrt-root` "
                            f"pointing at TensorRT {wanted}'s headers")


def unload_plugin_libraries(target: Target, trt) -> None:
    """Deregister every library this process loaded into the target: the ONNX parser prefers a registered plugin
    over a node's function body, so a build without plugins must not see them."""
    registry = trt.get_plugin_registry()
    for key in [key for key in _LOADED if key[0] == target.name]:
        registry.deregister_library(_LOADED.pop(key))
