"""``irexport parity-matrix``: parity over many exports and backends, for CI gates."""

from __future__ import annotations

import json
from pathlib import Path

from .common import BATCH, NEW_TOKENS, TOKENS, add_no_verify, add_routing_ops, log, number_in
from .parity import backend_list


def add_parser(sub) -> None:
    p = sub.add_parser("parity-matrix", help="parity of every export under some directories, for CI",
                       description="Run irexport parity on every export directory found under ROOTS, against every "
                                   "backend, on seeded inputs; write one summary JSON; exit 1 when any entry fails, "
                                   "cannot run, or (with --baseline) regressed. Exit 0 all pass.")
    p.add_argument("roots", type=Path, nargs="+", help="export directories, or directories holding them")
    p.add_argument("--backends", type=backend_list, default="torch,onnxrt",
                   help="comma-separated: torch (reference), onnxrt, trt (default: torch,onnxrt)")
    p.add_argument("--baseline", type=Path, help="a summary from an earlier run: fail when an error grew")
    p.add_argument("--growth", type=number_in(1, 1e6), default=2.0, help="with --baseline: allowed error growth factor (default: 2)")
    p.add_argument("--batch", type=BATCH, default=2, help="random inputs: batch (default: 2)")
    p.add_argument("--seq", type=TOKENS, default=16, help="random inputs: sequence length (default: 16)")
    p.add_argument("--new-tokens", type=NEW_TOKENS, default=4, help="greedy tokens to compare (default: 4)")
    add_routing_ops(p)
    p.add_argument("--report", type=Path, default=Path("parity_matrix.json"), help="summary JSON (default: ./parity_matrix.json)")
    add_no_verify(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..atomic import atomic_file
    from ..checkpoints import load_model
    from ..errors import IrexportError
    from ..export.manifest import check_model_matches, load_manifest, source_model
    from ..parity.check import parity, sample_inputs
    from ..parity.matrix import find_exports, read_baseline, regressions, summarize
    from ..reference import DTYPES

    baseline = read_baseline(args.baseline) if args.baseline else None
    exports = find_exports(args.roots)
    rows = []
    for i, export_dir in enumerate(exports, 1):
        log(f"[{i}/{len(exports)}] {export_dir} on {', '.join(args.backends)}")
        try:
            manifest = load_manifest(export_dir, verify=not args.no_verify)
            source = source_model(manifest, export_dir, "parity-matrix runs exports that name their source")
            model = load_model(source, DTYPES[manifest["dtype"]])
            check_model_matches(manifest, model, str(source))
            feed = sample_inputs(model.config.vocab_size, args.batch, args.seq)
            report = parity(export_dir, model, feed, args.new_tokens, args.backends,
                            manifest=manifest, routing_ops=args.routing_ops)
            rows += summarize(export_dir, report)
        except IrexportError as e:  # this entry cannot run: it fails, the others still run
            rows += [{"export": str(export_dir), "backend": b, "passed": False, "error": str(e)} for b in args.backends]
    found = regressions(rows, baseline, args.growth) if baseline is not None else []
    summary = {"backends": list(args.backends), "entries": rows, "regressions": found,
               "passed": all(r["passed"] for r in rows) and not found}
    with atomic_file(args.report) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    for row in rows:
        detail = row.get("error") or f"logits max abs {row['logits_max_abs']:.3g}, flips {row['flips']} (near ties {row['near_tie_flips']})"
        print(f"{'PASS' if row['passed'] else 'FAIL'}  {row['export']}  [{row['backend']}]  {detail}")
    for line in found:
        print(f"REGRESSION  {line}")
    print(f"matrix {'PASS' if summary['passed'] else 'FAIL'}: {sum(r['passed'] for r in rows)}/{len(rows)} entries "
          f"(summary: {args.report})")
    return 0 if summary["passed"] else 1

