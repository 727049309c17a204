"""Greedy generation with the PyTorch reference or with the exported graph (ONNX Runtime).

Both loops feed the same tokens the same way (left padding, one new token per sequence per step),
so their outputs can be compared token for token. The one exported graph runs both phases: prefill
with an empty cache, then decode steps that extend it.
"""

from __future__ import annotations

import numpy as np

NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": np.float32}  # numpy has no bfloat16


def cache_feed(outputs: dict, layers: int) -> dict:
    """A step's present K/V (``present.{i}.key|value``) as the next step's ``past_key_values.{i}.key|value``
    (numpy arrays or torch tensors alike)."""
    from .export.manifest import past_names, present_names

    return {past: outputs[present] for past, present in zip(past_names(layers), present_names(layers), strict=False)}


def empty_cache(manifest: dict, batch: int) -> dict:
    """The past_key_values feed of a prefill: every layer's cache holding no token (numpy arrays)."""
    from .export.manifest import past_names

    _, heads, _, head_dim = manifest["model"]["kv_shape"]
    empty = np.zeros((batch, heads, 0, head_dim), dtype=NUMPY_DTYPES[manifest["dtype"]])
    return dict.fromkeys(past_names(manifest["model"]["num_layers"]), empty)


def prefill_feed(manifest: dict, feed: dict) -> dict:
    """input_ids / attention_mask with an empty cache: the graph's prefill."""
    return {**feed, **empty_cache(manifest, feed["input_ids"].shape[0])}


def next_step(feed: dict, outputs: dict, layers: int) -> dict:
    """The decode step after ``outputs`` of ``feed``: each sequence's greedy next token, the mask grown by
    it, and the outputs' cache (numpy arrays)."""
    token = outputs["logits"][:, -1].argmax(-1).astype(np.int64)[:, None]
    mask = np.concatenate([feed["attention_mask"], np.ones_like(token)], 1)
    return {"input_ids": token, "attention_mask": mask, **cache_feed(outputs, layers)}


def greedy_reference(model, input_ids: np.ndarray, attention_mask: np.ndarray, new_tokens: int, mode: str = "masked"):
    import torch

    ids, mask = torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
    generated = []
    with torch.no_grad():
        out = model(ids, attention_mask=mask, mode=mode)
        for _ in range(new_tokens):
            token = out.logits[:, -1].float().argmax(-1, keepdim=True)
            generated.append(token)
            mask = torch.cat([mask, torch.ones_like(token)], 1)
            out = model(token, attention_mask=mask, past_key_values=out.past_key_values, mode=mode)
    return torch.cat(generated, 1).numpy()


class OnnxGenerator:
    """The export's graph in one ONNX Runtime session: one copy of the weights (and of their prepacked
    forms) serves prefill and decode. ``routing_ops`` is what runs the routing nodes (``onnxrt_kernels``):
    "auto" (irexport's kernels when built, on the CPU), "kernels" or "bodies"; ``.routing_ops`` says which ran."""

    def __init__(self, export_dir, providers=None, manifest=None, routing_ops="auto"):
        """``manifest``: the export's, when the caller has loaded it (and checked its weights) already."""
        from pathlib import Path

        import onnxruntime as ort

        from .errors import IrexportError
        from .export.manifest import load_manifest
        from .onnxrt_kernels import register

        export_dir = Path(export_dir)
        self.manifest = manifest or load_manifest(export_dir)
        if providers is None:  # CUDA when onnxruntime-gpu has it, else CPU
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        record = self.manifest["graph"]
        path = export_dir / record["file"]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.routing_ops = register(opts, routing_ops, providers)
        self.session = ort.InferenceSession(str(path), opts, providers=list(providers))
        for kind, found in (("inputs", self.session.get_inputs()), ("outputs", self.session.get_outputs())):
            if [v.name for v in found] != [t["name"] for t in record[kind]]:
                raise IrexportError(f"{path}: its {kind} are not the ones manifest.json lists (file replaced? re-export)")
        self.layers = self.manifest["model"]["num_layers"]
        self.names = [o.name for o in self.session.get_outputs()]

    def run(self, feed: dict) -> dict:
        return dict(zip(self.names, self.session.run(None, feed), strict=False))

    def greedy(self, input_ids: np.ndarray, attention_mask: np.ndarray, new_tokens: int) -> np.ndarray:
        feed = prefill_feed(self.manifest, {"input_ids": input_ids, "attention_mask": attention_mask})
        outs, generated = self.run(feed), []
        for _ in range(new_tokens):
            feed = next_step(feed, outs, self.layers)
            generated.append(feed["input_ids"])
            outs = self.run(feed)
        return np.concatenate(generated, 1)
