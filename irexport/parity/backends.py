"""The backends parity compares against the PyTorch reference, each run through Polygraphy.

A backend runs the export's graph in one phase ("prefill": an empty cache, or "decode") on a feed of
numpy arrays and returns numpy arrays (bfloat16 outputs as float32), and generates greedily; parity
needs nothing else from it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..engine.record import REPORT
from ..errors import BackendError, IrexportError
from ..export.graph_io import check_phase

ONNXRT = "onnxrt"
TRT = "trt"
BACKENDS = (ONNXRT, TRT)


def onnxrt_providers() -> list[str]:
    import onnxruntime as ort

    return ["cuda", "cpu"] if "CUDAExecutionProvider" in ort.get_available_providers() else ["cpu"]


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


class OnnxrtBackend:
    """The export's graph in one ONNX Runtime session (the weights loaded once), run by Polygraphy's
    OnnxrtRunner for both phases and by the greedy loop."""

    name = ONNXRT

    def __init__(self, export_dir: Path, manifest: dict, routing_ops: str = "auto"):
        from ..runtime.onnxrt import OnnxGenerator

        if manifest["dtype"] == "bfloat16" and "cuda" not in onnxrt_providers():
            raise IrexportError(f"{export_dir}: bfloat16 parity needs ONNX Runtime's CUDA provider (onnxruntime-gpu on a "
                                "GPU host); the CPU provider has no bfloat16 kernels")
        self.path = export_dir / manifest["graph"]["file"]
        with onnxrt_errors(self.path):
            self.generator = OnnxGenerator(export_dir, manifest=manifest, routing_ops=routing_ops)
        self.routing_ops = self.generator.routing_ops  # what ran the routing nodes: "kernels" or "bodies"

    def run(self, phase: str, feed: dict) -> dict:
        from polygraphy.backend.onnxrt import OnnxrtRunner
        from polygraphy.logger import G_LOGGER

        G_LOGGER.module_severity = G_LOGGER.ERROR
        with onnxrt_errors(self.path), OnnxrtRunner(self.generator.session, name=f"{ONNXRT} {phase}") as runner:
            return dict(runner.infer(feed))

    def greedy(self, input_ids, attention_mask, new_tokens: int) -> np.ndarray:
        with onnxrt_errors(self.path):
            return self.generator.greedy(input_ids, attention_mask, new_tokens)


class TrtBackend:
    """The engine built by ``irexport build``, checked against its build record and deserialized once, run
    by Polygraphy's TrtRunner on the phase's optimization profile."""

    name = TRT

    def __init__(self, engine_dir: Path, manifest: dict, plugins=None):
        from ..runtime.tensorrt import prepare_engine

        self.engine_dir = Path(engine_dir)
        self.report, self.path, self.plugins, self.target, _ = prepare_engine(self.engine_dir, plugins, manifest)
        self.engine = None

    def run(self, phase: str, feed: dict) -> dict:
        import torch
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner
        from polygraphy.exception import PolygraphyException

        from ..reference import DTYPES
        from ..runtime.tensorrt import check_feed

        profile = self.report["engine"]["profiles"][check_phase(phase)]
        inputs = profile["inputs"]
        check_feed(inputs, feed, f"{self.path} ({phase})")
        # torch tensors in, torch tensors out: numpy has no bfloat16
        tensors = {n: torch.from_numpy(np.ascontiguousarray(v)) for n, v in feed.items()}
        tensors = {n: t.to(DTYPES[inputs[n]["dtype"]]) if inputs[n]["dtype"] in DTYPES else t for n, t in tensors.items()}
        try:
            if self.engine is None:  # deserialized once for both phases: engines can be GBs
                self.engine = EngineFromBytes(BytesFromPath(str(self.path)))()
            with TrtRunner(self.engine, name=f"{TRT} {phase}", optimization_profile=profile["index"]) as runner:
                outputs = runner.infer(tensors, copy_outputs_to_host=True)
        except PolygraphyException as e:
            first = (str(e).strip().splitlines() or ["failed"])[0]
            raise BackendError(f"{self.path}: {self.target.title} failed ({phase}): {first}") from None
        return {n: (t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy() for n, t in outputs.items()}

    def greedy(self, input_ids, attention_mask, new_tokens: int) -> np.ndarray:
        from ..runtime.tensorrt import EngineGenerator

        self.engine = None  # the generator deserializes the engine itself: one copy of the weights at a time
        return EngineGenerator(self.engine_dir, self.plugins).greedy(input_ids, attention_mask, new_tokens)


def find_engine_dir(export_dir: Path, engine_dir=None) -> Path:
    """--engine DIR, else the only directory under EXPORT_DIR/engines/."""
    if engine_dir is not None:
        return Path(engine_dir)
    built = sorted(p for p in (Path(export_dir) / "engines").glob(f"*/{REPORT}"))
    if len(built) != 1:
        found = ", ".join(p.parent.name for p in built) or "none"
        raise IrexportError(f"{export_dir}/engines: the trt backend needs --engine DIR (engine builds found: {found}; "
                            "irexport build makes one)")
    return built[0].parent
