"""``irexport parity``: ONNX Runtime and TensorRT against the PyTorch reference, routing-aware, JSON report."""

from __future__ import annotations

import json
from pathlib import Path

from .common import BATCH, NEW_TOKENS, SEED, SEED_MAX, TOKENS, add_no_verify, add_routing_ops, log


def add_parser(sub) -> None:
    p = sub.add_parser("parity", help="compare ONNX Runtime / TensorRT against the PyTorch reference",
                       description="Compare the exported graph in both phases (prefill, decode), run by ONNX "
                                   "Runtime and/or the TensorRT engine through Polygraphy, against the PyTorch "
                                   "reference: routing decisions per layer and unit "
                                   "(near-tie flips within the dtype's epsilon are counted and allowed), logits and KV cache "
                                   "(Polygraphy Comparator; float16/bfloat16 bounded by 2x PyTorch's own error in that "
                                   "precision), and greedy generation. Exit 0 pass, 1 fail, 2 bad input.")
    p.add_argument("export_dir", type=Path, help="directory written by irexport export")
    p.add_argument("--backends", type=backend_list, default="torch,onnxrt",
                   help="comma-separated: torch (the reference, always run), onnxrt, trt (default: torch,onnxrt)")
    p.add_argument("--engine", type=Path, help="trt: engine directory from irexport build (default: the only one "
                                               "under EXPORT_DIR/engines/)")
    p.add_argument("--plugins", type=Path, help="trt: plugin library (default: the one the engine was built with)")
    add_routing_ops(p)
    p.add_argument("--model", type=Path, help="reference model directory (default: the export's source)")
    p.add_argument("--inputs", type=Path, help="inputs: Polygraphy JSON (irexport run writes one) or .npz "
                                               "(default: seeded random tokens with padding)")
    p.add_argument("--batch", type=BATCH, default=2, help="random inputs: batch (default: 2)")
    p.add_argument("--seq", type=TOKENS, default=16, help="random inputs: sequence length (default: 16)")
    p.add_argument("--seed", type=SEED, default=0, help=f"random inputs: seed in [0, {SEED_MAX}] (default: 0)")
    p.add_argument("--new-tokens", type=NEW_TOKENS, default=8, help="greedy tokens to compare, 0 to skip (default: 8)")
    p.add_argument("--report", type=Path, help="JSON report path (default: EXPORT_DIR/parity_report.json)")
    add_no_verify(p)
    p.set_defaults(func=main)


def backend_list(text: str) -> tuple:
    """'torch,onnxrt,trt' -> ('onnxrt', 'trt'): torch is the reference and always runs."""
    import argparse

    from ..parity.backends import BACKENDS

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ("torch", *BACKENDS)]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backend {unknown[0]!r} (known: torch, {', '.join(BACKENDS)})")
    backends = tuple(dict.fromkeys(n for n in names if n != "torch"))
    if not backends:
        raise argparse.ArgumentTypeError("name at least one backend to compare with the reference: onnxrt, trt")
    return backends


def main(args) -> int:
    from ..atomic import atomic_file
    from ..checkpoints import load_model
    from ..export.manifest import check_model_matches, load_manifest, source_model
    from ..parity.check import load_inputs, parity, sample_inputs
    from ..reference import DTYPES

    manifest = load_manifest(args.export_dir, verify=not args.no_verify)
    source = args.model or source_model(manifest, args.export_dir)
    model = load_model(source, DTYPES[manifest["dtype"]])
    check_model_matches(manifest, model, str(source))
    vocab = model.config.vocab_size
    feed = load_inputs(args.inputs, vocab) if args.inputs else sample_inputs(vocab, args.batch, args.seq, args.seed)
    log(f"parity of {args.export_dir} ({manifest['strategy']}, {manifest['dtype']}) on {list(feed['input_ids'].shape)} tokens")
    report = parity(args.export_dir, model, feed, args.new_tokens, args.backends,
                    args.engine, args.plugins, manifest, args.routing_ops)
    path = args.report or args.export_dir / "parity_report.json"
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"parity   {'PASS' if report['passed'] else 'FAIL'} (report: {path})")
    return 0 if report["passed"] else 1


def print_report(report: dict) -> None:
    for backend, result in report["results"].items():
        for graph in ("prefill", "decode"):
            r, n = result[graph]["routing"], result[graph]["numerics"]
            print(f"{backend:<7} {graph:<8} routing {'PASS' if r['passed'] else 'FAIL'} (flips {r['flips']}, near ties "
                  f"{r['near_tie_flips']}, epsilon {r['epsilon']})  logits {'PASS' if n['logits']['passed'] else 'FAIL'} "
                  f"(max abs {n['logits']['max_abs']:.3g})  kv {'PASS' if n['kv_cache']['passed'] else 'FAIL'} "
                  f"(max abs {n['kv_cache']['max_abs']:.3g})")
        if "routing_ops" in result:
            print(f"{backend:<7} routing nodes ran as {'irexport kernels' if result['routing_ops'] == 'kernels' else 'function bodies'}")
        g = result["generation"]
        print(f"{backend:<7} generate {'PASS' if g['passed'] else 'FAIL'} ({g['new_tokens']} greedy tokens)")
