"""``irexport demo``: the main job on the embedded default model, end to end, no downloads."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import log


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="make the tiny default routed model, inspect it and run the reference on it",
                       description="Write the embedded default model (tiny Llama, informed routing, seed 0) to DIR/model, "
                                   "inspect it, and run the reference on a sentence into DIR/reference.")
    p.add_argument("--dir", type=Path, default=Path("irexport-demo"), help="working directory (default: ./irexport-demo)")
    p.add_argument("--family", default="informed", choices=("informed", "skipgpt", "router_tuning", "mod"),
                   help="routing family of the demo model (default: informed)")
    p.set_defaults(func=main)


def main(args) -> int:
    from . import init, inspect, run

    model_dir, ref_dir = args.dir / "model", args.dir / "reference"
    log(f"step 1/3: init {model_dir}")
    init.main(argparse.Namespace(output=model_dir, family=args.family, arch="llama", seed=0, layers=None, hidden_size=None,
                                 intermediate_size=None, heads=None, kv_heads=None, units="attention,mlp", pooling=None,
                                 capacity=None, overwrite=True))
    log(f"step 2/3: inspect {model_dir}")
    inspect.main(argparse.Namespace(model=model_dir, sample_batch=2, sample_tokens=128, seed=0, json=False))
    log(f"step 3/3: run the reference into {ref_dir}")
    run.main(argparse.Namespace(model=model_dir, input_ids=None, attention_mask=None, output=ref_dir, overwrite=True,
                                text=["Token-routed models skip work per token.", "irexport makes them deployable."],
                                dtype="float32", mode="masked"))
    log(f"done: compare another backend with: polygraphy run ... --load-inputs {ref_dir}/inputs.polygraphy.json "
        f"--load-outputs {ref_dir}/outputs.polygraphy.json")
    return 0
