"""ONNX Runtime CPU prefill latency: dense vs masked vs compact routed exports, next to the ideal FLOP ratio.

Mixture-of-Depths routing is used because its capacity sets the executed fraction exactly (every
routed unit executes ceil(capacity * tokens) tokens per sequence). All graphs are exported from the
same random weights; the dense graph routes nothing. Speedups are ratios measured side by side in one
run: median latency of dense / median latency of the routed graph.

    python benchmarks/onnxrt_prefill.py                      # hidden 1024, 8 layers, seq 512 and 2048
    python benchmarks/onnxrt_prefill.py --hidden 256 --layers 2 --seqs 128 --repeats 3   # quick check
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from irexport.export.onnx_export import export_graph
from irexport.models.random_init import make_random_model
from irexport.models.stats import flops


def build(capacity, args, units):
    return make_random_model("mod", "llama", seed=0, units=units, vocab_size=args.vocab, capacity=capacity,
                             hidden_size=args.hidden, intermediate_size=args.intermediate, num_hidden_layers=args.layers,
                             num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, calibrate_routers=False)


def session(model, strategy, workdir: Path, name: str):
    proto, *_ = export_graph(model, "prefill", strategy, torch.float32)
    path = workdir / f"{name}.onnx"
    onnx.save_model(proto, str(path), save_as_external_data=True, location=f"{name}.onnx.data")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def latency(sess, feed, repeats):
    sess.run(["logits"], feed)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(["logits"], feed)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--intermediate", type=int, default=2816)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seqs", default="512,2048")
    p.add_argument("--fractions", default="0.25,0.5,0.75")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--output", type=Path, default=Path(__file__).with_name("results") / "onnxrt_prefill.json")
    args = p.parse_args()
    seqs = [int(s) for s in args.seqs.split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        dense_model = build(0.5, args, units=())
        dense = session(dense_model, "masked", workdir, "dense")
        routed = {}
        for f in fractions:
            model = build(f, args, units=("attention", "mlp"))
            routed[f] = (model, {s: session(model, s, workdir, f"{s}-{f}") for s in ("masked", "compact")})
            print(f"exported capacity {f}", flush=True)
        for seq in seqs:
            ids = np.random.default_rng(0).integers(0, args.vocab, (1, seq), dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            t_dense = latency(dense, feed, args.repeats)
            for f, (model, sessions) in routed.items():
                with torch.no_grad():
                    out = model(torch.from_numpy(ids))
                ideal = flops(model, out)["ideal_speedup"]
                t = {s: latency(sess, feed, args.repeats) for s, sess in sessions.items()}
                row = {"seq": seq, "executed_fraction": f, "dense_ms": t_dense * 1e3, "masked_ms": t["masked"] * 1e3,
                       "compact_ms": t["compact"] * 1e3, "ideal_speedup": ideal,
                       "masked_speedup": t_dense / t["masked"], "compact_speedup": t_dense / t["compact"],
                       "compact_of_ideal": (t_dense / t["compact"]) / ideal}
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    result = {
        "benchmark": "onnxrt_prefill", "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
                    "onnxruntime": ort.__version__, "torch": torch.__version__},
        "config": {k: v for k, v in vars(args).items() if k != "output"}, "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
