"""``irexport build``: the TensorRT or TensorRT-RTX engine of an export (one optimization profile per phase), from a
recipe."""

from __future__ import annotations

from pathlib import Path

from ..resources import recipes_dir
from .common import add_no_verify, log


def add_parser(sub) -> None:
    p = sub.add_parser("build", help="build the TensorRT or TensorRT-RTX engine of an export from a recipe",
                       description="Build the TensorRT engine of an export (optimization profile 0: prefill with an "
                                   "empty cache, 1: decode) through Polygraphy's loaders, with irexport's plugin "
                                   "library loaded so that the routing nodes run as CUDA plugins. TensorRT builds for "
                                   "the GPU it runs on; TensorRT-RTX builds on a CPU for RTX GPUs, which compile its "
                                   "kernels when they first load the engine. Writes model.engine, build_settings.json "
                                   "and build_report.json. "
                                   f"Shipped recipes: {recipes_dir()}. Exit 0 built, 2 bad input or TensorRT missing, 3 TensorRT failed.")
    p.add_argument("export_dir", type=Path, help="directory written by irexport export")
    p.add_argument("--recipe", required=True, help="recipe YAML file, or a shipped recipe's name (e.g. demo)")
    p.add_argument("--target", choices=("tensorrt", "tensorrt-rtx"),
                   help="TensorRT (data-centre and any NVIDIA GPU; builds on the GPU) or TensorRT-RTX (RTX GPUs; builds "
                        "on a CPU). Default: the recipe's target, else the one installed (TensorRT when both are)")
    p.add_argument("-o", "--output", type=Path, help="engine directory (default: EXPORT_DIR/engines/RECIPE_NAME)")
    plugins = p.add_mutually_exclusive_group()
    plugins.add_argument("--plugins", type=Path, help="plugin library (default: $IREXPORT_PLUGINS, else "
                                                      "build/plugins/libirexport_plugins.so)")
    plugins.add_argument("--no-plugins", action="store_true",
                         help="build without the plugin library: TensorRT inlines the routing ops' function bodies")
    p.add_argument("--timing-cache", type=Path, help="timing cache to reuse and update (default: the recipe's, "
                                                     "relative to EXPORT_DIR)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing engine directory")
    add_no_verify(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..engine.build import build_engine, target_name
    from ..engine.loading import find_plugin_library
    from ..engine.profiles import check_precision, input_shapes
    from ..engine.recipe import load_recipe
    from ..engine.record import REPORT
    from ..engine.targets import require_target
    from ..export.graph_io import PHASES
    from ..export.manifest import load_manifest

    manifest = load_manifest(args.export_dir, verify=not args.no_verify)
    recipe = load_recipe(args.recipe)
    check_precision(manifest, recipe, str(args.recipe))
    for phase in PHASES:
        input_shapes(manifest, recipe, phase)  # every dynamic axis is covered: fail before TensorRT is asked
    require_target(target_name(args.target, recipe))  # installed: fail before a plugin library is looked for
    plugins = None if args.no_plugins else find_plugin_library(args.plugins)
    timing_cache = args.timing_cache or (args.export_dir / recipe.timing_cache if recipe.timing_cache else None)
    out = args.output or args.export_dir / "engines" / recipe.name
    engine = build_engine(args.export_dir, recipe, out, plugins, timing_cache, args.overwrite, log=log,
                          manifest=manifest, target=args.target)["engine"]
    print(f"engine   {out / engine['file']}  {engine['bytes'] / 2**20:.1f} MiB  {engine['network_layers']} layers  "
          f"profiles: {', '.join(engine['profiles'])}  routing: {sum(engine['routing']['plugins'].values())} plugins, "
          f"{sum(engine['routing']['inlined'].values())} inlined")
    print(f"report   {out / REPORT}")
    return 0
