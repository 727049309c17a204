"""Production Python runtime for irexport's TensorRT engines.

Loads the plugin library and the engines that ``irexport build`` wrote, runs them on torch CUDA
tensors or numpy arrays, and generates greedily with the prefill + decode engines::

    from irexport.runtime import Engine, EngineGenerator
    prefill = Engine("out/engines/demo", "prefill")          # plugin library from the build record
    out = prefill.run({"input_ids": ids, "attention_mask": mask})
    tokens = EngineGenerator("out/engines/demo").greedy(ids, mask, new_tokens=16)

Everything that can be checked without a GPU is checked first, against the build record
(``build_report.json``): the engine file's size and hash (a truncated or swapped file), the TensorRT
version, the plugin library (present, and the one the engine was built with), and every input's name,
dtype, rank and range of the optimization profile. Each failure is one ``IrexportError`` line.
numpy has no bfloat16: bfloat16 tensors are fed as and returned as float32 to numpy users.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .engine.build import REPORT
from .engine.loading import (
    find_plugin_library,
    load_plugin_library,
    require_tensorrt,
    sha256,
    version_tuple,
)
from .errors import IrexportError
from .export.manifest import DTYPES
from .jsonrecord import read_json_record
from .schema import FILE_NAME, SHA256, Bool, Int, List, Map, Obj, Opt, Str

_COMPATIBLE = {"bfloat16": ("bfloat16", "float32")}  # numpy callers feed bfloat16 tensors as float32


_SHAPE = List(Int(0, 1 << 31), max_len=8)
# what the runtimes read of build_report.json (irexport.engine.build writes it)
REPORT_SCHEMA = Obj({
    "tensorrt_version": Str(pattern=r"[0-9]{1,4}(\.[0-9]{1,6}){1,3}([.+-][0-9A-Za-z.+-]*)?",
                            what="a TensorRT version such as '10.8.0.43'"),
    "version_compatible": Bool(),
    "export": Obj({"source_sha256": Opt(SHA256), "dtype": Str(choices=DTYPES)}),
    "plugins": Opt(Obj({"path": Str(), "sha256": SHA256, "serialized": Bool()})),
    "engines": Map(Obj({"file": FILE_NAME, "bytes": Int(0), "sha256": SHA256,
                        "inputs": Map(Obj({"dtype": Str(), "min": _SHAPE, "opt": _SHAPE, "max": _SHAPE}))}),
                   keys=("prefill", "decode")),
})


def read_build_report(engine_dir) -> dict:
    return read_json_record(Path(engine_dir) / REPORT, f"{engine_dir}: no {REPORT} (not a directory written by irexport build)",
                            REPORT_SCHEMA, "rebuild with this irexport version")


def check_built_from(report: dict, manifest: dict, engine_dir) -> None:
    """The engines were built from this export (same source checkpoint and dtype)."""
    built = report["export"]
    if built["source_sha256"] != manifest["source"]["sha256"] or built["dtype"] != manifest["dtype"]:
        raise IrexportError(f"{engine_dir}: built from another export ({built['dtype']}, source "
                            f"{(built['source_sha256'] or 'unknown')[:12]}); rebuild with irexport build")


def check_engine_file(engine_dir, report: dict, graph: str) -> Path:
    """The engine file is the one the build wrote: same size (not truncated), same hash (not swapped)."""
    if graph not in report["engines"]:
        raise IrexportError(f"{engine_dir}/{REPORT}: no {graph!r} engine (have: {', '.join(report['engines'])})")
    record = report["engines"][graph]
    path = Path(engine_dir) / record["file"]
    if not path.is_file():
        raise IrexportError(f"{path}: engine file not found")
    size = path.stat().st_size
    if size != record["bytes"]:
        raise IrexportError(f"{path}: {size} bytes, the build wrote {record['bytes']} (truncated or replaced; rebuild)")
    if sha256(path) != record["sha256"]:
        raise IrexportError(f"{path}: contents differ from the engine the build wrote (sha256 mismatch; rebuild)")
    return path


def check_tensorrt_version(report: dict, installed: str, where: str) -> None:
    """Plain engines load only in the TensorRT version that built them; version-compatible engines in
    that version or a newer one of the same major."""
    built = report["tensorrt_version"]
    same_major = built.split(".")[0] == installed.split(".")[0]
    if installed != built and not (report["version_compatible"] and same_major and version_tuple(installed) >= version_tuple(built)):
        raise IrexportError(f"{where}: built with TensorRT {built}, this is TensorRT {installed} (rebuild, or build "
                            "with version_compatible: true to load in newer runtimes)")


def plugin_library_for(report: dict, path=None, where: str = "") -> Path | None:
    """The plugin library the engines need (None when they need none, or carry it serialized)."""
    plugins = report["plugins"]
    if plugins is None or plugins["serialized"]:
        return None
    library = find_plugin_library(path or plugins["path"])
    if sha256(library) != plugins["sha256"]:
        raise IrexportError(f"{library}: not the plugin library {where} was built with (sha256 differs; rebuild "
                            "the engines or pass the original with --plugins)")
    return library


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
        if any(not lo <= s <= hi for s, lo, hi in zip(shape, spec["min"], spec["max"])):
            raise IrexportError(f"{where}: input {name} has shape {list(shape)}, outside the engine's profile "
                                f"{list(spec['min'])} .. {list(spec['max'])} (rebuild with a wider recipe)")


class Engine:
    """One deserialized engine and its execution context."""

    def __init__(self, engine_dir, graph: str = "prefill", plugins=None):
        import torch

        self.where = f"{engine_dir}/{graph}"
        report = read_build_report(engine_dir)
        path = check_engine_file(engine_dir, report, graph)
        library = plugin_library_for(report, plugins, str(engine_dir))
        trt = require_tensorrt(builder=False)
        check_tensorrt_version(report, trt.__version__, str(path))
        if not torch.cuda.is_available():
            raise IrexportError("TensorRT engines run on a CUDA GPU, and torch sees none (a CUDA build of torch is needed)")
        if library is not None:
            load_plugin_library(trt, library)
        self.inputs = report["engines"][graph]["inputs"]
        from .reference import DTYPES

        self._dtypes = {**DTYPES, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}
        self._dtype_of = {getattr(trt, name): dtype for name, dtype in self._dtypes.items()}  # trt.int64, trt.bool, ...
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        # version-compatible engines carry the lean runtime (and any serialized plugins) as host code
        self._runtime.engine_host_code_allowed = bool(report["version_compatible"])
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise IrexportError(f"{path}: TensorRT could not deserialize the engine (see the messages above)")
        self.context = self.engine.create_execution_context()
        self._stream = torch.cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def run(self, feed: dict) -> dict:
        """Inputs as torch tensors (any device) or numpy arrays; outputs as CUDA tensors, or numpy
        arrays when every input was numpy."""
        import torch

        check_feed(self.inputs, feed, self.where)
        as_numpy = all(isinstance(v, np.ndarray) for v in feed.values())
        device = torch.device("cuda")
        tensors = {}
        for name, value in feed.items():
            t = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
            tensors[name] = t.to(device=device, dtype=self._dtypes[self.inputs[name]["dtype"]]).contiguous()
            if not (self.context.set_input_shape(name, tuple(t.shape))
                    and self.context.set_tensor_address(name, tensors[name].data_ptr())):
                raise IrexportError(f"{self.where}: TensorRT refused input {name} of shape {list(t.shape)}")
        outputs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise IrexportError(f"{self.where}: output {name} has a data-dependent shape {list(shape)}; irexport's "
                                    "graphs have none (an engine from another export?)")
            outputs[name] = torch.empty(shape, dtype=self._dtype_of[self.engine.get_tensor_dtype(name)], device=device)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        stream = self._stream  # not the default stream, which TensorRT warns against (extra syncs)
        stream.wait_stream(torch.cuda.current_stream())  # the inputs were copied on the current stream
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise IrexportError(f"{self.where}: TensorRT failed to run the engine (see the messages above)")
        stream.synchronize()
        if as_numpy:
            return {n: (t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy() for n, t in outputs.items()}
        return outputs


class EngineGenerator:
    """Greedy generation with the prefill and decode engines of one build, on the GPU end to end."""

    def __init__(self, engine_dir, plugins=None):
        report = read_build_report(engine_dir)
        for graph in ("prefill", "decode"):  # both files are intact before either is loaded
            check_engine_file(engine_dir, report, graph)
        self.prefill = Engine(engine_dir, "prefill", plugins)
        self.decode = Engine(engine_dir, "decode", plugins)
        self.layers = sum(name.startswith("past_key_values.") and name.endswith(".key") for name in self.decode.inputs)

    def greedy(self, input_ids, attention_mask, new_tokens: int) -> np.ndarray:
        import torch

        from .generate import cache_feed

        mask = torch.as_tensor(attention_mask, device="cuda")
        outs = self.prefill.run({"input_ids": torch.as_tensor(input_ids, device="cuda"), "attention_mask": mask})
        generated = []
        for _ in range(new_tokens):
            token = outs["logits"][:, -1].float().argmax(-1, keepdim=True)
            generated.append(token)
            mask = torch.cat([mask, torch.ones_like(token)], 1)
            outs = self.decode.run({"input_ids": token, "attention_mask": mask, **cache_feed(outs, self.layers)})
        return torch.cat(generated, 1).cpu().numpy()

