"""Build the TensorRT or TensorRT-RTX engine of an export from a recipe, through Polygraphy's loaders.

One engine serves both phases, so the GPU holds one copy of the weights: optimization profile 0 is
prefill (an empty cache), profile 1 decode (one new token per sequence), as ``profiles`` derives them.
Writes ``model.engine``, ``build_settings.json`` (the exact settings, enough to rebuild) and
``build_report.json`` (``record``: what was built: target and version, plugin library hash, layer count, which
routing nodes became plugins and which were inlined from their function bodies, whether shapes depend on
data, and the engine's size, hash and each profile's input ranges, which the runtimes check before loading).

Without the plugin library the parser is handed the graph with the routing functions inlined by ONNX's own
inliner (``model.onnx`` itself is unchanged): TensorRT's parser inlines a function by replaying its body
under the body's own node names, so every call site of an op would repeat them ("A node named n0 already
exists"); ONNX's inliner names each copy apart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..atomic import atomic_dir
from ..errors import BackendError, IrexportError
from ..export.graph_io import PHASES
from ..export.manifest import load_manifest
from ..ops.spec import DOMAIN, OPS
from .loading import load_plugin_library, unload_plugin_libraries, version_tuple
from .profiles import check_precision, input_shapes
from .recipe import Recipe
from .record import engine_record, report_header, write_report
from .targets import Target, let_rtx_parser_load_plugins, require_target

ENGINE_FILE = "model.engine"
SETTINGS = "build_settings.json"


def routing_nodes(model) -> list[dict]:
    """The custom-domain nodes of a graph (name and op)."""
    return [{"name": n.name, "op": n.op_type} for n in model.graph.node if n.domain == DOMAIN]


def graph_to_parse(model, plugin_library):
    """The ModelProto the parser is handed: the export's, or without plugins its local functions inlined by
    ONNX's inliner, each copy's nodes and values named apart."""
    import onnx.inliner

    return model if plugin_library is not None else onnx.inliner.inline_local_functions(model)


def has_data_dependent_shapes(model) -> bool:
    """Whether some tensor's shape depends on the data: a routing op that declares a size tensor (compact's
    RouteIndex, RouteSeqIndex), or a NonZero (their inlined bodies)."""
    return any((n.domain == DOMAIN and n.op_type in OPS and OPS[n.op_type].data_dependent_shape)
               or (n.domain in ("", "ai.onnx") and n.op_type == "NonZero") for n in model.graph.node)


def check_rtx_can_build(model, target: Target, plugin_library) -> None:
    """TensorRT-RTX's parser imports every ONNX NonZero as a "NonZero" plugin (IPluginCreatorV3One, version 1),
    which TensorRT-RTX does not ship, where TensorRT builds an INonZeroLayer: compact routing there needs
    irexport's plugins, which replace the routing nodes (and the NonZero of their bodies) whole."""
    if target.is_rtx and plugin_library is None and any(n.op_type == "NonZero" for n in model.graph.node):
        raise IrexportError("TensorRT-RTX builds compact exports only with irexport's plugin library: without it the "
                            "routing bodies' NonZero becomes a NonZero plugin that TensorRT-RTX does not ship; drop "
                            "--no-plugins, or export with --strategy masked")


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


def target_name(requested: str | None, recipe: Recipe) -> str | None:
    """--target, else the recipe's; compute capabilities are TensorRT-RTX's, so a recipe that names them and no
    target means it. None: the one installed."""
    name = requested or recipe.target or ("tensorrt-rtx" if recipe.compute_capabilities else None)
    if recipe.compute_capabilities and name == "tensorrt":
        raise IrexportError(f"recipe {recipe.name}: compute_capabilities is a TensorRT-RTX setting, and this build "
                            "targets TensorRT (--target tensorrt-rtx)")
    return name


# TensorRT: its ONNX parser prefers a registered plugin over a model-local function from 10.7 on, and 10.8 fixed
# the import of functions whose input names (x, index, ... as in our bodies) alias a tensor of the graph.
# TensorRT-RTX: 1.7 is the oldest release irexport was verified with (parse and build, with and without plugins).
MIN_BUILDER = {"tensorrt": (10, 8), "tensorrt-rtx": (1, 7)}


def check_builder_version(target: Target, version: str) -> None:
    oldest = MIN_BUILDER[target.name]
    if version_tuple(version)[:2] < oldest:
        raise IrexportError(f"{target.title} {version} is too old to build irexport exports: {target.title} >= "
                            f"{'.'.join(map(str, oldest))} is needed (plugin lookup for routing nodes, local function "
                            f"import); upgrade ({target.install})")


def build_engine(export_dir, recipe: Recipe, out_dir, plugin_library: Path | None, timing_cache: Path | None,
                 overwrite: bool = False, log=print, manifest=None, target: str | None = None) -> dict:
    """``manifest``: the export's, when the caller has loaded it (and checked its weights) already. ``target``:
    tensorrt or tensorrt-rtx (default: the recipe's, else the one installed)."""
    import onnx

    export_dir = Path(export_dir)
    manifest = manifest or load_manifest(export_dir)
    check_precision(manifest, recipe, f"recipe {recipe.name}")
    if recipe.serialize_plugins and plugin_library is None:
        raise IrexportError(f"recipe {recipe.name}: serialize_plugins needs the plugin library (drop --no-plugins)")
    target, trt = require_target(target_name(target, recipe))
    check_builder_version(target, trt.__version__)
    if recipe.version_compatible and target.is_rtx:
        raise IrexportError(f"recipe {recipe.name}: version_compatible is a TensorRT setting: TensorRT-RTX "
                            f"{trt.__version__} cannot build such engines (its builder asks for TensorRT's lean runtime, "
                            "libnvinfer_lean, which it does not ship); drop it for --target tensorrt-rtx")
    onnx_path = export_dir / manifest["graph"]["file"]
    exported = onnx.load(str(onnx_path), load_external_data=False)  # the parser reads the weights from the file's dir
    graph = graph_to_parse(exported, plugin_library)
    check_rtx_can_build(graph, target, plugin_library)
    if plugin_library is not None:
        if target.is_rtx:
            let_rtx_parser_load_plugins()  # the parser's own need, to import plugins: runtimes never parse
        load_plugin_library(target, trt, plugin_library)  # before parsing: the parser looks plugins up by name
    else:
        unload_plugin_libraries(target, trt)  # --no-plugins: the function bodies must be inlined
    if target.is_rtx and timing_cache is not None:
        log(f"  timing cache {timing_cache.name}: not used (TensorRT-RTX's ahead-of-time build times no tactics)")
        timing_cache = None

    report = report_header(trt.__version__, recipe, export_dir, manifest, plugin_library, target.name)
    if target.is_rtx:
        report["compute_capabilities"] = list(recipe.compute_capabilities) if recipe.compute_capabilities else None
    settings = {"target": target.name, "recipe": recipe.to_json(), "export": str(export_dir.resolve()), "profiles": {},
                "tf32": False, "timing_cache": str(timing_cache) if timing_cache else None,
                "plugin_library": str(plugin_library) if plugin_library else None}
    with atomic_dir(out_dir, overwrite=overwrite, inputs=[export_dir]) as tmp:
        shapes = {phase: input_shapes(manifest, recipe, phase) for phase in PHASES}
        gpus = ""
        if target.is_rtx:
            gpus = f", RTX compute capabilities {', '.join(recipe.compute_capabilities or ['TensorRT-RTX default'])}"
        log(f"building the {target.title} {trt.__version__} engine from {onnx_path.name} ({recipe.precision}, "
            f"optimization level {recipe.builder_optimization_level}{gpus}; profiles: {', '.join(PHASES)}; "
            f"{'plugins ' + plugin_library.name if plugin_library else 'no plugins: routing bodies inlined'})")
        start = time.monotonic()
        path = tmp / ENGINE_FILE
        network_info = _build_one(target, trt, onnx_path, graph, path, shapes, recipe, plugin_library, timing_cache, log)
        routing = classify_routing_nodes(routing_nodes(exported), network_info.pop("plugin_layer_names"))
        record = {**engine_record(path, onnx_path, manifest, shapes), **network_info, "routing": routing,
                  "data_dependent_shapes": has_data_dependent_shapes(graph),
                  "build_seconds": round(time.monotonic() - start, 1)}
        report["engine"] = record
        settings["profiles"] = {phase: profile["inputs"] for phase, profile in record["profiles"].items()}
        weights_mib = (record["weights_bytes"] or 0) / 2**20
        log(f"{path.name}: {record['bytes'] / 2**20:.1f} MiB (weights.data {weights_mib:.1f} MiB), "
            f"{network_info['network_layers']} layers, routing {routing['plugins']} as plugins, "
            f"{routing['inlined']} inlined")
        (tmp / SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")
        write_report(tmp, report)
    return report


def _parse(trt, onnx_path: Path, graph):
    """Builder, network and parser, with ``graph`` parsed; external weights are read beside ``onnx_path``."""
    from polygraphy.backend.trt import create_network
    from polygraphy.backend.trt import util as trt_util

    # strongly typed: the engine computes in the export's types (TensorRT 11 ignores the flag: always so)
    builder, network = create_network(strongly_typed=True)
    trt.init_libnvinfer_plugins(trt_util.get_trt_logger(), "")
    parser = trt.OnnxParser(network, trt_util.get_trt_logger())
    parsed = parser.parse(graph.SerializeToString(), str(onnx_path))
    trt_util.check_onnx_parser_errors(parser, parsed)
    return builder, network, parser


def _build_one(target: Target, trt, onnx_path: Path, graph, engine_path: Path, shapes: dict, recipe: Recipe,
               plugin_library, timing_cache, log):
    """Parse ``graph`` and build it with one optimization profile per phase (``shapes``: {phase: {input:
    (min, opt, max)}}, in PHASES order), write the engine; returns what the report says about the network."""
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, PostprocessConfig
    from polygraphy.exception import PolygraphyException
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.WARNING  # Polygraphy's info lines go to stdout, which is ours
    try:
        builder, network, parser = _parse(trt, onnx_path, graph)
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
        options = dict(
            profiles=profiles,
            builder_optimization_level=recipe.builder_optimization_level,
            load_timing_cache=str(timing_cache) if timing_cache else None,
            version_compatible=recipe.version_compatible or None,
            memory_pool_limits={trt.MemoryPoolType.WORKSPACE: recipe.workspace_mib << 20} if recipe.workspace_mib else None,
            progress_monitor=_progress_monitor(trt, log),
        )
        if target.is_rtx:
            from polygraphy.backend.tensorrt_rtx import CreateConfigRTX

            config = CreateConfigRTX(compute_capabilities=[tuple(map(int, c.split("."))) for c in
                                                           recipe.compute_capabilities or ()] or None, **options)
        else:
            config = CreateConfig(tf32=False, **options)

        def finish(_builder, _network, cfg):
            cfg.clear_flag(trt.BuilderFlag.TF32)  # float32 engines compute in float32, as parity's tolerances assume
            if recipe.serialize_plugins:
                cfg.plugins_to_serialize = [str(plugin_library)]
        config = PostprocessConfig(config, finish)
        engine = EngineBytesFromNetwork((builder, network, parser), config,
                                        save_timing_cache=str(timing_cache) if timing_cache else None)()
    except PolygraphyException as e:  # parse or build failures: TensorRT's own messages were logged above
        first = (str(e).strip().splitlines() or ["failed"])[0]
        raise BackendError(f"{onnx_path}: {target.title} could not build the engine: {first} (its messages above say "
                           "why)") from None
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
