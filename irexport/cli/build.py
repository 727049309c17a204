"""``irexport build``: TensorRT engines (prefill and decode) of an export, from a recipe."""

from __future__ import annotations

from pathlib import Path

from .common import log

RECIPES = Path(__file__).resolve().parents[2] / "engines" / "recipes"


def add_parser(sub) -> None:
    p = sub.add_parser("build", help="build TensorRT engines of an export from a recipe",
                       description="Build the prefill and decode TensorRT engines of an export through Polygraphy's "
                                   "loaders, with irexport's plugin library loaded so that the routing nodes run as "
                                   "CUDA plugins. Writes the engines, build_settings.json and build_report.json. "
                                   f"Recipes: {RECIPES}. Exit 0 built, 2 bad input or TensorRT missing.")
    p.add_argument("export_dir", type=Path, help="directory written by irexport export")
    p.add_argument("--recipe", type=Path, required=True, help="recipe YAML, e.g. engines/recipes/demo.yaml")
    p.add_argument("-o", "--output", type=Path, help="engine directory (default: EXPORT_DIR/engines/RECIPE_NAME)")
    plugins = p.add_mutually_exclusive_group()
    plugins.add_argument("--plugins", type=Path, help="plugin library (default: $IREXPORT_PLUGINS, else "
                                                      "build/plugins/libirexport_plugins.so)")
    plugins.add_argument("--no-plugins", action="store_true",
                         help="build without the plugin library: TensorRT inlines the routing ops' function bodies")
    p.add_argument("--timing-cache", type=Path, help="timing cache to reuse and update (default: the recipe's, "
                                                     "relative to EXPORT_DIR)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing engine directory")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..engine.build import build_engines
    from ..engine.loading import find_plugin_library, require_tensorrt
    from ..engine.profiles import check_precision, input_shapes
    from ..engine.recipe import load_recipe
    from ..export.manifest import load_manifest

    manifest = load_manifest(args.export_dir)
    recipe = load_recipe(args.recipe)
    check_precision(manifest, recipe, str(args.recipe))
    for graph in ("prefill", "decode"):
        input_shapes(manifest, recipe, graph)  # every dynamic axis is covered: fail before TensorRT is asked
    require_tensorrt()
    plugins = None if args.no_plugins else find_plugin_library(args.plugins)
    timing_cache = args.timing_cache or (args.export_dir / recipe.timing_cache if recipe.timing_cache else None)
    out = args.output or args.export_dir / "engines" / recipe.name
    report = build_engines(args.export_dir, recipe, out, plugins, timing_cache, args.overwrite, log=log)
    for graph, engine in report["engines"].items():
        print(f"{graph:<8} {out / engine['file']}  {engine['bytes'] / 2**20:.1f} MiB  {engine['network_layers']} layers  "
              f"routing: {sum(engine['routing']['plugins'].values())} plugins, {sum(engine['routing']['inlined'].values())} inlined")
    print(f"report   {out / 'build_report.json'}")
    return 0
