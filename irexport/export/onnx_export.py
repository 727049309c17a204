"""``irexport export``: a routed model to ONNX: one graph (``model.onnx``) that serves prefill (empty
cache) and decode, its ``weights.data``, and ``manifest.json``.

Strategies (how routed units are lowered):
  compact  only the executed tokens of the whole batch go through the unit's matrix products (RouteIndex,
           RouteSeqIndex for the attention core, RouteGather, RouteScatterAdd; data-dependent shapes)
  masked   every unit runs for every token and the result is selected (the research semantics)
Both keep the decision ops (RouteArgmax / RouteThreshold / RouteTopK) as custom nodes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path

import torch

from .. import __version__
from ..atomic import atomic_dir
from ..errors import IrexportError
from ..filehash import sha256
from ..models.attention import head_dim
from ..ops.onnx_functions import attach_functions, translation_table
from ..ops.spec import OPS
from ..reference import DTYPES
from . import graphs
from .graph_io import MASK_DIM, GraphIO
from .manifest import FORMAT_VERSION, MANIFEST, STRATEGIES
from .weights import SharedWeights

OPSET = 18
GRAPH_FILE = "model.onnx"


def checkpoint_hash(model_dir: Path) -> str:
    """sha256 over the checkpoint's configs and weights (names and bytes, in name order)."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(model_dir).iterdir() if p.suffix in (".json", ".safetensors")):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def strip_exporter_metadata(proto) -> None:
    """Drop torch.onnx's debug trail: per-node module paths, FX nodes and stack traces, the exported
    program's signature. It holds Python memory addresses (so re-exports differ between processes) and
    source paths, and no runtime reads it."""
    graph = proto.graph
    for node in graph.node:
        del node.metadata_props[:]
        node.ClearField("doc_string")
    for value in list(graph.input) + list(graph.output) + list(graph.value_info) + list(graph.initializer):
        del value.metadata_props[:]
    del graph.metadata_props[:]
    graph.ClearField("doc_string")


def export_graph(model, strategy: str, dtype: str, keep_exporter_metadata: bool = False,
                 weights: SharedWeights | None = None):
    """The graph as an onnx.ModelProto with the routing ops' function bodies attached; with ``weights``, its
    initializers are in that file (written before the graph is serialized), else inside the proto."""

    wrapper = graphs.Graph(model, strategy)
    io = GraphIO.of_config(model.config, dtype)
    inputs, outputs = io.input_names, io.output_names
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapper, io.example_inputs(model.config.vocab_size), dynamo=True, opset_version=OPSET, input_names=inputs, output_names=outputs,
            dynamic_shapes=io.dynamic_shapes(model.config.max_position_embeddings), custom_translation_table=translation_table(),
            optimize=True, verbose=False, report=False,
        )
    if weights is not None:
        weights.externalize(program.model)
    proto = program.model_proto
    del program
    _name_mask_dim(proto)
    # torch.onnx's optimizer inlines functions, so the bodies are attached after it
    used = attach_functions(proto)
    if not keep_exporter_metadata:
        strip_exporter_metadata(proto)
    return proto, used, inputs, outputs


def _name_mask_dim(proto) -> None:
    """attention_mask's length is past + sequence; torch.export could only name it a dim of its own."""
    dims = [d for v in proto.graph.input if v.name == "attention_mask" for d in v.type.tensor_type.shape.dim]
    if len(dims) != 2 or not dims[1].dim_param:
        raise IrexportError(f"internal: attention_mask was exported with shape {dims} (expected [batch, length])")
    own = dims[1].dim_param
    for value in list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info):
        for d in value.type.tensor_type.shape.dim:
            if d.dim_param == own:
                d.dim_param = MASK_DIM


def _io(proto, names):
    from onnx import helper

    by_name = {v.name: v for v in list(proto.graph.input) + list(proto.graph.output)}
    rows = []
    for name in names:
        t = by_name[name].type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        rows.append({"name": name, "dtype": helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims})
    return rows


def _save(proto, path: Path) -> None:
    """Save, then check the saved file (by path: external data is found from there)."""
    import onnx

    onnx.save_model(proto, str(path))
    onnx.checker.check_model(str(path), full_check=False)


def export(model, out_dir, strategy: str = "compact", dtype: str = "float32", overwrite: bool = False,
           source_dir: Path | None = None, log=lambda msg: None, keep_exporter_metadata: bool = False) -> dict:
    """Write model.onnx, weights.data and manifest.json into ``out_dir`` atomically; returns the manifest."""
    if strategy not in STRATEGIES:
        raise IrexportError(f"unknown strategy {strategy!r} (expected one of {', '.join(STRATEGIES)})")
    if dtype not in DTYPES:
        raise IrexportError(f"unsupported dtype {dtype!r} (expected one of {', '.join(DTYPES)})")
    model = model.to(DTYPES[dtype]).eval()
    manifest = {
        "format_version": FORMAT_VERSION,
        "irexport_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "source": {"path": str(Path(source_dir).resolve()) if source_dir else None,
                   "sha256": checkpoint_hash(source_dir) if source_dir else None},
        "dtype": dtype,
        "strategy": strategy,
        "opset": OPSET,
        "model": {"model_type": model.config.model_type, "num_layers": model.config.num_hidden_layers,
                  "kv_shape": ["batch", model.config.num_key_value_heads, "sequence",
                               head_dim(model.config)],
                  "vocab_size": model.config.vocab_size, "eos_token_id": model.config.eos_token_id},
        "routing": model.routing_config.to_dict(),
    }
    sources = [source_dir] if source_dir else []
    with atomic_dir(out_dir, overwrite=overwrite, inputs=sources) as tmp, SharedWeights(tmp) as weights:
        log(f"exporting the graph ({strategy}, {dtype})")
        proto, used, inputs, outputs = export_graph(model, strategy, dtype, keep_exporter_metadata, weights)
        _save(proto, tmp / GRAPH_FILE)
        manifest["graph"] = {"file": GRAPH_FILE, "sha256": sha256(tmp / GRAPH_FILE), "inputs": _io(proto, inputs),
                             "outputs": _io(proto, outputs), "custom_ops": used}
        manifest["weights"] = weights.record()
        manifest["custom_ops"] = [
            {"name": OPS[n].name, "domain": OPS[n].domain, "version": OPS[n].version, **OPS[n].node_attributes,
             "attributes": list(OPS[n].plugin_fields), "data_dependent_shape": OPS[n].data_dependent_shape}
            for n in sorted(used)
        ]
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
