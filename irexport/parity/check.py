"""Routing-aware parity of a backend (ONNX Runtime, TensorRT; through Polygraphy) against the PyTorch reference.

1. Run the reference and the backend on the same inputs.
2. Decisions: per layer and unit, count the tokens whose decision differs. A flip where the reference's
   margin is within epsilon of the boundary is a near tie (counted, allowed); any other flip fails.
3. Logits and KV cache, compared by Polygraphy's Comparator against the reference *replaying the
   backend's decisions* (identical to the plain reference when nothing flipped), so a near-tie flip
   does not hide or cause a numeric failure. float32: fixed atol/rtol. float16/bfloat16: against the
   float32 reference, each output's error may be at most twice PyTorch's own error in that precision
   on the same inputs (flash-attention's yardstick), so the bound follows the model, not a guess.
4. Greedy generation: N tokens from the backend equal the reference's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import IrexportError
from ..models.config import UNITS
from .tolerances import TOLERANCES

REFERENCE = "torch-reference"


def sample_inputs(vocab_size: int, batch: int = 2, seq: int = 16, seed: int = 0) -> dict:
    """Seeded random tokens; every second sequence is left padded by a third of its length."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, (batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    mask[1::2, : seq // 3] = 0
    return {"input_ids": ids, "attention_mask": mask}


def load_inputs(path: Path, vocab_size: int) -> dict:
    """Polygraphy inputs JSON (as ``irexport run`` writes) or an .npz with input_ids / attention_mask."""
    from ..arrays import read_npz, read_polygraphy_inputs
    from ..reference import MAX_INPUT_TOKENS, check_attention_mask, check_input_ids

    path = Path(path)
    read = read_npz if path.suffix == ".npz" else read_polygraphy_inputs
    data = read(path, names=("input_ids", "attention_mask"), max_items=MAX_INPUT_TOKENS)
    if "input_ids" not in data:
        raise IrexportError(f"{path}: missing key 'input_ids'")

    ids = check_input_ids(np.asarray(data["input_ids"]), vocab_size, str(path))
    mask = data.get("attention_mask")
    mask = np.ones_like(ids) if mask is None else check_attention_mask(np.asarray(mask), ids.shape, str(path))
    return {"input_ids": ids, "attention_mask": mask}


def compare_phase(model, backend, phase: str, feed: dict, strategy: str, dtype: str) -> tuple[dict, dict]:
    """Routing and numerics of the graph in one phase on one feed; also returns the backend's outputs.

    ``model`` is the reference in the export's dtype; for float16/bfloat16 it also computes in float32."""
    from ..reference import run_graph

    tol = TOLERANCES[dtype]
    ref = run_graph(model, feed, strategy)
    got = backend.run(phase, feed)
    valid = feed["attention_mask"][:, -feed["input_ids"].shape[1]:].astype(bool)
    routing = compare_decisions(ref, got, valid, tol["margin_epsilon"])
    replay = ref if routing["flips"] == 0 else run_graph(model, feed, strategy, force=got["decisions"])
    if dtype == "float32":
        numerics = compare_numerics(replay, got, backend.name, tol["atol"], tol["rtol"])
    else:
        exact = run_graph(model, feed, strategy, force=got["decisions"], float32=True)
        numerics = compare_low_precision(exact, replay, got, backend.name, tol["bound_factor"], tol["ulp"])
    numerics["replayed_backend_decisions"] = routing["flips"] > 0
    return {"routing": routing, "numerics": numerics, "passed": routing["passed"] and numerics["passed"]}, got


def compare_decisions(ref: dict, got: dict, valid: np.ndarray, epsilon: float) -> dict:
    rows, flips_total, near_total = [], 0, 0
    layers = ref["decisions"].shape[0]
    for i in range(layers):
        for u, unit in enumerate(UNITS):
            r, g, margin = ref["decisions"][i, u], got["decisions"][i, u], ref["router_margin"][i, u]
            if np.isinf(margin).all():
                continue  # unrouted unit
            flip = (r != g) & valid
            near = flip & (np.abs(margin) <= epsilon)
            n = int(valid.sum())
            rows.append({"layer": i, "unit": unit, "agreement": 1 - float(flip.sum()) / max(n, 1),
                         "flips": int(flip.sum()), "near_tie_flips": int(near.sum())})
            flips_total += int(flip.sum())
            near_total += int(near.sum())
    return {"epsilon": epsilon, "units": rows, "flips": flips_total, "near_tie_flips": near_total,
            "passed": flips_total == near_total}


def _polygraphy_compare(ref: dict, got: dict, backend: str, atol, rtol) -> dict:
    """Polygraphy's simple comparison of logits and the KV cache; atol may be per output (a dict)."""
    from polygraphy import comparator
    from polygraphy.comparator import Comparator, IterationResult, RunResults

    names = [n for n in ref if n == "logits" or n.startswith("present.")]
    results = RunResults()
    for runner, outputs in ((REFERENCE, ref), (backend, got)):
        arrays = {n: np.ascontiguousarray(outputs[n].astype(np.float32)) for n in names}  # compare in float32
        results.append((runner, [IterationResult(arrays, runner_name=runner)]))
    simple = getattr(comparator, "SimpleCompareFunc", None) or comparator.CompareFunc.simple  # renamed in 0.53
    accuracy = Comparator.compare_accuracy(results, compare_func=simple(atol=atol, rtol=rtol, check_shapes=True))
    if not hasattr(accuracy, "keys"):  # newer Polygraphy returns one AccuracyResult per comparison function
        accuracy = accuracy[0]
    per_output = accuracy[(REFERENCE, backend)][0]
    return {n: {"max_abs": float(r.max_absdiff), "max_rel": float(r.max_reldiff), "passed": bool(r)} for n, r in per_output.items()}


def _summary(outputs: dict) -> dict:
    worst_kv = max((o["max_abs"] for n, o in outputs.items() if n != "logits"), default=0.0)
    kv_passed = all(o["passed"] for n, o in outputs.items() if n != "logits")
    return {"logits": outputs["logits"], "kv_cache": {"max_abs": worst_kv, "passed": kv_passed},
            "passed": all(o["passed"] for o in outputs.values())}


def compare_numerics(ref: dict, got: dict, backend: str, atol: float, rtol: float) -> dict:
    return {"rule": "polygraphy simple: |backend - reference| <= atol + rtol * |reference|", "atol": atol, "rtol": rtol,
            **_summary(_polygraphy_compare(ref, got, backend, atol, rtol))}


def compare_low_precision(exact: dict, torch_low: dict, got: dict, backend: str, factor: float, ulp: float) -> dict:
    """float16/bfloat16: per output, max|backend - float32 reference| <= factor * max|torch - float32 reference|.

    The float32 reference and PyTorch in the low precision both replay the backend's decisions. The
    bound has a floor of 2 ulp of the output's largest value, for outputs PyTorch happens to get exact.
    """
    bounds = {}
    for name in exact:
        if name == "logits" or name.startswith("present."):
            scale = float(np.abs(exact[name]).max(initial=0.0))
            torch_error = float(np.abs(torch_low[name].astype(np.float32) - exact[name]).max(initial=0.0))
            bounds[name] = max(factor * torch_error, 2 * ulp * scale)
    outputs = _polygraphy_compare(exact, got, backend, bounds, 0.0)
    for name, row in outputs.items():
        row["bound"] = bounds[name]
    return {"rule": f"max |backend - float32 reference| <= {factor} x max |torch low precision - float32 reference| "
                    f"(floor: 2 ulp of the output's scale)", **_summary(outputs)}


def parity(export_dir: Path, model, feed: dict, new_tokens: int = 8, backends=("onnxrt",), engine_dir=None,
           plugins=None, manifest=None, routing_ops: str = "auto") -> dict:
    """The full routing-aware report of one export directory, one section per backend. ``manifest``: the
    export's, when the caller has loaded it (and checked its weights) already. ``routing_ops``: what runs
    ONNX Runtime's routing nodes (irexport's kernels or the function bodies, ``onnxrt_kernels``)."""
    from ..export.graph_io import GraphIO
    from ..export.manifest import load_manifest
    from ..reference import greedy
    from .backends import ONNXRT, TRT, OnnxrtBackend, TrtBackend, find_engine_dir

    export_dir = Path(export_dir)
    manifest = manifest or load_manifest(export_dir)
    dtype, strategy = manifest["dtype"], manifest["strategy"]
    io = GraphIO.of_manifest(manifest)
    runners = []
    for name in backends:  # every backend is checked (TensorRT present, engines intact) before any runs
        if name == ONNXRT:
            runners.append(OnnxrtBackend(export_dir, manifest, routing_ops))
        elif name == TRT:
            runners.append(TrtBackend(find_engine_dir(export_dir, engine_dir), manifest, plugins))
        else:
            raise IrexportError(f"unknown backend {name!r} (known: torch, {ONNXRT}, {TRT})")
    reference_tokens = None
    results = {}
    for backend in runners:
        first = io.prefill_feed(feed["input_ids"], feed["attention_mask"])
        prefill, got = compare_phase(model, backend, "prefill", first, strategy, dtype)
        step = io.next_step(first, got)  # one decode step after the prefill
        decode, _ = compare_phase(model, backend, "decode", step, strategy, dtype)
        generation = {"new_tokens": new_tokens, "passed": True}
        if new_tokens > 0:
            if reference_tokens is None:
                reference_tokens = greedy(model, feed["input_ids"], feed["attention_mask"], new_tokens, strategy)
            theirs = backend.greedy(feed["input_ids"], feed["attention_mask"], new_tokens)
            generation.update(reference=reference_tokens.tolist(), backend=theirs.tolist(),
                              passed=bool((reference_tokens == theirs).all()))
        results[backend.name] = {"prefill": prefill, "decode": decode, "generation": generation,
                                 "passed": prefill["passed"] and decode["passed"] and generation["passed"]}
        if backend.name == ONNXRT:
            results[backend.name]["routing_ops"] = backend.routing_ops
    return {
        "export": str(export_dir), "dtype": dtype, "strategy": strategy, "reference": REFERENCE,
        "backends": [b.name for b in runners], "inputs": {k: list(v.shape) for k, v in feed.items()},
        "tolerances": TOLERANCES[dtype], "results": results,
        "passed": all(r["passed"] for r in results.values()),
    }
