"""The routing ops in ONNX: schemas (so the exporter knows their outputs), the translation of each
torch op into one custom node, and each op's portable function body in standard ONNX ops.

A node ``irexport::RouteX`` resolves to the model-local function of the same domain and name, so
stock ONNX Runtime runs the file; TensorRT (>= 10.7) prefers a registered plugin of the same name,
namespace and version, and inlines the function when none is loaded.
"""

from __future__ import annotations

import onnx
from onnx import helper

from .spec import DOMAIN, DOMAIN_OPSET, OPS, OpSpec


def _schema(spec: OpSpec) -> onnx.defs.OpSchema:
    S = onnx.defs.OpSchema
    types = {}
    for port in spec.inputs + spec.outputs:
        types.setdefault(port.types, f"T{len(types)}")
    attrs = [S.Attribute(a.name, S.AttrType.FLOAT, a.doc) for a in spec.attributes]
    attrs += [S.Attribute(name, S.AttrType.STRING, "TensorRT plugin lookup") for name in spec.node_attributes]
    return S(
        spec.name, spec.domain, DOMAIN_OPSET, doc=spec.doc,
        inputs=[S.FormalParameter(p.name, types[p.types], p.doc) for p in spec.inputs],
        outputs=[S.FormalParameter(p.name, types[p.types], p.doc) for p in spec.outputs],
        type_constraints=[(name, list(t), "") for t, name in types.items()],
        attributes=attrs,
    )


def register_schemas() -> None:
    """Make the ops known to onnx (and so to onnxscript); idempotent."""
    for spec in OPS.values():
        try:
            onnx.defs.get_schema(spec.name, DOMAIN_OPSET, spec.domain)
        except onnx.defs.SchemaError:
            onnx.defs.register_schema(_schema(spec))


def translation_table() -> dict:
    """torch op -> function emitting the custom node (used as torch.onnx's custom_translation_table)."""
    import onnxscript
    import torch

    from . import torch_ops  # noqa: F401  (registers torch.ops.irexport.*)

    register_schemas()
    opset = onnxscript.values.Opset(DOMAIN, DOMAIN_OPSET)

    def emit(name, *inputs, **attrs):
        return getattr(opset, name)(*inputs, **attrs, **OPS[name].node_attributes)

    # explicit signatures: the exporter binds the torch op's arguments to these parameter names
    def route_argmax(scores):
        return emit("RouteArgmax", scores)

    def route_threshold(scores, threshold: float):
        return emit("RouteThreshold", scores, threshold=threshold)

    def route_topk(scores, valid, capacity: float):
        return emit("RouteTopK", scores, valid, capacity=capacity)

    def route_index(execute):
        return emit("RouteIndex", execute)

    def route_seq_index(execute):
        return emit("RouteSeqIndex", execute)

    def route_gather(x, index):
        return emit("RouteGather", x, index)

    def route_scatter_add(x, y, index):
        return emit("RouteScatterAdd", x, y, index)

    fns = {f.__name__: f for f in (route_argmax, route_threshold, route_topk, route_index, route_seq_index, route_gather,
                                   route_scatter_add)}
    return {getattr(torch.ops.irexport, spec.torch_name).default: fns[spec.torch_name] for spec in OPS.values()}


def function_proto(spec: OpSpec, onnx_opset: int) -> onnx.FunctionProto:
    """The op's body in standard ONNX ops, as a model-local function of the op's domain and name."""
    from .function_bodies import BODIES, BODY_OPSET

    fn = BODIES[spec.name].to_function_proto()
    del fn.opset_import[:]
    fn.opset_import.append(helper.make_opsetid("", max(onnx_opset, BODY_OPSET)))
    fn.doc_string = spec.doc
    return fn


def attach_functions(model: onnx.ModelProto) -> list[str]:
    """Add the function body of every routing op the graph uses; returns the op names, sorted."""
    used = sorted({n.op_type for n in model.graph.node if n.domain == DOMAIN})
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    del model.functions[:]
    model.functions.extend(function_proto(OPS[name], opset) for name in used)
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, DOMAIN_OPSET))
    return used
