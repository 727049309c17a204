"""ONNX Runtime's runtime for an export: its one graph in one session (prefill and decode), and greedy
generation through ``graph_io``'s loop."""

from __future__ import annotations

import numpy as np

from ..export.graph_io import GraphIO, check_phase


class OnnxGenerator:
    """The export's graph in one ONNX Runtime session: one copy of the weights (and of their prepacked
    forms) serves prefill and decode. ``routing_ops`` is what runs the routing nodes (``onnxrt_kernels``):
    "auto" (irexport's kernels when built, on the CPU), "kernels" or "bodies"; ``.routing_ops`` says which ran."""

    def __init__(self, export_dir, providers=None, manifest=None, routing_ops="auto"):
        """``manifest``: the export's, when the caller has loaded it (and checked its weights) already."""
        from pathlib import Path

        import onnxruntime as ort

        from ..errors import IrexportError
        from ..export.manifest import load_manifest
        from ..onnxrt_kernels import register

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
        self.io = GraphIO.of_manifest(self.manifest)
        self.names = [o.name for o in self.session.get_outputs()]

    def run(self, phase: str, feed: dict) -> dict:
        """One run of the graph (``phase`` is the feed's: the session serves both)."""
        check_phase(phase)
        return dict(zip(self.names, self.session.run(None, feed), strict=True))

    def greedy(self, input_ids: np.ndarray, attention_mask: np.ndarray, new_tokens: int) -> np.ndarray:
        return self.io.greedy(self.run, input_ids, attention_mask, new_tokens)
