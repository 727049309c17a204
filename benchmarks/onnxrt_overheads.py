"""ONNX Runtime CPU: the fixed costs behind a routed decode step, with the session options of onnxrt_routing.py.

A batch-1 decode step reads weights: dense reads mostly large matrices (MLP 11.5 MB, Q/O 4 MB, LM head 16.8 MB in
the recorded model), while routing adds small ones (each router's 1 MB, each LFF's two 0.5 MB, and the K/V
projections, 1 MB each, are a larger share of what a routed step reads). This measures what each costs:

  node     the time of one small node (an Add on [1, hidden]) in a chain of 500: ONNX Runtime's cost per node
  gemv     a chain of [1, hidden] x [hidden, n] and [1, n] x [n, hidden] MatMuls per n, each weight distinct
           (read from memory, not cache): the rate they read their weights (GB/s) and the time per call (the
           two shapes read the same bytes)

with intra-op spinning off (as in the benchmark: several sessions alive) and on (one session, the production case).

    python benchmarks/onnxrt_overheads.py            # writes benchmarks/results/onnxrt_overheads.json (~1 min)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

RESULTS = Path(__file__).with_name("results")


def session(model: bytes, spinning: bool) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def graph(nodes, inits, width: int, out: str) -> bytes:
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [1, width])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, width])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def add_chain(k: int, width: int) -> bytes:
    nodes = [helper.make_node("Add", [f"x{i}", "one"], [f"x{i + 1}"]) for i in range(k)]
    return graph(nodes, [numpy_helper.from_array(np.ones(1, np.float32), "one")], width, f"x{k}")


def gemv_chain(k: int, width: int, n: int) -> bytes:
    """k pairs [1, width] x [width, n] x [n, width], every weight distinct, scaled by 1 / sqrt(rows) so the
    activations stay near 1 through the chain (a shrinking chain would reach subnormals, which time apart)."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    for i in range(k):
        for name, shape in ((f"a{i}", (width, n)), (f"b{i}", (n, width))):
            weight = rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(shape[0]))
            inits.append(numpy_helper.from_array(weight, name))
        nodes += [helper.make_node("MatMul", [f"x{i}", f"a{i}"], [f"y{i}"]),
                  helper.make_node("MatMul", [f"y{i}", f"b{i}"], [f"x{i + 1}"])]
    return graph(nodes, inits, width, f"x{k}")


def median_run(sess, x, repeats: int) -> float:
    sess.run(None, {"x0": x})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, {"x0": x})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--widths", default="128,256,2816,4096", help="n of each [hidden, n] weight (LFF, router/K/V, MLP, LM head)")
    p.add_argument("--megabytes", type=float, default=100, help="weights each chain reads per run (above the CPU's cache)")
    p.add_argument("--repeats", type=int, default=60)
    p.add_argument("--output", type=Path, default=RESULTS / "onnxrt_overheads.json")
    args = p.parse_args()
    x = np.ones((1, args.hidden), np.float32)
    widths = [int(w) for w in args.widths.split(",")]
    rows = []
    for spinning in (False, True):
        # one session alive at a time: a spinning idle pool would take a core from the one timed
        node_us = (median_run(session(add_chain(510, args.hidden), spinning), x, args.repeats)
                   - median_run(session(add_chain(10, args.hidden), spinning), x, args.repeats)) / 500 * 1e6
        rows.append({"spinning": spinning, "measure": "node", "us_per_node": node_us})
        for n in widths:
            mb = args.hidden * n * 4 / 1e6
            k = max(1, round(args.megabytes / (2 * mb)))
            seconds = median_run(session(gemv_chain(k, args.hidden, n), spinning), x, max(10, args.repeats // 4))
            rows.append({"spinning": spinning, "measure": "gemv", "weight_mb": mb, "calls": 2 * k,
                         "us_per_call": seconds / (2 * k) * 1e6, "gbps": 2 * k * mb / seconds / 1e3})
        print(json.dumps([{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in rows[-1 - len(widths):]]),
              flush=True)
    result = {"benchmark": "onnxrt_overheads", "date": datetime.date.today().isoformat(),
              "machine": {"cores": os.cpu_count(), "onnxruntime": ort.__version__},
              "config": {k: v for k, v in vars(args).items() if k != "output"}, "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
