"""``irexport parity``: ONNX Runtime against the PyTorch reference, routing-aware, JSON report."""

from __future__ import annotations

import json
from pathlib import Path

from .common import log


def add_parser(sub) -> None:
    p = sub.add_parser("parity", help="compare an export with ONNX Runtime against the PyTorch reference",
                       description="Compare the exported graphs, run by ONNX Runtime through Polygraphy, against the "
                                   "PyTorch reference: routing decisions per layer and unit (near-tie flips within the "
                                   "dtype's epsilon are counted and allowed), logits and KV cache (Polygraphy Comparator, "
                                   "tolerances per dtype), and greedy generation. Exit 0 pass, 1 fail, 2 bad input.")
    p.add_argument("export_dir", type=Path, help="directory written by irexport export")
    p.add_argument("--model", type=Path, help="reference model directory (default: the export's source)")
    p.add_argument("--inputs", type=Path, help="inputs: Polygraphy JSON (irexport run writes one) or .npz "
                                               "(default: seeded random tokens with padding)")
    p.add_argument("--batch", type=int, default=2, help="random inputs: batch (default: 2)")
    p.add_argument("--seq", type=int, default=16, help="random inputs: sequence length (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="random inputs: seed (default: 0)")
    p.add_argument("--new-tokens", type=int, default=8, help="greedy tokens to compare, 0 to skip (default: 8)")
    p.add_argument("--report", type=Path, help="JSON report path (default: EXPORT_DIR/parity_report.json)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..atomic import atomic_file
    from ..checkpoints import load_model
    from ..errors import IrexportError
    from ..export.manifest import check_model_matches, load_manifest
    from ..parity.check import load_inputs, parity, sample_inputs
    from ..reference import DTYPES

    if args.batch <= 0 or args.seq <= 0 or args.new_tokens < 0:
        raise IrexportError("--batch and --seq must be positive, --new-tokens non-negative")
    manifest = load_manifest(args.export_dir)
    source = args.model or (Path(manifest["source"]["path"]) if manifest["source"]["path"] else None)
    if source is None:
        raise IrexportError(f"{args.export_dir}/manifest.json: records no source model; pass --model")
    model = load_model(source)
    check_model_matches(manifest, model, str(source))
    vocab = model.config.vocab_size
    feed = load_inputs(args.inputs, vocab) if args.inputs else sample_inputs(vocab, args.batch, args.seq, args.seed)
    log(f"parity of {args.export_dir} ({manifest['strategy']}, {manifest['dtype']}) on {list(feed['input_ids'].shape)} tokens")
    report = parity(args.export_dir, model.to(DTYPES[manifest["dtype"]]), feed, args.new_tokens)
    path = args.report or args.export_dir / "parity_report.json"
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    for graph in ("prefill", "decode"):
        r, n = report[graph]["routing"], report[graph]["numerics"]
        print(f"{graph:<8} routing {'PASS' if r['passed'] else 'FAIL'} (flips {r['flips']}, near ties {r['near_tie_flips']}, "
              f"epsilon {r['epsilon']})  logits {'PASS' if n['logits']['passed'] else 'FAIL'} (max abs "
              f"{n['logits']['max_abs']:.3g})  kv {'PASS' if n['kv_cache']['passed'] else 'FAIL'} (max abs {n['kv_cache']['max_abs']:.3g})")
    g = report["generation"]
    print(f"generate {'PASS' if g['passed'] else 'FAIL'} ({g['new_tokens']} greedy tokens)")
    print(f"parity   {'PASS' if report['passed'] else 'FAIL'} (report: {path})")
    return 0 if report["passed"] else 1
