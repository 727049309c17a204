"""ONNX Runtime CPU: dense vs masked vs compact routed graphs in every regime, next to the physical ideal.

The compact graph runs twice: with its routing nodes' function bodies (stock ONNX Runtime) and with irexport's
native kernels (libirexport_onnxrt.so, `irexport plugins build`), the variant held to the targets. The masked
graph, the research semantics and not a deployment target, runs as stock ONNX Runtime runs it (function bodies;
its only routing nodes are the routers' margins), the same as in the runs recorded before the kernels. Each
variant's node count is that of its optimized graph (what ONNX Runtime runs per step).

Regimes: prefill at batch 1 (512 and 2048 tokens) and batch 8 with ragged lengths (left padding), and
one decode step at batch 1 / 8 / 32 / 64 over a cache of 512 and 2048 tokens. Families: informed
routing and Mixture-of-Depths, each calibrated to execute 0.25 / 0.5 / 0.75 of the tokens (MoD prefill
executes its capacity exactly; other decisions depend on the tokens, so every row reports the fraction
the compact graph actually executed, from its own `decisions` output).

Every row carries the ideals of its regime, computed from those decisions: the FLOP ratio dense / routed
(routers and LFF included, K/V for every token), and for decode the ratio of bytes read (a unit's weights
when any sequence executes it, the cache of each sequence whose attention runs), the ideal where reading
memory bounds the step. The targets are the issue's: prefill against FLOPs, batch-1 decode against bytes,
decode at batch >= 32 against FLOPs. Next to them, the graph ideals: the same ratios for what the exported
graphs compute and move (the cache copy, the attention core over every sequence and key), and for each
missed row the bound its numbers point to (see BOUNDS). Decode rows also carry the rate each side reads what
its step must read (dense_gbps, kernels_gbps: the bytes of the bytes ideal over the measured time).

Each variant is the export's one graph in one session, fed an empty cache for prefill. The variants run
interleaved within each repeat (in an order rotated every repeat), on one model's weights; a speedup is
the median over repeats of dense time / routed time. Sessions do not spin
(session.intra_op.allow_spinning=0). `--threads shared` runs every session on one process-wide thread pool
that spins instead, as a service process running one model at a time sees ONNX Runtime's default (an idle
session holds no threads there, so spinning takes no core from the session running); the targets are held to
the recorded default run.

    python benchmarks/onnxrt_routing.py                                   # the recorded run (~15 min, 2 cores)
    python benchmarks/onnxrt_routing.py --hidden 256 --layers 2 --prefill 1x128 --decode 1x64,8x64 --repeats 2
    python benchmarks/onnxrt_routing.py --tables benchmarks/results/onnxrt_routing.json   # the README tables
    python benchmarks/onnxrt_routing.py --threads shared      # one spinning pool: onnxrt_routing_shared_pool.json
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import torch

from irexport.errors import IrexportError
from irexport.export.graph_io import GraphIO
from irexport.export.onnx_export import export_graph
from irexport.models.config import UNITS
from irexport.models.random_init import calibrate, calibration_ids, make_random_model
from irexport.models.stats import decode_bytes, executed_fraction, flops
from irexport.onnxrt_kernels import ort_library_path

RESULTS = Path(__file__).with_name("results")
VARIANTS = ("dense", "masked", "compact", "kernels")  # kernels: the compact graph with irexport's ONNX Runtime kernels


def build(args, family, fraction, units=UNITS):
    model = make_random_model(family, "llama", seed=0, units=units, vocab_size=args.vocab, calibrate_routers=False,
                              hidden_size=args.hidden, intermediate_size=args.intermediate,
                              num_hidden_layers=args.layers, num_attention_heads=args.heads,
                              num_key_value_heads=args.kv_heads, **({"capacity": fraction} if family == "mod" else {}))
    if units:
        calibrate(model, calibration_ids(args.vocab, seed=0, seq=256), fraction)
    return model


def export(model, strategy, workdir: Path, name: str) -> Path:
    proto, *_ = export_graph(model, strategy, "float32")
    path = workdir / f"{name}.onnx"
    onnx.save_model(proto, str(path), save_as_external_data=True, location=f"{name}.onnx.data")
    return path


def share_one_thread_pool():
    """Make one process-wide intra-op pool of os.cpu_count() threads, which spins (ONNX Runtime's default), for
    the sessions created with shared_pool=True. Must run before the first session creates ONNX Runtime's
    environment."""
    from onnxruntime.capi import _pybind_state  # the Python binding's only door to the global thread pools

    _pybind_state.set_global_thread_pool_sizes(os.cpu_count(), 1)


def session(path: Path, kernels: bool = False, shared_pool: bool = False):
    """The export's one graph (prefill with an empty cache, decode) in one session, and the node count of the
    graph ONNX Runtime runs (after its optimizations; function bodies inlined unless the kernels replace them)."""
    opts = ort.SessionOptions()
    if shared_pool:
        opts.use_per_session_threads = False
    else:
        opts.intra_op_num_threads = os.cpu_count()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle sessions must not steal cores
    opts.log_severity_level = 3
    if kernels:
        opts.register_custom_ops_library(ort_library_path())
    optimized = path.with_suffix(".kernels.opt.onnx" if kernels else ".opt.onnx")
    opts.optimized_model_filepath = str(optimized)
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    sess.node_count = len(onnx.load(str(optimized), load_external_data=False).graph.node)
    optimized.unlink()
    return sess


def regimes(args):
    rng = np.random.default_rng(0)
    io = GraphIO(args.layers, args.kv_heads, args.hidden // args.heads, "float32")
    out = []
    for spec in filter(None, args.prefill.split(",")):
        batch, tokens = (int(v) for v in spec.split("x"))
        ids = rng.integers(0, args.vocab, (batch, tokens), dtype=np.int64)
        mask = np.ones_like(ids)
        ragged = batch > 1
        if ragged:  # lengths from a quarter of the window to all of it, left padded
            for b, n in enumerate(rng.integers(tokens // 4, tokens + 1, batch)):
                mask[b, : tokens - n] = 0
        out.append({"name": f"prefill b{batch} {tokens}" + (" ragged" if ragged else ""), "phase": "prefill",
                    "batch": batch, "tokens": tokens, "past": 0,
                    "feed": io.prefill_feed(ids, mask)})
    for spec in filter(None, args.decode.split(",")):
        batch, past = (int(v) for v in spec.split("x"))
        feed = {"input_ids": rng.integers(0, args.vocab, (batch, 1), dtype=np.int64),
                "attention_mask": np.ones((batch, past + 1), dtype=np.int64)}
        for name in io.past_names:  # random cache values: a step's cost does not depend on them
            feed[name] = rng.standard_normal(io.kv_shape(batch, past), dtype=np.float32)
        out.append({"name": f"decode b{batch} past {past}", "phase": "decode", "batch": batch, "tokens": 1,
                    "past": past, "feed": feed})
    return out


def time_interleaved(sessions, feed, repeats):
    """Per repeat, each variant once, in an order rotated every repeat; returns {variant: [seconds per repeat]}."""
    for sess in sessions.values():
        sess.run(["logits"], feed)  # warm-up
    times = {v: [] for v in sessions}
    order = list(sessions.items())
    for r in range(repeats):
        for v, sess in order[r % len(order):] + order[: r % len(order)]:
            start = time.perf_counter()
            sess.run(["logits"], feed)
            times[v].append(time.perf_counter() - start)
    return times


def ideals(model, regime, decisions):
    """The regime's ideal speedups. Both sides are counted on the rows the graphs run, padding included
    (ragged batches): dense runs every unit on every row; routed runs what routing does not remove (K/V,
    routers, LM head) on every row, the routed units on the tokens that execute, one by one, and the LFF on
    the valid tokens that skip."""
    mask = torch.from_numpy(regime["feed"]["attention_mask"]).bool()
    valid = mask[:, regime["past"]:]
    execute = torch.from_numpy(decisions).bool() & valid
    out, rows = SimpleNamespace(execute=execute, valid=valid), torch.ones_like(valid)
    routed_units = torch.tensor([[u in model.routing.layers[i] for u in UNITS]
                                 for i in range(model.config.num_hidden_layers)])
    executed = executed_fraction(out)[routed_units].mean().item()
    past = mask[:, : regime["past"]].sum(1) if regime["past"] else None
    runs = execute.any(dim=(2, 3))[routed_units]  # a routed unit runs this forward for some token
    result = {"executed_fraction": executed, "units_run": runs.double().mean().item(),
              "ideal_flops": flops(model, out, past, rows=rows)["ideal_speedup"],
              "graph_flops": flops(model, out, past, as_exported=True, rows=rows)["ideal_speedup"]}
    if regime["phase"] == "decode":
        read = decode_bytes(model, out, regime["past"])
        result |= {"ideal_bytes": read["ideal_speedup"], "dense_mb": read["dense_bytes"] / 1e6,
                   "routed_mb": read["routed_bytes"] / 1e6,
                   "graph_bytes": decode_bytes(model, out, regime["past"], as_exported=True)["ideal_speedup"]}
    return result


def target(regime):
    """The issue's targets: (the ideal the row is held to, the fraction of it to reach)."""
    if regime["phase"] == "prefill":
        return "ideal_flops", 0.9
    if regime["batch"] == 1:
        return "ideal_bytes", 0.9
    return ("ideal_flops", 0.8) if regime["batch"] >= 32 else (None, None)


BOUNDS = {
    "ideal": "the ideal of the resource that bounds the step is below dense: the routers (and LFFs) cost more "
             "than the skipped units save",
    "layout": "the exported graph's ideal is below the target and compact gets within 0.9 of it: the cache "
              "copy and the attention core cover every sequence",
    "runtime": "the rest: compact reaches less than 0.9 of what the graph allows (or the graph allows the "
               "target). ONNX Runtime reads the small matrices routing adds (routers, LFFs: 0.5-1 MB each) at a "
               "lower rate than the large ones of the units it skips (a thread wake-up per parallel call with "
               "spinning off: benchmarks/onnxrt_overheads.py), and runs about twice dense's nodes (under 1 us "
               "each); each decode row's read rates: dense_gbps, kernels_gbps",
    "mixed": "decode at batch >= 32 is bound by neither memory nor compute alone on this CPU, so no ideal bounds "
             "it; compare compact with both",
}


def headline(row) -> float:
    """The speed-up held to the targets: the compact graph with irexport's kernels (with its bodies in results
    recorded before the kernels)."""
    return row.get("kernels_speedup", row["compact_speedup"])


def verdict(row) -> dict:
    """The row with its share of the ideal it is held to, whether it meets its target, and its bound."""
    ideal, share = target(row)
    if ideal:
        row["compact_of_ideal"] = headline(row) / row[ideal]
    row["meets_target"] = headline(row) >= 1.0 and (not ideal or row["compact_of_ideal"] >= share)
    row["bound"] = bound(row)
    return row


def resource(row) -> str:
    """The ideal a row's phase is read against here: bytes in decode, FLOPs in prefill."""
    return "bytes" if row["phase"] == "decode" else "flops"


def bound(row):
    """What keeps a row from its target, from its own numbers (a key of BOUNDS), None when met. The resource
    that bounds a step: compute in prefill; in decode, the weight products do batch / 2 FLOPs per byte of
    float32 weight, and the recorded CPU's balance is about 8 FLOPs per byte (110-175 GFLOP/s in dense
    prefill, ~17 GB/s copying the cache), so memory bounds decode up to batch 8 and neither alone beyond."""
    if row["meets_target"]:
        return None
    if row["phase"] == "decode" and row["batch"] >= 32:
        return "mixed"
    ideal, share = target(row)
    needed = max(1.0, share * row[ideal]) if ideal else 1.0
    kind = resource(row)
    if row[f"ideal_{kind}"] < 1.0:
        return "ideal"
    graph = row[f"graph_{kind}"]
    return "layout" if graph < needed and headline(row) >= 0.9 * graph else "runtime"


def measure_group(args, family, fraction, dense, all_regimes, workdir):
    model = build(args, family, fraction)
    paths = {s: export(model, s, workdir, f"{family}-{fraction}-{s}") for s in ("masked", "compact")}
    shared = args.threads == "shared"
    sessions = {"masked": session(paths["masked"], shared_pool=shared), "compact": session(paths["compact"], shared_pool=shared),
                "kernels": session(paths["compact"], kernels=True, shared_pool=shared)}
    print(f"exported {family} at {fraction}", flush=True)
    rows = []
    for regime in all_regimes:
        variants = {"dense": dense, **sessions}
        times = time_interleaved(variants, regime["feed"], args.repeats)
        decisions = sessions["kernels"].run(["decisions"], regime["feed"])[0]
        ms = {v: statistics.median(t) * 1e3 for v, t in times.items()}
        speed = {v: statistics.median(d / r for d, r in zip(times["dense"], times[v], strict=False)) for v in VARIANTS[1:]}
        row = {"regime": regime["name"], "phase": regime["phase"], "batch": regime["batch"], "tokens": regime["tokens"],
               "past": regime["past"], "family": family, "calibrated_fraction": fraction,
               **ideals(model, regime, decisions), **{f"{v}_ms": ms[v] for v in VARIANTS},
               **{f"{v}_nodes": sess.node_count for v, sess in variants.items()},
               **{f"{v}_speedup": speed[v] for v in VARIANTS[1:]}}
        if regime["phase"] == "decode":  # the rate each side reads what its step must read (MB / ms = GB/s)
            row |= {"dense_gbps": row["dense_mb"] / ms["dense"], "kernels_gbps": row["routed_mb"] / ms["kernels"]}
        rows.append(verdict(row))
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    del sessions
    gc.collect()
    return rows


def plot(result, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["regime"] for r in result["rows"]))
    cols = 4
    fig, axes = plt.subplots((len(names) + cols - 1) // cols, cols, figsize=(4 * cols, 3.2 * ((len(names) + cols - 1) // cols)),
                             squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for family, marker in (("informed", "o"), ("mod", "s")):
            rows = sorted((r for r in result["rows"] if r["regime"] == name and r["family"] == family),
                          key=lambda r: r["executed_fraction"])
            if not rows:
                continue
            x = [r["executed_fraction"] for r in rows]
            if "kernels_speedup" in rows[0]:
                ax.plot(x, [r["kernels_speedup"] for r in rows], marker=marker, color="tab:blue",
                        label=f"compact, kernels ({family})")
            ax.plot(x, [r["compact_speedup"] for r in rows], marker=marker, color="tab:orange", alpha=0.7,
                    label=f"compact, bodies ({family})")
            ax.plot(x, [r["masked_speedup"] for r in rows], marker=marker, linestyle=":", color="grey",
                    label=f"masked ({family})")
            ax.plot(x, [r["ideal_flops"] for r in rows], marker=marker, linestyle="--", color="black", alpha=0.6,
                    label=f"FLOP ideal ({family})")
            if "ideal_bytes" in rows[0]:
                ax.plot(x, [r["ideal_bytes"] for r in rows], marker=marker, linestyle="-.", color="tab:green",
                        alpha=0.7, label=f"bytes ideal ({family})")
            ax.plot(x, [r[f"graph_{resource(r)}"] for r in rows], marker=marker, linestyle=(0, (1, 3)), color="tab:purple",
                    alpha=0.8, label=f"graph ideal ({family})")
        ax.axhline(1.0, color="red", linewidth=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("executed fraction")
        ax.set_ylabel("speed-up over dense")
        ax.set_xlim(0, 1)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    handles, labels = next(ax for ax in axes.flat if ax.get_title().startswith("decode")).get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", fontsize=8)
    m = result["machine"]
    pool = ", one shared spinning thread pool" if result["config"].get("threads") == "shared" else ""
    fig.suptitle(f"ONNX Runtime CPU, {m['cpu']} ({m['cores']} cores){pool}, {result['date']}: routed vs dense", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def tables(result) -> str:
    """The README's tables (Markdown) from a recorded result: per regime, every row, and what bounds the misses."""
    rows = result["rows"]
    f2 = lambda v: f"{v:.2f}"  # noqa: E731
    span = lambda vals: f"{min(vals):.2f} – {max(vals):.2f}" if vals else "–"  # noqa: E731
    out = ["| regime | compact (kernels) × dense (min – max) | compact / FLOP ideal | compact / bytes ideal | rows "
           "meeting the target | what bounds the others |", "|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["regime"] for r in rows):
        group = [r for r in rows if r["regime"] == name]
        bounds = [r["bound"] for r in group if r["bound"]]
        why = ", ".join(f"{b} {bounds.count(b)}" for b in BOUNDS if b in bounds) or "–"
        out.append(f"| {name} | {span([headline(r) for r in group])} | "
                   f"{span([headline(r) / r['ideal_flops'] for r in group])} | "
                   f"{span([headline(r) / r['ideal_bytes'] for r in group if 'ideal_bytes' in r])} | "
                   f"{sum(r['meets_target'] for r in group)} / {len(group)} | {why} |")
    out += ["", "| regime | family | executed | units run | dense ms | masked × | compact (bodies) × | compact (kernels) × "
            "| FLOP ideal | bytes ideal | graph ideal | GB/s read (dense / compact) | compact / target ideal | target |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        graph = r[f"graph_{resource(r)}"]
        kernels = f"**{f2(r['kernels_speedup'])}**" if "kernels_speedup" in r else "–"
        rates = f"{r['dense_gbps']:.1f} / {r['kernels_gbps']:.1f}" if "kernels_gbps" in r else "–"
        out.append(f"| {r['regime']} | {r['family']} | {f2(r['executed_fraction'])} | {f2(r['units_run'])} | "
                   f"{r['dense_ms']:.1f} | {f2(r['masked_speedup'])} | {f2(r['compact_speedup'])} | {kernels} | "
                   f"{f2(r['ideal_flops'])} | {f2(r['ideal_bytes']) if 'ideal_bytes' in r else '–'} | {f2(graph)} | {rates} | "
                   f"{f2(r['compact_of_ideal']) if 'compact_of_ideal' in r else '–'} | "
                   f"{'met' if r['meets_target'] else 'missed: ' + r['bound']} |")
    return "\n".join(out) + "\n"


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
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--prefill", default="1x512,1x2048,8x512", help="BATCHxTOKENS,... (batch > 1: ragged)")
    p.add_argument("--decode", default="1x512,1x2048,8x512,8x2048,32x512,32x2048,64x512,64x2048", help="BATCHxPAST,...")
    p.add_argument("--families", default="informed,mod")
    p.add_argument("--fractions", default="0.25,0.5,0.75")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", choices=("per-session", "shared"), default="per-session",
                   help="per-session: each session its own pool, not spinning (the recorded run); shared: one "
                        "process-wide pool that spins")
    p.add_argument("--output", type=Path, help="default: benchmarks/results/onnxrt_routing.json "
                                               "(onnxrt_routing_shared_pool.json with --threads shared)")
    p.add_argument("--tables", type=Path, metavar="JSON", help="print the README tables of a recorded result and exit")
    args = p.parse_args()
    if args.tables:
        print(tables(json.loads(args.tables.read_text())), end="")
        return

    if args.output is None:
        args.output = RESULTS / ("onnxrt_routing_shared_pool.json" if args.threads == "shared" else "onnxrt_routing.json")
    if args.threads == "shared":
        share_one_thread_pool()
    try:
        ort_library_path()  # the kernels variant needs them: say so now, not after the first export
    except IrexportError as e:
        raise SystemExit(f"onnxrt_routing: {e}") from None
    all_regimes = regimes(args)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        dense_model = build(args, "informed", 0.5, units=())  # the same base weights, nothing routed
        dense = session(export(dense_model, "masked", workdir, "dense"), shared_pool=args.threads == "shared")
        for family in args.families.split(","):
            for fraction in (float(f) for f in args.fractions.split(",")):
                rows += measure_group(args, family, fraction, dense, all_regimes, workdir)
    result = {
        "benchmark": "onnxrt_routing", "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "onnxruntime": ort.__version__,
                    "torch": torch.__version__},
        "config": {k: v for k, v in vars(args).items() if k not in ("output", "tables")},
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "targets": "compact with irexport's kernels >= 1.0x dense in every row; prefill and batch-1 decode >= 0.9 of "
                   "the ideal (bytes at batch-1 decode); decode at batch >= 32 >= 0.8 of the FLOP ideal",
        "bounds": BOUNDS,
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    try:
        plot(result, args.output.with_suffix(".png"))
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
