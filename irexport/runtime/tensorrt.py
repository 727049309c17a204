"""Production Python runtime for irexport's TensorRT and TensorRT-RTX engines.

Loads the plugin library and the engine that ``irexport build`` wrote, runs it on torch CUDA tensors
or numpy arrays in either phase, and generates greedily::

    from irexport.runtime import Engine, EngineGenerator
    engine = Engine("out/engines/demo")                      # plugin library from the build record
    out = engine.run("prefill", {"input_ids": ids, "attention_mask": mask, **empty_cache})
    out = engine.run("decode", {"input_ids": next_ids, "attention_mask": mask, **past})
    tokens = EngineGenerator("out/engines/demo").greedy(ids, mask, new_tokens=16)

The engine is deserialized once (one copy of the weights on the GPU); each phase runs in an execution
context of its own, bound to that phase's optimization profile (prefill: an empty cache, decode).
Everything that can be checked without a GPU is checked first, against the build record
(``build_report.json``): the engine file's size and hash (a truncated or swapped file), the target
(TensorRT or TensorRT-RTX, whichever built it) and its version, the plugin library (present, and the one
the engine was built with), and every input's name, dtype, rank and range of the phase's profile. Each
failure is one ``IrexportError`` line.
numpy has no bfloat16: bfloat16 tensors are fed as and returned as float32 to numpy users.
"""

from __future__ import annotations

import numpy as np

from ..engine.loading import load_plugin_library
from ..engine.record import (
    built_target,
    check_built_from,
    check_engine_file,
    check_tensorrt_version,
    plugin_library_for,
    read_build_report,
)
from ..engine.targets import TensorRTMissing, require_target
from ..errors import BackendError, IrexportError
from ..export.graph_io import PHASES, GraphIO, check_phase

_COMPATIBLE = {"bfloat16": ("bfloat16", "float32")}  # numpy callers feed bfloat16 tensors as float32


def runtime_target(report: dict, where: str):
    """(Target, module) of the TensorRT that built the engine: an engine runs only in its own target."""
    target = built_target(report)
    try:
        return require_target(target.name, builder=False)
    except TensorRTMissing:
        raise IrexportError(f"{where}: built for {target.title}, which is not installed here ({target.install}); "
                            "or rebuild for this machine's TensorRT with irexport build --target") from None


def require_gpu(target) -> None:
    import torch

    if not torch.cuda.is_available():
        raise IrexportError(f"{target.title} engines run on a CUDA GPU, and torch sees none (a CUDA build of torch "
                            "is needed)")


def check_rtx_gpu(report: dict, trt, where: str) -> None:
    """A TensorRT-RTX engine runs on the RTX GPUs it was built for (its recipe's compute capabilities, else
    TensorRT-RTX's own set): say so before it is deserialized, not after."""
    import torch

    if report.get("target") != "tensorrt-rtx":
        return
    major, minor = torch.cuda.get_device_capability()
    gpu, capability = torch.cuda.get_device_name(), f"{major}.{minor}"
    built_for = report.get("compute_capabilities")
    if built_for and capability not in built_for:
        raise IrexportError(f"{where}: built for RTX GPUs of compute capability {', '.join(built_for)}; this {gpu} is "
                            f"{capability} (rebuild with it in the recipe's compute_capabilities)")
    if not hasattr(trt.ComputeCapability, f"SM{major}{minor}"):
        raise IrexportError(f"{where}: TensorRT-RTX {trt.__version__} engines run on RTX GPUs, and this {gpu} (compute "
                            f"capability {capability}) is not one of its targets; build for it with --target tensorrt")


def check_feed(inputs: dict, feed: dict, where: str) -> None:
    """Names, dtypes, ranks and profile ranges of a feed against the engine's recorded inputs."""
    missing = sorted(set(inputs) - set(feed))
    if missing:
        raise IrexportError(f"{where}: missing input {missing[0]!r} (the engine takes {', '.join(inputs)})")
    unknown = sorted(set(feed) - set(inputs))
    if unknown:
        raise IrexportError(f"{where}: unknown input {unknown[0]!r} (the engine takes {', '.join(inputs)})")
    for name, spec in inputs.items():
        value = feed[name]
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype not in _COMPATIBLE.get(spec["dtype"], (spec["dtype"],)):
            raise IrexportError(f"{where}: input {name} is {dtype}, the engine takes {spec['dtype']}")
        shape = tuple(value.shape)
        if len(shape) != len(spec["min"]):
            raise IrexportError(f"{where}: input {name} has shape {list(shape)}, the engine takes rank {len(spec['min'])}")
        outside = [(axis, lo, hi) for axis, (s, lo, hi) in enumerate(zip(shape, spec["min"], spec["max"], strict=False))
                   if not lo <= s <= hi]
        if outside:
            # a phase fixes an axis other than the batch (prefill: the cache's length, decode: the new tokens)
            phase_fixed = all(axis > 0 and lo == hi for axis, lo, hi in outside)
            hint = "prefill takes an empty cache, decode one new token per sequence" if phase_fixed else \
                "rebuild with a wider recipe"
            raise IrexportError(f"{where}: input {name} has shape {list(shape)}, outside the engine's profile "
                                f"{list(spec['min'])} .. {list(spec['max'])} ({hint})")


def prepare_engine(engine_dir, plugins=None, manifest=None):
    """Everything the runtimes check before the engine is deserialized, in order (with ``manifest``, first that
    the engine was built from that export), then its plugin library loaded: returns (report, engine file, plugin
    library or None, Target, module)."""
    where = str(engine_dir)
    report = read_build_report(engine_dir)
    if manifest is not None:
        check_built_from(report, manifest, engine_dir)
    path = check_engine_file(engine_dir, report)
    library = plugin_library_for(report, plugins, where)
    target, trt = runtime_target(report, where)
    check_tensorrt_version(report, trt.__version__, str(path))
    require_gpu(target)
    check_rtx_gpu(report, trt, where)
    if library is not None:
        load_plugin_library(target, trt, library)
    return report, path, library, target, trt


class Engine:
    """The deserialized engine, and an execution context per phase (created on first use)."""

    def __init__(self, engine_dir, plugins=None, manifest=None):
        """``manifest``: the export the engine must have been built from (checked first), when the caller has it."""
        import torch

        self.where = str(engine_dir)
        report, path, _, target, trt = prepare_engine(engine_dir, plugins, manifest)
        self.profiles = report["engine"]["profiles"]
        from ..reference import DTYPES

        self._dtypes = {**DTYPES, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}
        self._dtype_of = {getattr(trt, name): dtype for name, dtype in self._dtypes.items()}  # trt.int64, trt.bool, ...
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        # version-compatible engines carry the lean runtime (and any serialized plugins) as host code
        self._runtime.engine_host_code_allowed = bool(report["version_compatible"])
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise BackendError(f"{path}: {target.title} could not deserialize the engine (see the messages above)")
        if self.engine.num_optimization_profiles != len(PHASES):
            raise IrexportError(f"{path}: {self.engine.num_optimization_profiles} optimization profiles, irexport builds "
                                f"{len(PHASES)} ({', '.join(PHASES)}); rebuild with irexport build")
        self._stream = torch.cuda.Stream()  # not the default stream, which TensorRT warns against (extra syncs)
        self._trt, self.target = trt, target
        self._contexts = {}
        # the phases' contexts share one block of activation memory (the largest profile's): runs are one at a time
        self._activations = torch.empty(max(self.engine.device_memory_size_v2, 1), dtype=torch.uint8, device="cuda")
        self._placeholder = torch.empty(1, dtype=torch.uint8, device="cuda")  # the address of empty tensors
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def inputs(self, phase: str) -> dict:
        """{name: {dtype, min, opt, max}} of the phase's profile, as the build recorded it."""
        return self.profiles[check_phase(phase)]["inputs"]

    def input_dtype(self, phase: str, name: str):
        """The torch dtype the engine takes for an input."""
        return self._dtypes[self.inputs(phase)[name]["dtype"]]

    def _context(self, phase: str):
        if phase not in self._contexts:
            context = self.engine.create_execution_context(self._trt.ExecutionContextAllocationStrategy.USER_MANAGED)
            try:  # the binding raises RuntimeError where the C++ call returns false
                selected = context is not None and context.set_optimization_profile_async(self.profiles[phase]["index"],
                                                                                          self._stream.cuda_stream)
            except RuntimeError:
                selected = False
            if not selected:
                raise BackendError(f"{self.where}: {self.target.title} could not create the {phase} context (see the messages "
                                   "above)")
            context.set_device_memory(self._activations.data_ptr(), self.engine.device_memory_size_v2)
            self._contexts[phase] = context
        return self._contexts[phase]

    def _address(self, tensor) -> int:
        # TensorRT wants a non-null address for every input and output, empty ones (a prefill's cache) too
        return tensor.data_ptr() if tensor.numel() else self._placeholder.data_ptr()

    def run(self, phase: str, feed: dict) -> dict:
        """Inputs as torch tensors (any device) or numpy arrays; outputs as CUDA tensors, or numpy
        arrays when every input was numpy."""
        import torch

        where = f"{self.where} ({check_phase(phase)})"
        inputs = self.inputs(phase)
        check_feed(inputs, feed, where)
        context = self._context(phase)
        as_numpy = all(isinstance(v, np.ndarray) for v in feed.values())
        device = torch.device("cuda")
        tensors = {}
        for name, value in feed.items():
            t = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
            tensors[name] = t.to(device=device, dtype=self.input_dtype(phase, name)).contiguous()
            if not (context.set_input_shape(name, tuple(t.shape))
                    and context.set_tensor_address(name, self._address(tensors[name]))):
                raise BackendError(f"{where}: {self.target.title} refused input {name} of shape {list(t.shape)}")
        outputs = {}
        for name in self.outputs:
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise IrexportError(f"{where}: output {name} has a data-dependent shape {list(shape)}; irexport's "
                                    "graphs have none (an engine from another export?)")
            outputs[name] = torch.empty(shape, dtype=self._dtype_of[self.engine.get_tensor_dtype(name)], device=device)
            context.set_tensor_address(name, self._address(outputs[name]))
        stream = self._stream
        stream.wait_stream(torch.cuda.current_stream())  # the inputs were copied on the current stream
        if not context.execute_async_v3(stream.cuda_stream):
            raise BackendError(f"{where}: {self.target.title} failed to run the engine (see the messages above)")
        stream.synchronize()
        if as_numpy:
            return {n: (t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy() for n, t in outputs.items()}
        return outputs


class EngineGenerator:
    """Greedy generation with the engine's prefill and decode profiles, on the GPU end to end."""

    def __init__(self, engine_dir, plugins=None, manifest=None):
        self.engine = Engine(engine_dir, plugins, manifest)
        self.io = GraphIO.of_engine_inputs(self.engine.inputs("prefill"))

    def greedy(self, input_ids, attention_mask, new_tokens: int) -> np.ndarray:
        import torch

        ids, mask = torch.as_tensor(input_ids, device="cuda"), torch.as_tensor(attention_mask, device="cuda")
        return self.io.greedy(self.engine.run, ids, mask, new_tokens)
