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
                                   "TensorRT engines (engines/recipes/demo.yaml, the plugin library) and check TensorRT "
                                   "parity and generation: the docker image's default. Exit 0 when parity passes.")
    p.add_argument("--dir", type=Path, default=Path("irexport-demo"), help="working directory (default: ./irexport-demo)")
    p.add_argument("--family", default="informed", choices=("informed", "skipgpt", "router_tuning", "mod"),
                   help="routing family of the demo model (default: informed)")
    p.add_argument("--tensorrt", action="store_true", help="also build TensorRT engines and compare them (needs TensorRT, "
                                                          "a GPU and the plugin library: see docker/)")
    p.add_argument("--plugins", type=Path, help="with --tensorrt: plugin library (default: $IREXPORT_PLUGINS, else "
                                                "build/plugins/libirexport_plugins.so)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..engine.loading import require_tensorrt
    from . import build, export, init, inspect, parity, run

    steps = 7 if args.tensorrt else 5
    if args.tensorrt:
        require_tensorrt()  # fail now, not after the export
    model_dir, ref_dir, onnx_dir = args.dir / "model", args.dir / "reference", args.dir / "onnx"
    log(f"step 1/{steps}: init {model_dir}")
    init.main(argparse.Namespace(output=model_dir, family=args.family, arch="llama", seed=0, layers=None, hidden_size=None,
                                 intermediate_size=None, heads=None, kv_heads=None, units="attention,mlp", pooling=None,
                                 capacity=None, overwrite=True))
    log(f"step 2/{steps}: inspect {model_dir}")
    inspect.main(argparse.Namespace(model=model_dir, sample_batch=2, sample_tokens=128, seed=0, json=False))
    log(f"step 3/{steps}: run the reference into {ref_dir}")
    run.main(argparse.Namespace(model=model_dir, input_ids=None, attention_mask=None, output=ref_dir, overwrite=True,
                                text=["Token-routed models skip work per token.", "irexport makes them deployable."],
                                dtype="float32", mode="masked"))
    log(f"step 4/{steps}: export {onnx_dir} (this takes a minute)")
    export.main(argparse.Namespace(model=model_dir, output=onnx_dir, strategy="compact", dtype="float32", overwrite=True,
                                   keep_exporter_metadata=False))
    backends = ("onnxrt",)
    if args.tensorrt:
        log(f"step 5/{steps}: build TensorRT engines ({build.RECIPES / 'demo.yaml'})")
        build.main(argparse.Namespace(export_dir=onnx_dir, recipe=build.RECIPES / "demo.yaml", output=None,
                                      plugins=args.plugins, no_plugins=False, timing_cache=None, overwrite=True))
        backends = ("onnxrt", "trt")
    log(f"step {steps - 1 if args.tensorrt else 5}/{steps}: parity of {' and '.join(backends)} against the reference")
    code = parity.main(argparse.Namespace(export_dir=onnx_dir, model=None, inputs=ref_dir / "inputs.polygraphy.json",
                                          batch=2, seq=16, seed=0, new_tokens=8, report=None, backends=backends,
                                          engine=None, plugins=args.plugins))
    if args.tensorrt and code == 0:
        log(f"step 7/{steps}: generate with the TensorRT engines")
        from . import generate

        code = generate.main(argparse.Namespace(export_dir=onnx_dir, prompt=["Token-routed models"], input_ids=None,
                                                max_new_tokens=16, engine=onnx_dir / "engines" / "demo", plugins=args.plugins))
    return code
