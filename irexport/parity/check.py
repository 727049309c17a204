"""Routing-aware parity of ONNX Runtime (through Polygraphy) against the PyTorch reference.

1. Run the reference and the backend on the same inputs.
2. Decisions: per layer and unit, count the tokens whose decision differs. A flip where the reference's
   margin is within epsilon of the boundary is a near tie (counted, allowed); any other flip fails.
3. Logits and KV cache: compared by Polygraphy's Comparator against the reference *replaying the
   backend's decisions* (identical to the plain reference when nothing flipped), so a near-tie flip
   does not hide or cause a numeric failure.
4. Greedy generation: N tokens from the backend equal the reference's.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..errors import IrexportError
from ..models.config import UNITS
from .tolerances import TOLERANCES

REFERENCE = "torch-reference"
ONNXRT = "onnxrt"


def sample_inputs(vocab_size: int, batch: int = 2, seq: int = 16, seed: int = 0) -> dict:
    """Seeded random tokens; every second sequence is left padded by a third of its length."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, (batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    mask[1::2, : seq // 3] = 0
    return {"input_ids": ids, "attention_mask": mask}


def load_inputs(path: Path, vocab_size: int) -> dict:
    """Polygraphy inputs JSON (as ``irexport run`` writes) or an .npz with input_ids / attention_mask."""
    path = Path(path)
    if not path.is_file():
        raise IrexportError(f"{path}: not found")
    try:
        if path.suffix == ".npz":
            data = dict(np.load(path, allow_pickle=False))
        else:
            from polygraphy.json import load_json

            data = load_json(str(path))[0]
    except Exception as e:  # noqa: BLE001 - any unreadable file is bad input
        raise IrexportError(f"{path}: not a readable inputs file ({e})") from None
    if "input_ids" not in data:
        raise IrexportError(f"{path}: missing key 'input_ids'")
    from ..reference import check_attention_mask, check_input_ids

    ids = check_input_ids(np.asarray(data["input_ids"]), vocab_size, str(path))
    mask = data.get("attention_mask")
    mask = np.ones_like(ids) if mask is None else check_attention_mask(np.asarray(mask), ids.shape, str(path))
    return {"input_ids": ids, "attention_mask": mask}


def decode_feed(prefill_feed: dict, prefill_out: dict, layers: int) -> dict:
    """One decode step after a prefill: each sequence's greedy next token, and the prefill's cache."""
    token = prefill_out["logits"][:, -1].argmax(-1).astype(np.int64)[:, None]
    feed = {"input_ids": token, "attention_mask": np.concatenate([prefill_feed["attention_mask"], np.ones_like(token)], 1)}
    for i in range(layers):
        feed[f"past_key_values.{i}.key"] = prefill_out[f"present.{i}.key"]
        feed[f"past_key_values.{i}.value"] = prefill_out[f"present.{i}.value"]
    return feed


def run_reference(model, feed: dict, mode: str, force=None) -> dict:
    import torch

    dtype = next(model.parameters()).dtype
    layers = model.config.num_hidden_layers
    past = None
    if "past_key_values.0.key" in feed:
        past = tuple((torch.from_numpy(feed[f"past_key_values.{i}.key"]).to(dtype),
                      torch.from_numpy(feed[f"past_key_values.{i}.value"]).to(dtype)) for i in range(layers))
    with torch.no_grad():
        out = model(torch.from_numpy(feed["input_ids"]), attention_mask=torch.from_numpy(feed["attention_mask"]),
                    past_key_values=past, mode=mode, force_execute=None if force is None else torch.from_numpy(force))
    result = {"logits": out.logits.float().numpy(), "decisions": out.execute.numpy(), "router_margin": out.margin.numpy()}
    for i, (k, v) in enumerate(out.past_key_values):
        result[f"present.{i}.key"] = k.float().numpy()
        result[f"present.{i}.value"] = v.float().numpy()
    return result


def onnxrt_providers() -> list[str]:
    import onnxruntime as ort

    return ["cuda", "cpu"] if "CUDAExecutionProvider" in ort.get_available_providers() else ["cpu"]


def run_onnxrt(model_path: Path, feed: dict) -> dict:
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.ERROR
    with onnxrt_errors(model_path):
        with OnnxrtRunner(SessionFromOnnx(str(model_path), providers=onnxrt_providers()), name=ONNXRT) as runner:
            return dict(runner.infer(feed))


@contextlib.contextmanager
def onnxrt_errors(model_path: Path):
    """ONNX Runtime (or Polygraphy input check) failures as one line."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own pybind exception types
        if not type(e).__module__.startswith(("onnxruntime", "polygraphy")):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise IrexportError(f"{model_path}: ONNX Runtime failed: {first}") from None


def compare_graph(model, path: Path, feed: dict, strategy: str, tol: dict) -> tuple[dict, dict]:
    """Routing and numerics of one graph on one feed; also returns the backend's outputs."""
    ref = run_reference(model, feed, strategy)
    got = run_onnxrt(path, feed)
    valid = feed["attention_mask"][:, -feed["input_ids"].shape[1]:].astype(bool)
    routing = compare_decisions(ref, got, valid, tol["margin_epsilon"])
    replay = ref if routing["flips"] == 0 else run_reference(model, feed, strategy, force=got["decisions"])
    numerics = compare_numerics(replay, got, tol["atol"], tol["rtol"])
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


def compare_numerics(ref: dict, got: dict, atol: float, rtol: float) -> dict:
    from polygraphy import comparator
    from polygraphy.comparator import Comparator, IterationResult, RunResults
    names = [n for n in ref if n == "logits" or n.startswith("present.")]
    results = RunResults()
    for runner, outputs in ((REFERENCE, ref), (ONNXRT, got)):
        arrays = {n: np.ascontiguousarray(outputs[n].astype(np.float32)) for n in names}  # compare in float32
        results.append((runner, [IterationResult(arrays, runner_name=runner)]))
    simple = getattr(comparator, "SimpleCompareFunc", None) or comparator.CompareFunc.simple  # renamed in 0.53
    accuracy = Comparator.compare_accuracy(results, compare_func=simple(atol=atol, rtol=rtol, check_shapes=True))
    if not hasattr(accuracy, "keys"):  # newer Polygraphy returns one AccuracyResult per comparison function
        accuracy = accuracy[0]
    per_output = accuracy[(REFERENCE, ONNXRT)][0]
    outputs = {n: {"max_abs": float(r.max_absdiff), "max_rel": float(r.max_reldiff), "passed": bool(r)} for n, r in per_output.items()}
    worst_kv = max((outputs[n]["max_abs"] for n in outputs if n != "logits"), default=0.0)
    return {"atol": atol, "rtol": rtol, "logits": outputs["logits"],
            "kv_cache": {"max_abs": worst_kv, "passed": all(o["passed"] for o in outputs.values())},
            "passed": bool(accuracy)}


def parity(export_dir: Path, model, feed: dict, new_tokens: int = 8) -> dict:
    """The full routing-aware report for one export directory."""
    from ..generate import OnnxGenerator, greedy_reference

    from ..export.manifest import load_manifest

    export_dir = Path(export_dir)
    manifest = load_manifest(export_dir)
    dtype, strategy = manifest["dtype"], manifest["strategy"]
    tol = TOLERANCES[dtype]
    if dtype == "bfloat16" and "cuda" not in onnxrt_providers():
        raise IrexportError(f"{export_dir}: bfloat16 parity needs ONNX Runtime's CUDA provider (onnxruntime-gpu on a GPU "
                            "host); the CPU provider has no bfloat16 kernels")
    graphs = manifest["graphs"]
    prefill, got = compare_graph(model, export_dir / graphs["prefill"]["file"], feed, strategy, tol)
    step = decode_feed(feed, got, manifest["model"]["num_layers"])
    decode, _ = compare_graph(model, export_dir / graphs["decode"]["file"], step, strategy, tol)

    generation = {"new_tokens": new_tokens}
    if new_tokens > 0:
        with onnxrt_errors(export_dir / manifest["graphs"]["decode"]["file"]):
            theirs = OnnxGenerator(export_dir).greedy(feed["input_ids"], feed["attention_mask"], new_tokens)
        ours = greedy_reference(model, feed["input_ids"], feed["attention_mask"], new_tokens, strategy)
        generation.update(reference=ours.tolist(), onnxrt=theirs.tolist(), passed=bool((ours == theirs).all()))
    else:
        generation["passed"] = True
    return {
        "export": str(export_dir), "dtype": dtype, "strategy": strategy, "backends": [REFERENCE, ONNXRT],
        "inputs": {k: list(v.shape) for k, v in feed.items()},
        "tolerances": tol, "prefill": prefill, "decode": decode, "generation": generation,
        "passed": prefill["passed"] and decode["passed"] and generation["passed"],
    }
