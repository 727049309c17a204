"""Build the TensorRT engine of an export from a recipe, through Polygraphy's loaders.

One engine serves both phases, so the GPU holds one copy of the weights: optimization profile 0 is
prefill (an empty cache), profile 1 decode (one new token per sequence), as ``profiles`` derives them.
Writes ``model.engine``, ``build_settings.json`` (the exact settings, enough to rebuild) and
``build_report.json`` (what was built: TensorRT version, plugin library hash, layer count, which
routing nodes became plugins and which TensorRT inlined from their function bodies, and the engine's
size, hash and each profile's input ranges, which the runtimes check before loading).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import __version__
from ..atomic import atomic_dir
from ..errors import IrexportError
from ..export.manifest import PHASES, load_manifest
from ..ops.spec import DOMAIN
from ..filehash import sha256
from .loading import load_plugin_library, require_tensorrt, unload_plugin_libraries, version_tuple
from .profiles import check_precision, input_shapes
from .recipe import Recipe

ENGINE_FILE = "model.engine"
REPORT = "build_report.json"
SETTINGS = "build_settings.json"


def routing_nodes(onnx_path: Path) -> list[dict]:
    """The custom-domain nodes of a graph (name and op), read without the weights."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return [{"name": n.name, "op": n.op_type} for n in model.graph.node if n.domain == DOMAIN]


def classify_routing_nodes(nodes: list[dict], plugin_layers: list[str]) -> dict:
    """A routing node became a plugin when a plugin layer carries its name (the ONNX parser names
    layers after their nodes, adding "_N" only when a name is taken); otherwise the parser inlined
    the node's function body."""
    names = {n["name"] for n in nodes}
    layers = set(plugin_layers)
    # a layer "X_3" stands for node "X" only when no routing node is itself called "X_3"
    stems = {layer.rsplit("_", 1)[0] for layer in layers - names if layer.rsplit("_", 1)[-1].isdigit()}
    hits = layers | stems
    as_plugin = [n for n in nodes if n["name"] in hits]
    inlined = [n for n in nodes if n["name"] not in hits]

    def count(group):
        return {op: sum(n["op"] == op for n in group) for op in sorted({n["op"] for n in group})}

    return {"plugins": count(as_plugin), "inlined": count(inlined),
            "plugin_nodes": [n["name"] for n in as_plugin], "inlined_nodes": [n["name"] for n in inlined]}


def report_header(tensorrt_version: str, recipe: Recipe, export_dir: Path, manifest: dict, plugin_library) -> dict:
    """What runtimes check before loading: TensorRT version, source export, plugin library."""
    return {
        "irexport_version": __version__, "tensorrt_version": tensorrt_version, "recipe": recipe.name,
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


MIN_BUILDER = (10, 8)


def check_builder_version(version: str) -> None:
    """The exports need TensorRT >= 10.8 to build: its ONNX parser prefers a registered plugin over a
    model-local function from 10.7 on, and 10.8 fixed the import of functions whose input names (x,
    index, ... as in our bodies) alias a tensor of the graph."""
    if version_tuple(version)[:2] < MIN_BUILDER:
        raise IrexportError(f"TensorRT {version} is too old to build irexport exports: TensorRT >= "
                            f"{'.'.join(map(str, MIN_BUILDER))} is needed (plugin lookup for routing nodes, local "
                            "function import); upgrade, or use the irexport docker image (docker/README.md)")


def build_engine(export_dir, recipe: Recipe, out_dir, plugin_library: Path | None, timing_cache: Path | None,
                  overwrite: bool = False, log=print, manifest=None) -> dict:
    """``manifest``: the export's, when the caller has loaded it (and checked its weights) already."""
    export_dir = Path(export_dir)
    manifest = manifest or load_manifest(export_dir)
    check_precision(manifest, recipe, f"recipe {recipe.name}")
    if recipe.serialize_plugins and plugin_library is None:
        raise IrexportError(f"recipe {recipe.name}: serialize_plugins needs the plugin library (drop --no-plugins)")
    trt = require_tensorrt()
    check_builder_version(trt.__version__)
    if plugin_library is not None:
        load_plugin_library(trt, plugin_library)  # before parsing: the parser looks plugins up by name and namespace
    else:
        unload_plugin_libraries(trt)  # --no-plugins: the function bodies must be inlined

    report = report_header(trt.__version__, recipe, export_dir, manifest, plugin_library)
    settings = {"recipe": recipe.to_json(), "export": str(export_dir.resolve()), "profiles": {}, "tf32": False,
                "timing_cache": str(timing_cache) if timing_cache else None,
                "plugin_library": str(plugin_library) if plugin_library else None}
    with atomic_dir(out_dir, overwrite=overwrite, inputs=[export_dir]) as tmp:
        onnx_path = export_dir / manifest["graph"]["file"]
        shapes = {phase: input_shapes(manifest, recipe, phase) for phase in PHASES}
        log(f"building the engine from {onnx_path.name} ({recipe.precision}, optimization level "
            f"{recipe.builder_optimization_level}; profiles: {', '.join(PHASES)})")
        start = time.monotonic()
        path = tmp / ENGINE_FILE
        network_info = _build_one(trt, onnx_path, path, shapes, recipe, plugin_library, timing_cache, log)
        routing = classify_routing_nodes(routing_nodes(onnx_path), network_info.pop("plugin_layer_names"))
        record = {**engine_record(path, onnx_path, manifest, shapes), **network_info, "routing": routing,
                  "build_seconds": round(time.monotonic() - start, 1)}
        report["engine"] = record
        settings["profiles"] = {phase: profile["inputs"] for phase, profile in record["profiles"].items()}
        weights_mib = (record["weights_bytes"] or 0) / 2**20
        log(f"{path.name}: {record['bytes'] / 2**20:.1f} MiB (weights.data {weights_mib:.1f} MiB), "
            f"{network_info['network_layers']} layers, routing {routing['plugins']} as plugins, "
            f"{routing['inlined']} inlined")
        (tmp / SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")
        (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _build_one(trt, onnx_path: Path, engine_path: Path, shapes: dict, recipe: Recipe, plugin_library, timing_cache, log):
    """Parse and build the graph with one optimization profile per phase (``shapes``: {phase: {input:
    (min, opt, max)}}, in PHASES order), write the engine; returns what the report says about the network."""
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, PostprocessConfig
    from polygraphy.exception import PolygraphyException
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.WARNING  # Polygraphy's info lines go to stdout, which is ours
    try:
        # strongly typed: the engine computes in the export's types (TensorRT 11 ignores the flag: always so)
        builder, network, parser = NetworkFromOnnxPath(str(onnx_path), strongly_typed=True)()
        plugin_types = {getattr(trt.LayerType, t) for t in ("PLUGIN_V3", "PLUGIN_V2") if hasattr(trt.LayerType, t)}
        layers = [network.get_layer(i) for i in range(network.num_layers)]
        info = {"network_layers": len(layers), "plugin_layers": sum(layer.type in plugin_types for layer in layers),
                "plugin_layer_names": [layer.name for layer in layers if layer.type in plugin_types]}

        profiles = []
        for phase in PHASES:  # the profile's index is the phase's position: runtimes select it by that
            profile = _phase_profile()
            for name, (lo, opt, hi) in shapes[phase].items():
                profile.add(name, min=lo, opt=opt, max=hi)
            profiles.append(profile)
        config = CreateConfig(
            profiles=profiles,
            tf32=False,  # float32 engines compute in float32, as parity's float32 tolerances assume
            builder_optimization_level=recipe.builder_optimization_level,
            load_timing_cache=str(timing_cache) if timing_cache else None,
            version_compatible=recipe.version_compatible or None,
            memory_pool_limits={trt.MemoryPoolType.WORKSPACE: recipe.workspace_mib << 20} if recipe.workspace_mib else None,
            progress_monitor=_progress_monitor(trt, log),
        )
        if recipe.serialize_plugins:
            def serialize(_builder, _network, cfg):
                cfg.plugins_to_serialize = [str(plugin_library)]
            config = PostprocessConfig(config, serialize)
        engine = EngineBytesFromNetwork((builder, network, parser), config,
                                        save_timing_cache=str(timing_cache) if timing_cache else None)()
    except PolygraphyException as e:  # parse or build failures: TensorRT's own messages were logged above
        first = (str(e).strip().splitlines() or ["failed"])[0]
        raise IrexportError(f"{onnx_path}: TensorRT could not build the engine: {first}") from None
    with open(engine_path, "wb") as f:
        f.write(engine)  # IHostMemory supports the buffer protocol: no second copy of a multi-GB plan
    return info


def _phase_profile():
    """An empty Polygraphy Profile that asks TensorRT not to allocate weight memory for it, so the phases
    share one copy of the weights (IOptimizationProfile::setExtraMemoryTarget, default 1.0; 0.0 "aims to
    create the new optimization profile without allocating any additional weight memory", a hint,
    "ignored for the first (default) optimization profile")."""
    from polygraphy.backend.trt import Profile

    class NoExtraWeights(Profile):
        def to_trt(self, builder, network):
            profile = super().to_trt(builder, network)
            profile.extra_memory_target = 0.0
            return profile

    return NoExtraWeights()


def _progress_monitor(trt, log):
    """Top-level build phases on stderr: engine builds of large models take minutes."""

    class Progress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.started = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                self.started[phase_name] = time.monotonic()
                log(f"  {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step):
            return True  # never cancel

        def phase_finish(self, phase_name):
            if phase_name in self.started:
                log(f"  {phase_name} done in {time.monotonic() - self.started.pop(phase_name):.1f} s")

    return Progress()
