"""The engine record, ``build_report.json``: what ``irexport build`` built, and every check a runtime makes
against it before an engine is deserialized. One module writes, validates and verifies it; the builder
(``engine.build``) and the runtimes (``runtime.tensorrt``, parity's TensorRT backend) call it.

A new check of an engine against its build goes here; a check of the machine it runs on (GPU, installed
TensorRT) goes in ``runtime.tensorrt.prepare_engine``, which calls these in order.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from ..errors import IrexportError
from ..export.graph_io import PHASES
from ..export.manifest import DTYPES
from ..filehash import sha256
from ..jsonrecord import read_json_record
from ..schema import FILE_NAME, SHA256, Bool, Int, List, Map, Obj, Opt, Str
from .loading import find_plugin_library, version_tuple
from .recipe import Recipe
from .targets import RECORDED_BEFORE_TARGETS, TARGETS

REPORT = "build_report.json"

_SHAPE = List(Int(0, 1 << 31), max_len=8)
_PROFILE = Obj({"index": Int(0, len(PHASES) - 1),
                "inputs": Map(Obj({"dtype": Str(), "min": _SHAPE, "opt": _SHAPE, "max": _SHAPE}))})
# what the runtimes read of the record (the rest is for people and CI)
SCHEMA = Obj({
    "target": Str(choices=tuple(TARGETS)),
    "tensorrt_version": Str(pattern=r"[0-9]{1,4}(\.[0-9]{1,6}){1,3}([.+-][0-9A-Za-z.+-]*)?",
                            what="a TensorRT version such as '10.8.0.43'"),
    "version_compatible": Bool(),
    "export": Obj({"source_sha256": Opt(SHA256), "dtype": Str(choices=DTYPES)}),
    "plugins": Opt(Obj({"path": Str(), "sha256": SHA256, "serialized": Bool()})),
    "engine": Obj({"file": FILE_NAME, "bytes": Int(0), "sha256": SHA256, "onnx_sha256": SHA256, "weights_sha256": Opt(SHA256),
                   "profiles": Obj({phase: _PROFILE for phase in PHASES}, closed=True)}),
    "compute_capabilities": Opt(List(Str(), max_len=16)),
}, optional=("target", "compute_capabilities"))  # records from before irexport knew two targets: TensorRT's


# --- writing (irexport build) ---

def report_header(tensorrt_version: str, recipe: Recipe, export_dir: Path, manifest: dict, plugin_library,
                  target: str) -> dict:
    """What runtimes check before loading: target and its version, source export, plugin library."""
    return {
        "irexport_version": __version__, "target": target, "tensorrt_version": tensorrt_version, "recipe": recipe.name,
        "export": {"path": str(export_dir.resolve()), "source_sha256": manifest["source"]["sha256"],
                   "dtype": manifest["dtype"], "strategy": manifest["strategy"]},
        "version_compatible": recipe.version_compatible,
        "plugins": None if plugin_library is None else {
            "path": str(plugin_library), "sha256": sha256(plugin_library), "serialized": recipe.serialize_plugins},
    }


def engine_record(path: Path, onnx_path: Path, manifest: dict, shapes: dict) -> dict:
    """The engine file as runtimes check it: size, hash, and per phase its profile's index and each input's
    dtype and range. ``shapes`` is {phase: {input: (min, opt, max)}}."""
    dtypes = {io["name"]: io["dtype"] for io in manifest["graph"]["inputs"]}
    weights = onnx_path.parent / manifest["weights"]["file"] if "weights" in manifest else None
    # hashes of the files the parser read (not the manifest's word: a build with --no-verify may have read others)
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path), "onnx": onnx_path.name,
            "onnx_sha256": sha256(onnx_path), "weights_sha256": sha256(weights) if weights else None,
            "weights_bytes": manifest.get("weights", {}).get("bytes"),  # against "bytes": are the weights in once?
            "profiles": {phase: {"index": PHASES.index(phase),
                                 "inputs": {name: {"dtype": dtypes[name], "min": list(lo), "opt": list(opt), "max": list(hi)}
                                            for name, (lo, opt, hi) in shapes[phase].items()}}
                         for phase in PHASES}}


def write_report(engine_dir: Path, report: dict) -> None:
    (Path(engine_dir) / REPORT).write_text(json.dumps(report, indent=2) + "\n")


# --- reading and verifying (the runtimes) ---

def read_build_report(engine_dir) -> dict:
    return read_json_record(Path(engine_dir) / REPORT, f"{engine_dir}: no {REPORT} (not a directory written by irexport build)",
                            SCHEMA, "rebuild with this irexport version")


def check_built_from(report: dict, manifest: dict, engine_dir) -> None:
    """The engine was built from this export (same source checkpoint and dtype, and the graph and weights
    files the export wrote)."""
    built = report["export"]
    if built["source_sha256"] != manifest["source"]["sha256"] or built["dtype"] != manifest["dtype"]:
        raise IrexportError(f"{engine_dir}: built from another export ({built['dtype']}, source "
                            f"{(built['source_sha256'] or 'unknown')[:12]}); rebuild with irexport build")
    engine = report["engine"]
    hashes = {"weights": (engine["weights_sha256"], manifest.get("weights", {}).get("sha256"))}
    if "sha256" in manifest["graph"]:  # exports from before graphs were hashed record none
        hashes["graph"] = (engine["onnx_sha256"], manifest["graph"]["sha256"])
    for what, (built_from, wrote) in hashes.items():
        if built_from != wrote:
            raise IrexportError(f"{engine_dir}: built from a different {what} file (sha256 {(built_from or 'none')[:12]}..., "
                                f"the export's is {(wrote or 'none')[:12]}...); rebuild with irexport build")


def check_engine_file(engine_dir, report: dict) -> Path:
    """The engine file is the one the build wrote: same size (not truncated), same hash (not swapped)."""
    record = report["engine"]
    path = Path(engine_dir) / record["file"]
    if not path.is_file():
        raise IrexportError(f"{path}: engine file not found")
    size = path.stat().st_size
    if size != record["bytes"]:
        raise IrexportError(f"{path}: {size} bytes, the build wrote {record['bytes']} (truncated or replaced; rebuild)")
    if sha256(path) != record["sha256"]:
        raise IrexportError(f"{path}: contents differ from the engine the build wrote (sha256 mismatch; rebuild)")
    return path


def built_target(report: dict):
    """The Target the record says built the engine."""
    return TARGETS[report.get("target", RECORDED_BEFORE_TARGETS)]


def check_tensorrt_version(report: dict, installed: str, where: str) -> None:
    """Plain engines load only in the TensorRT version that built them; version-compatible engines in that
    version or a newer one of the same major. The major rule is irexport's, and narrower than TensorRT's:
    TensorRT 11.1's support matrix says "within the same major version", while its engine-compatibility page
    (and the 11.4 matrix) also let a TensorRT 10 version-compatible engine load in TensorRT 11. Not checked
    here across majors (no full TensorRT on the CI machine), so irexport keeps the rule all of them state."""
    built, title = report["tensorrt_version"], built_target(report).title
    same_major = built.split(".")[0] == installed.split(".")[0]
    if installed != built and not (report["version_compatible"] and same_major and version_tuple(installed) >= version_tuple(built)):
        raise IrexportError(f"{where}: built with {title} {built}, this is {title} {installed} (rebuild, or build "
                            "with version_compatible: true to load in newer runtimes of the same major)")


def plugin_library_for(report: dict, path=None, where: str = "") -> Path | None:
    """The plugin library the engine needs (None when it needs none, or carry it serialized)."""
    plugins = report["plugins"]
    if plugins is None or plugins["serialized"]:
        return None
    library = find_plugin_library(path or plugins["path"])
    if sha256(library) != plugins["sha256"]:
        raise IrexportError(f"{library}: not the plugin library {where} was built with (sha256 differs; rebuild "
                            "the engine or pass the original with --plugins)")
    return library
