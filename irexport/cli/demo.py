"""``irexport demo``: the main job on the embedded default model, end to end, no downloads."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import log


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="make the tiny default routed model, run the reference, export to ONNX and check parity",
                       description="The pipeline on the embedded default model (tiny Llama, informed routing, seed 0): "
                                   "init DIR/model, inspect it, run the reference into DIR/reference, export to DIR/onnx "
                                   "(compact strategy) and check ONNX Runtime parity. With --tensorrt, also build the "
                                   "TensorRT engine (engines/recipes/demo.yaml, the plugin library) and check TensorRT "
                                   "parity and generation: the docker image's default. Exit 0 when parity passes.")
    p.add_argument("--dir", type=Path, default=Path("irexport-demo"), help="working directory (default: ./irexport-demo)")
    p.add_argument("--family", default="informed", choices=("informed", "skipgpt", "router_tuning", "mod"),
                   help="routing family of the demo model (default: informed)")
    p.add_argument("--tensorrt", action="store_true", help="also build the TensorRT engine and compare it (needs TensorRT, "
                                                          "a GPU and the plugin library: see docker/)")
    p.add_argument("--plugins", type=Path, help="with --tensorrt: plugin library (default: $IREXPORT_PLUGINS, else "
                                                "build/plugins/libirexport_plugins.so)")
    p.set_defaults(func=main)


def _parsed(*argv) -> argparse.Namespace:
    """A step's arguments as the real parser makes them, so each subcommand's defaults live in one place."""
    from .main import build_parser

    return build_parser().parse_args([str(a) for a in argv])


def main(args) -> int:
    from ..engine.targets import require_target
    from ..runtime.tensorrt import require_gpu
    from . import build, export, init, inspect, parity, run

    steps = 7 if args.tensorrt else 5
    if args.tensorrt:
        require_gpu(require_target()[0])  # fail now, not after the export: the demo runs the engine it builds
    model_dir, ref_dir, onnx_dir = args.dir / "model", args.dir / "reference", args.dir / "onnx"
    plugins = ["--plugins", args.plugins] if args.plugins else []
    log(f"step 1/{steps}: init {model_dir}")
    init.main(_parsed("init", model_dir, "--family", args.family, "--overwrite"))
    log(f"step 2/{steps}: inspect {model_dir}")
    inspect.main(_parsed("inspect", model_dir))
    log(f"step 3/{steps}: run the reference into {ref_dir}")
    run.main(_parsed("run", model_dir, "-o", ref_dir, "--overwrite", "--text", "Token-routed models skip work per token.",
                     "--text", "irexport makes them deployable."))
    log(f"step 4/{steps}: export {onnx_dir} (this takes a minute)")
    export.main(_parsed("export", model_dir, "-o", onnx_dir, "--overwrite"))
    backends = "onnxrt"
    if args.tensorrt:
        from ..resources import recipes_dir

        log(f"step 5/{steps}: build the TensorRT engine ({recipes_dir() / 'demo.yaml'})")
        build.main(_parsed("build", onnx_dir, "--recipe", recipes_dir() / "demo.yaml", "--overwrite", *plugins))
        backends = "onnxrt,trt"
    log(f"step {steps - 1 if args.tensorrt else 5}/{steps}: parity of {backends.replace(',', ' and ')} against the reference")
    code = parity.main(_parsed("parity", onnx_dir, "--inputs", ref_dir / "inputs.polygraphy.json", "--backends", backends,
                               *plugins))
    if args.tensorrt and code == 0:
        log(f"step 7/{steps}: generate with the TensorRT engine")
        from . import generate

        code = generate.main(_parsed("generate", onnx_dir, "--prompt", "Token-routed models", "--engine",
                                     onnx_dir / "engines" / "demo", *plugins))
    return code
