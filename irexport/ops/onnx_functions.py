"""The routing ops in ONNX: schemas (so the exporter knows their outputs), the translation of each
torch op into one custom node, and each op's portable function body in standard ONNX ops.

A node ``irexport::RouteX`` resolves to the model-local function of the same domain and name, so
stock ONNX Runtime runs the file; TensorRT (>= 10.7) prefers a registered plugin of the same name,
namespace and version, and inlines the function when none is loaded.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from .spec import DOMAIN, OPS, OpSpec

_BODY_OPSET = 18  # Reduce* with axes inputs, CastLike


def _schema(spec: OpSpec) -> onnx.defs.OpSchema:
    S = onnx.defs.OpSchema
    types = {}
    for port in spec.inputs + spec.outputs:
        types.setdefault(port.types, f"T{len(types)}")
    attrs = [S.Attribute(a.name, S.AttrType.FLOAT, a.doc) for a in spec.attributes]
    attrs += [S.Attribute(name, S.AttrType.STRING, "TensorRT plugin lookup") for name in spec.node_attributes]
    return S(
        spec.name, spec.domain, spec.version, doc=spec.doc,
        inputs=[S.FormalParameter(p.name, types[p.types], p.doc) for p in spec.inputs],
        outputs=[S.FormalParameter(p.name, types[p.types], p.doc) for p in spec.outputs],
        type_constraints=[(name, list(t), "") for t, name in types.items()],
        attributes=attrs,
    )


def register_schemas() -> None:
    """Make the ops known to onnx (and so to onnxscript); idempotent."""
    for spec in OPS.values():
        try:
            onnx.defs.get_schema(spec.name, spec.version, spec.domain)
        except onnx.defs.SchemaError:
            onnx.defs.register_schema(_schema(spec))


def translation_table() -> dict:
    """torch op -> function emitting the custom node (used as torch.onnx's custom_translation_table)."""
    import onnxscript
    import torch

    from . import torch_ops  # noqa: F401  (registers torch.ops.irexport.*)

    register_schemas()
    opset = onnxscript.values.Opset(DOMAIN, 1)

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

    def route_gather(x, index):
        return emit("RouteGather", x, index)

    def route_scatter_add(x, y, index):
        return emit("RouteScatterAdd", x, y, index)

    fns = {f.__name__: f for f in (route_argmax, route_threshold, route_topk, route_index, route_gather, route_scatter_add)}
    return {getattr(torch.ops.irexport, spec.torch_name).default: fns[spec.torch_name] for spec in OPS.values()}


# ---- function bodies -------------------------------------------------------------------------

def _c(name: str, value, dtype=TensorProto.INT64):
    """A constant node: 1-D tensor of ints (default) or a float scalar."""
    if dtype == TensorProto.FLOAT:
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, [], [value]))
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, [len(value)], value))


def _attr_float(name: str, attr: str):
    node = helper.make_node("Constant", [], [name])
    ref = onnx.AttributeProto(name="value_float", ref_attr_name=attr, type=onnx.AttributeProto.FLOAT)
    node.attribute.append(ref)
    return node


def _first_score(out: str = "s0") -> list:
    """scores [B, T, C] (any float type) -> float32 s[..., 0]."""
    return [
        helper.make_node("Cast", ["scores"], ["s"], to=TensorProto.FLOAT),
        _c("zero_idx", [0]),
        helper.make_node("Gather", ["s", "zero_idx"], ["s0_3d"], axis=-1),
        _c("last_axis", [-1]),
        helper.make_node("Squeeze", ["s0_3d", "last_axis"], [out]),
    ]


def _row_offsets(x: str, stride: str) -> list:
    """offsets [B, 1] = b * stride for flattening [B, T', D] rows; defines b, t, t_plus_1, d, one, minus_one."""
    N = helper.make_node
    return [
        _c("one", [1]),
        _c("minus_one", [-1]),
        N("Shape", [x], ["b"], start=0, end=1),
        N("Shape", [x], ["t"], start=1, end=2),
        N("Shape", [x], ["d"], start=2, end=3),
        N("Add", ["t", "one"], ["t_plus_1"]),
        N("Squeeze", ["b"], ["b_scalar"]),
        N("Constant", [], ["zero_scalar"], value=helper.make_tensor("zero_scalar", TensorProto.INT64, [], [0])),
        N("Constant", [], ["one_scalar"], value=helper.make_tensor("one_scalar", TensorProto.INT64, [], [1])),
        N("Range", ["zero_scalar", "b_scalar", "one_scalar"], ["batch_ids"]),
        N("Unsqueeze", ["batch_ids", "one"], ["batch_col"]),
        N("Mul", ["batch_col", stride], ["offsets"]),
    ]


def _body(spec: OpSpec) -> list:
    N = helper.make_node
    if spec.name == "RouteArgmax":
        return _first_score() + [
            _c("one_idx", [1]),
            N("Gather", ["s", "one_idx"], ["s1_3d"], axis=-1),
            N("Squeeze", ["s1_3d", "last_axis"], ["s1"]),
            N("Sub", ["s0", "s1"], ["margin"]),
        ]
    if spec.name == "RouteThreshold":
        return _first_score() + [
            N("Sigmoid", ["s0"], ["p"]),
            _attr_float("thr", "threshold"),
            N("Sub", ["p", "thr"], ["margin"]),
        ]
    if spec.name == "RouteTopK":
        return _first_score() + [
            _c("neg_inf", float("-inf"), TensorProto.FLOAT),
            N("Cast", ["valid"], ["valid_b"], to=TensorProto.BOOL),  # 1 = true, as the torch op and the kernels
            N("Where", ["valid_b", "s0", "neg_inf"], ["masked"]),
            N("Cast", ["valid_b"], ["valid_i"], to=TensorProto.INT64),
            _c("axis1", [1]),
            N("ReduceSum", ["valid_i", "axis1"], ["n"], keepdims=1),  # [B, 1]
            N("Cast", ["n"], ["n_f"], to=TensorProto.FLOAT),
            _attr_float("cap", "capacity"),
            N("Mul", ["n_f", "cap"], ["k_f"]),
            N("Ceil", ["k_f"], ["k_ceil"]),
            N("Cast", ["k_ceil"], ["k"], to=TensorProto.INT64),
            N("Shape", ["s0"], ["t"], start=1, end=2),  # [1]
            N("TopK", ["masked", "t"], ["ranked", "ranked_idx"], axis=1, largest=1, sorted=1),
            _c("one", [1]),
            _c("zero", [0]),
            N("Sub", ["k", "one"], ["k_minus_1"]),
            N("Max", ["k_minus_1", "zero"], ["kth_pos"]),
            N("GatherElements", ["ranked", "kth_pos"], ["kth"], axis=1),
            N("Sub", ["t", "one"], ["last"]),
            N("Min", ["k", "last"], ["next_pos"]),
            N("GatherElements", ["ranked", "next_pos"], ["next_raw"], axis=1),
            N("Less", ["k", "n"], ["has_next"]),
            _c("one_f", 1.0, TensorProto.FLOAT),
            N("Sub", ["kth", "one_f"], ["below"]),
            N("Where", ["has_next", "next_raw", "below"], ["next"]),
            N("Add", ["kth", "next"], ["pair"]),
            _c("two_f", 2.0, TensorProto.FLOAT),
            N("Div", ["pair", "two_f"], ["boundary"]),
            N("Sub", ["s0", "boundary"], ["margin"]),
        ]
    if spec.name == "RouteIndex":
        return [
            N("Cast", ["execute"], ["execute_b"], to=TensorProto.BOOL),  # 1 = true, as the torch op and the kernels
            N("Cast", ["execute_b"], ["e"], to=TensorProto.INT64),
            _c("axis1", [1]),
            N("CumSum", ["e", "axis1"], ["csum"]),
            _c("one", [1]),
            N("Sub", ["csum", "one"], ["rank"]),
            N("ReduceSum", ["e", "axis1"], ["counts"], keepdims=1),
            N("ReduceMax", ["counts"], ["max_count"], keepdims=0),  # of an empty batch: the int64 minimum
            N("Constant", [], ["zero_scalar"], value=helper.make_tensor("zero_scalar", TensorProto.INT64, [], [0])),
            N("Max", ["max_count", "zero_scalar"], ["tq"]),  # Tq, 0-d
            N("Cast", ["tq"], ["count"], to=TensorProto.INT32),  # the node's second output: the size tensor
            N("Where", ["execute_b", "rank", "tq"], ["dest"]),  # skipped tokens go to a spare column
            N("Shape", ["execute"], ["bt"]),
            N("Shape", ["execute"], ["b"], start=0, end=1),
            N("Shape", ["execute"], ["t"], start=1, end=2),
            N("Constant", [], ["one_scalar"], value=helper.make_tensor("one_scalar", TensorProto.INT64, [], [1])),
            N("Squeeze", ["t"], ["t_scalar"]),
            N("Range", ["zero_scalar", "t_scalar", "one_scalar"], ["pos"]),
            N("Expand", ["pos", "bt"], ["positions"]),
            _c("zero", [0]),
            N("Unsqueeze", ["tq", "zero"], ["tq_1d"]),
            N("Add", ["tq_1d", "one"], ["width"]),
            N("Concat", ["b", "width"], ["init_shape"], axis=0),
            _c("minus_one", [-1]),
            N("Expand", ["minus_one", "init_shape"], ["init"]),
            N("ScatterElements", ["init", "dest", "positions"], ["scattered"], axis=1),
            N("Slice", ["scattered", "zero", "tq_1d", "axis1"], ["index"]),
        ]
    if spec.name == "RouteGather":
        # whole rows through Gather on the flattened [B*T, D] rows: a row copy, not an element gather
        return _row_offsets("x", stride="t") + [
            _c("zero", [0]),
            _c("last_axis", [-1]),
            N("Max", ["index", "zero"], ["safe"]),
            N("Add", ["safe", "offsets"], ["flat_index"]),
            N("Concat", ["minus_one", "d"], ["rows_shape"], axis=0),
            N("Reshape", ["x", "rows_shape"], ["rows"]),
            N("Gather", ["rows", "flat_index"], ["picked"], axis=0),  # [B, Tq, D]
            N("GreaterOrEqual", ["index", "zero"], ["ok"]),
            N("Unsqueeze", ["ok", "last_axis"], ["ok_3d"]),
            _c("zero_f", 0.0, TensorProto.FLOAT),
            N("CastLike", ["zero_f", "x"], ["zero_x"]),
            N("Where", ["ok_3d", "picked", "zero_x"], ["out"]),
        ]
    if spec.name == "RouteScatterAdd":
        # rows of x padded with one spare row per sequence (the target of index -1), flattened to
        # [B*(T+1), D]; read, add and write back whole rows (ScatterND), then drop the spare rows
        return _row_offsets("x", stride="t_plus_1") + [
            _c("zero", [0]),
            _c("axis1", [1]),
            _c("last_axis", [-1]),
            N("Squeeze", ["t"], ["t_scalar"]),
            N("GreaterOrEqual", ["index", "zero"], ["ok"]),
            N("Where", ["ok", "index", "t_scalar"], ["local"]),
            N("Add", ["local", "offsets"], ["flat_index"]),
            N("Concat", ["b", "one", "d"], ["pad_shape"], axis=0),
            _c("zero_f", 0.0, TensorProto.FLOAT),
            N("CastLike", ["zero_f", "x"], ["zero_x"]),
            N("Expand", ["zero_x", "pad_shape"], ["pad"]),
            N("Concat", ["x", "pad"], ["padded"], axis=1),
            N("Concat", ["minus_one", "d"], ["rows_shape"], axis=0),
            N("Reshape", ["padded", "rows_shape"], ["rows"]),
            N("Gather", ["rows", "flat_index"], ["current"], axis=0),
            N("CastLike", ["y", "x"], ["y_x"]),
            N("Add", ["current", "y_x"], ["summed_rows"]),
            N("Unsqueeze", ["flat_index", "last_axis"], ["nd_index"]),
            N("ScatterND", ["rows", "nd_index", "summed_rows"], ["written"]),  # unique rows but the spare ones
            N("Concat", ["b", "t_plus_1", "d"], ["padded_shape"], axis=0),
            N("Reshape", ["written", "padded_shape"], ["written_3d"]),
            N("Slice", ["written_3d", "zero", "t", "axis1"], ["out"]),
        ]
    raise KeyError(spec.name)


def function_proto(spec: OpSpec, onnx_opset: int) -> onnx.FunctionProto:
    """The op's body in standard ONNX ops, as a model-local function of the op's domain and name."""
    return helper.make_function(
        spec.domain, spec.name,
        inputs=[p.name for p in spec.inputs], outputs=[p.name for p in spec.outputs],
        nodes=_body(spec),
        opset_imports=[helper.make_opsetid("", max(onnx_opset, _BODY_OPSET))],
        attributes=list(spec.plugin_fields),
        doc_string=spec.doc,
    )


def attach_functions(model: onnx.ModelProto) -> list[str]:
    """Add the function body of every routing op the graph uses; returns the op names, sorted."""
    used = sorted({n.op_type for n in model.graph.node if n.domain == DOMAIN})
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    del model.functions[:]
    model.functions.extend(function_proto(OPS[name], opset) for name in used)
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return used
