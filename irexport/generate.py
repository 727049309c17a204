"""Greedy generation with the PyTorch reference or with the exported ONNX graphs (ONNX Runtime).

Both loops feed the same tokens the same way (left padding, one new token per sequence per step),
so their outputs can be compared token for token.
"""

from __future__ import annotations

import numpy as np


def cache_feed(outputs: dict, layers: int) -> dict:
    """A step's present K/V (``present.{i}.key|value``) as the next step's ``past_key_values.{i}.key|value``
    (numpy arrays or torch tensors alike)."""
    return {f"past_key_values.{i}.{kv}": outputs[f"present.{i}.{kv}"] for i in range(layers) for kv in ("key", "value")}


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
    """Prefill + decode sessions of an export directory."""

    def __init__(self, export_dir, providers=None):
        from pathlib import Path

        import onnxruntime as ort

        from .export.manifest import load_manifest

        export_dir = Path(export_dir)
        self.manifest = load_manifest(export_dir)
        if providers is None:  # CUDA when onnxruntime-gpu has it, else CPU
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        self.prefill, self.decode = (self._session(ort, export_dir, graph, providers) for graph in ("prefill", "decode"))
        self.layers = self.manifest["model"]["num_layers"]

    def _session(self, ort, export_dir, graph: str, providers):
        """A graph's session, whose inputs and outputs must be the ones the manifest lists."""
        from .errors import IrexportError

        record = self.manifest["graphs"][graph]
        path = export_dir / record["file"]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), opts, providers=list(providers))
        for kind, found in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
            if [v.name for v in found] != [t["name"] for t in record[kind]]:
                raise IrexportError(f"{path}: its {kind} are not the ones manifest.json lists for the {graph} graph "
                                    "(files swapped or replaced? re-export)")
        return session

    def greedy(self, input_ids: np.ndarray, attention_mask: np.ndarray, new_tokens: int) -> np.ndarray:
        names = [o.name for o in self.prefill.get_outputs()]
        outs = dict(zip(names, self.prefill.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})))
        mask, generated = attention_mask, []
        for _ in range(new_tokens):
            token = outs["logits"][:, -1].argmax(-1).astype(np.int64)[:, None]
            generated.append(token)
            mask = np.concatenate([mask, np.ones_like(token)], 1)
            feed = {"input_ids": token, "attention_mask": mask, **cache_feed(outs, self.layers)}
            outs = dict(zip(names, self.decode.run(None, feed)))
        return np.concatenate(generated, 1)
