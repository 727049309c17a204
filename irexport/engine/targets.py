"""The two TensorRTs irexport builds engines for, and finding the one a build or a runtime needs.

  tensorrt       full TensorRT (``tensorrt-cu13``, the docker image): engines for the GPU that builds them
  tensorrt-rtx   TensorRT for RTX (``pip install tensorrt-rtx-cu13``): builds ahead of time on a CPU, and
                 compiles its kernels just in time on the user's RTX GPU (compute capability 8.0, 8.6, 8.9
                 and 12.x by default, 7.5 on request); Hopper and other data-centre GPUs are not its targets

Both parse ONNX with TensorRT's own parser, and both load irexport's plugin library (IPluginV3, the same
interface names). Polygraphy drives either one, but picks it when its TensorRT backend is first imported
(``polygraphy.config.USE_TENSORRT_RTX``), so one process uses one target.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import IrexportError, one_line


@dataclass(frozen=True)
class Target:
    name: str     # as --target, recipes and build records spell it
    module: str   # the Python module
    title: str    # as messages name it
    install: str  # how to get it

    @property
    def is_rtx(self) -> bool:
        return self.name == "tensorrt-rtx"


TARGETS = {t.name: t for t in (
    Target("tensorrt", "tensorrt", "TensorRT",
           "run in the irexport docker image (docker/README.md), or on a GPU host: "
           "pip install --extra-index-url https://pypi.nvidia.com tensorrt-cu13"),
    Target("tensorrt-rtx", "tensorrt_rtx", "TensorRT-RTX", "pip install tensorrt-rtx-cu13"),
)}
RECORDED_BEFORE_TARGETS = "tensorrt"  # build records from before irexport knew two targets name none

# TensorRT-RTX numbers its releases apart from TensorRT; its plugin interfaces are those of the TensorRT major
# below. 1.x has TensorRT 11's versioned ILogger / ILoggerFinder: its library names both interfaces
# ("ILogger", "ILoggerFinder"), and a library built with the TensorRT 11 headers loads, parses and builds in
# TensorRT-RTX 1.7 (tests/engine/test_tensorrt_rtx.py: plugin layers, and a creator's error through its logger).
RTX_PLUGIN_HEADERS = {1: 11}


class TensorRTMissing(IrexportError):
    pass


def _import(target: Target, builder: bool):
    """The target's module, or a one-line error saying how to get it. pip's ``tensorrt`` can be a stub that
    failed to download its libraries, or bindings without the library: any failure to import counts as missing."""
    try:
        module = __import__(target.module)
    except Exception as e:  # noqa: BLE001 - ImportError, OSError from a missing library, stub errors
        raise TensorRTMissing(f"{target.title} is not installed ({type(e).__name__}: {one_line(e, 120)}); "
                              f"{target.install}") from None
    if builder and not hasattr(module, "Builder"):
        raise TensorRTMissing(f"the installed {target.module} package has no builder (a lean runtime only?); "
                              f"{target.install}")
    return module


def require_target(name: str | None = None, builder: bool = True):
    """(Target, module): the named target, or with none named the one installed (TensorRT first when both
    are). Polygraphy is pointed at it, so its loaders use the same module."""
    if name is not None:
        if name not in TARGETS:
            raise IrexportError(f"unknown target {name!r} (one of {', '.join(TARGETS)})")
        target = TARGETS[name]
        module = _import(target, builder)
    else:
        for target in TARGETS.values():
            try:
                module = _import(target, builder)
                break
            except TensorRTMissing:
                continue
        else:
            raise TensorRTMissing(f"neither TensorRT nor TensorRT-RTX is installed: {TARGETS['tensorrt'].install}; "
                                  f"or for RTX GPUs: {TARGETS['tensorrt-rtx'].install}")
    _point_polygraphy_at(target)
    return target, module


def _point_polygraphy_at(target: Target) -> None:
    """Polygraphy's TensorRT modules bind the module they import when they are imported; its datatype module
    (imported by the comparator and ONNX Runtime backend too) is rebound here, the backend cannot be."""
    from polygraphy import config  # >= 0.49.26 (pyproject): the first with USE_TENSORRT_RTX

    if config.USE_TENSORRT_RTX == target.is_rtx:
        return
    if "polygraphy.backend.trt" in sys.modules:
        other = TARGETS["tensorrt-rtx" if config.USE_TENSORRT_RTX else "tensorrt"]
        raise IrexportError(f"this process already drives {other.title} through Polygraphy, which cannot switch; "
                            f"use {target.title} in another process")
    config.USE_TENSORRT_RTX = target.is_rtx
    datatypes = sys.modules.get("polygraphy.datatype.tensorrt")
    if datatypes is not None:
        from polygraphy.mod.trt_importer import lazy_import_trt

        datatypes.trt = lazy_import_trt()


def plugin_headers_major(target: Target, version: str) -> int:
    """The TensorRT major whose headers a plugin library must be built with to load into this target."""
    major = int(version.split(".")[0])
    if not target.is_rtx:
        return major
    if major not in RTX_PLUGIN_HEADERS:
        raise IrexportError(f"TensorRT-RTX {version}: irexport does not know which TensorRT headers its plugin "
                            f"interfaces match (it knows TensorRT-RTX {', '.join(map(str, RTX_PLUGIN_HEADERS))}.x); "
                            "upgrade irexport, or build without the plugin library (--no-plugins)")
    return RTX_PLUGIN_HEADERS[major]


def let_rtx_parser_load_plugins() -> None:
    """TensorRT-RTX's ONNX parser imports a V3 plugin by dlopen-ing ``libtensorrt_rtx.so``, the unversioned
    name, which the wheel does not ship (only ``libtensorrt_rtx.so.1``); the failed load aborts the process
    (thrown while a function-local static is initialized). The parser's own directory is on its search path
    ($ORIGIN): link the name there once, or say in one line how to."""
    libs = _rtx_library_dir()
    if libs is None:
        return  # not the wheel's layout (a system install ships the link, as its own packages do)
    link = libs / "libtensorrt_rtx.so"
    versioned = sorted(p.name for p in libs.glob("libtensorrt_rtx.so.*"))
    if link.exists() or not versioned:
        return
    tmp = libs / f".libtensorrt_rtx.so.{os.getpid()}"  # this process's (a killed one with the same pid may have left it)
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(versioned[0])
        os.replace(tmp, link)  # atomic: a concurrent build sees no link or a whole one (a dangling one replaced)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise IrexportError(f"TensorRT-RTX's parser needs {link} to import plugins and this user cannot create it "
                            f"({e.strerror}); run once: ln -sfn {versioned[0]} {link}") from None
    print(f"irexport: linked {link} -> {versioned[0]} (TensorRT-RTX's parser loads it by that name to import "
          "plugins; its wheel ships only the versioned name)", file=sys.stderr)


def _rtx_library_dir() -> Path | None:
    """Where the wheel keeps libtensorrt_rtx.so.1: the tensorrt_rtx_libs package beside the bindings."""
    try:
        import tensorrt_rtx_libs
    except ImportError:
        return None
    return Path(tensorrt_rtx_libs.__file__).parent
