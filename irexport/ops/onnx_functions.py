"""The routing ops in ONNX: schemas (so the exporter knows their outputs), the translation of each
torch op into one custom node, and each op's portable function body in standard ONNX ops.

A node ``irexport::RouteX`` resolves to the model-local function of the same domain and name, so
stock ONNX Runtime runs the file; TensorRT (>= 10.7) prefers a registered plugin of the same name,
namespace and version, and inlines the function when none is loaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import onnx
from onnx import helper

from .spec import DOMAIN, DOMAIN_OPSET, OPS, OpSpec

# an attribute's type in spec.py -> its Python type (the annotation torch.onnx reads to take a parameter for an
# attribute, not an input) and its type in the schema
ATTRIBUTE_TYPES = {"float": (float, onnx.defs.OpSchema.AttrType.FLOAT)}


def _attribute_type(spec: OpSpec, name: str) -> tuple:
    attr = spec.attribute(name)
    if attr.type not in ATTRIBUTE_TYPES:
        raise ValueError(f"{spec.name}.{attr.name}: attribute type {attr.type!r} is not one of {sorted(ATTRIBUTE_TYPES)}")
    return ATTRIBUTE_TYPES[attr.type]


def _schema(spec: OpSpec) -> onnx.defs.OpSchema:
    S = onnx.defs.OpSchema
    types = {}
    for port in spec.inputs + spec.outputs:
        types.setdefault(port.types, f"T{len(types)}")
    attrs = [S.Attribute(a.name, _attribute_type(spec, a.name)[1], a.doc) for a in spec.attributes]
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


def translation(spec: OpSpec, emit) -> Callable:
    """The function torch.onnx calls for the op's torch op, emitting its node through emit(name, *inputs, **attrs).

    torch.onnx infers an ONNX signature from the function (inspect.signature and typing.get_type_hints: an annotated
    float parameter is an attribute, an unannotated one an input) and calls it with the torch op's arguments,
    positional or by their names, so its parameters are the torch op's: the op's inputs, then its attributes, named
    as in spec.py (a test holds the torch ops to the same names)."""
    P = inspect.Parameter
    attr_types = {a.name: _attribute_type(spec, a.name)[0] for a in spec.attributes}
    signature = inspect.Signature([P(p.name, P.POSITIONAL_OR_KEYWORD) for p in spec.inputs] +
                                  [P(name, P.POSITIONAL_OR_KEYWORD, annotation=t) for name, t in attr_types.items()])

    def translate(*args, **kwargs):
        given = signature.bind(*args, **kwargs).arguments
        return emit(spec.name, *(given[p.name] for p in spec.inputs), **{name: given[name] for name in attr_types})

    translate.__name__ = translate.__qualname__ = spec.torch_name
    translate.__signature__ = signature
    translate.__annotations__ = dict(attr_types)
    return translate


def translation_table() -> dict:
    """torch op -> function emitting the custom node (used as torch.onnx's custom_translation_table)."""
    import onnxscript
    import torch

    from . import torch_ops  # noqa: F401  (registers torch.ops.irexport.*)

    register_schemas()
    opset = onnxscript.values.Opset(DOMAIN, DOMAIN_OPSET)

    def emit(name, *inputs, **attrs):
        return getattr(opset, name)(*inputs, **attrs, **OPS[name].node_attributes)

    return {getattr(torch.ops.irexport, spec.torch_name).default: translation(spec, emit) for spec in OPS.values()}


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
