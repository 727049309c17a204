"""The op descriptions are the single source of truth: torch ops, exported nodes and function bodies
agree with them (the plugins are checked against the same descriptions in their own tests)."""

from pathlib import Path

import onnx
import pytest
import torch
from conftest import run_node

from irexport.ops import DOMAIN, OPS, torch_ops
from irexport.ops.onnx_functions import function_proto, translation, translation_table


@pytest.mark.parametrize("name", list(OPS))
def test_torch_op_signature_matches_the_description(name):
    spec = OPS[name]
    schema = getattr(torch.ops.irexport, spec.torch_name).default._schema
    assert [a.name for a in schema.arguments] == [p.name for p in spec.inputs] + [a.name for a in spec.attributes]
    assert len(schema.returns) == len(spec.outputs)


def test_the_translations_are_derived_from_the_descriptions():
    """torch.onnx calls a torch op's translation with the op's arguments, positional or named, and reads its signature
    (inspect.signature, typing.get_type_hints): the op's inputs, unannotated, then its attributes, annotated float."""
    import inspect
    import typing

    table = translation_table()
    assert len(table) == len(OPS)
    for spec in OPS.values():
        fn = table[getattr(torch.ops.irexport, spec.torch_name).default]
        assert fn.__name__ == spec.torch_name
        assert list(inspect.signature(fn).parameters) == [p.name for p in spec.inputs] + [a.name for a in spec.attributes]
        assert typing.get_type_hints(fn) == {a.name: float for a in spec.attributes}
        emitted = translation(spec, lambda name, *inputs, **attrs: (name, inputs, attrs))
        inputs = [f"<{p.name}>" for p in spec.inputs]
        attrs = {a.name: a.high for a in spec.attributes}
        want = (spec.name, tuple(inputs), attrs)
        assert emitted(*inputs, *attrs.values()) == want
        assert emitted(**{p.name: v for p, v in zip(spec.inputs, inputs, strict=True)}, **attrs) == want
        with pytest.raises(TypeError):
            emitted(*inputs, *attrs.values(), "one too many")


def test_the_generated_table_refuses_a_port_type_it_cannot_say(monkeypatch):
    from irexport.ops import codegen
    from irexport.ops.spec import FLOATS, OpSpec, Port

    def op(inputs, outputs):
        return OpSpec("RouteNew", "route_new", "", tuple(Port(f"i{k}", t, "") for k, t in enumerate(inputs)),
                      tuple(Port(f"o{k}", t, "") for k, t in enumerate(outputs)))

    monkeypatch.setitem(OPS, "RouteNew", op([("tensor(bool)",)], [("tensor(float)",)]))
    with pytest.raises(ValueError, match=r"RouteNew\.i0: types \('tensor\(bool\)',\) have no PortType"):
        codegen.cpp_header()
    monkeypatch.setitem(OPS, "RouteNew", op([("tensor(int32)",)], [FLOATS]))
    with pytest.raises(ValueError, match="RouteNew: a float output of any float type takes its type from a float input"):
        codegen.cpp_header()


@pytest.mark.parametrize("name", list(OPS))
def test_function_body_is_standard_onnx_and_matches_the_description(name):
    spec = OPS[name]
    fn = function_proto(spec, 18)
    assert (fn.domain, fn.name) == (DOMAIN, spec.name)
    assert list(fn.input) == [p.name for p in spec.inputs] and list(fn.output) == [p.name for p in spec.outputs]
    assert list(fn.attribute) == list(spec.plugin_fields)
    assert all(node.domain in ("", "ai.onnx") for node in fn.node)
    produced = {o for node in fn.node for o in node.output}
    assert set(fn.output) <= produced
    # every value named, none like "_" (onnxscript keeps Python's throwaway name; TensorRT-RTX's builder fails on it)
    assert all(o and not o.startswith("_") for o in produced), sorted(produced)


@pytest.fixture(scope="module")
def exported_models(exported):
    return [onnx.load(str(exported(n, s)[0] / "model.onnx")) for n, s in (("informed", "compact"), ("mod", "compact"),
                                                                         ("router_tuning", "masked"))]


def test_exported_nodes_and_functions_match_the_descriptions(exported_models):
    seen = set()
    for model in exported_models:
        assert any(o.domain == DOMAIN and o.version == 1 for o in model.opset_import)
        functions = {(f.domain, f.name): f for f in model.functions}
        opset = next(o.version for o in model.opset_import if o.domain == "")
        for node in model.graph.node:
            if node.domain != DOMAIN:
                assert node.domain in ("", "ai.onnx"), node.domain
                continue
            spec = OPS[node.op_type]
            seen.add(node.op_type)
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert set(attrs) == set(spec.plugin_fields) | set(spec.node_attributes)
            assert attrs["plugin_namespace"] == b"irexport" and attrs["plugin_version"] == spec.plugin_version.encode()
            assert len(node.input) == len(spec.inputs) and len(node.output) == len(spec.outputs)
            body = functions[(DOMAIN, node.op_type)]
            assert body.SerializeToString() == function_proto(spec, opset).SerializeToString()
        assert set(functions) == {(DOMAIN, n.op_type) for n in model.graph.node if n.domain == DOMAIN}
    assert seen == set(OPS), "the exports above use every op"


def _run_body(name, inputs, **attrs):
    """Run the op's function body alone in ONNX Runtime (one node that resolves to the model-local function)."""
    return [torch.from_numpy(o) for o in run_node(name, inputs, **attrs)]


MASKS = {
    "mixed": torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0], [0, 7, 0, 0]], dtype=torch.int32),  # any non-zero executes
    "none": torch.zeros(2, 5, dtype=torch.int32),
    "all": torch.ones(3, 2, dtype=torch.int32),
    "empty batch": torch.zeros(0, 4, dtype=torch.int32),
    "random": (torch.rand(8, 33, generator=torch.Generator().manual_seed(0)) < 0.4).int(),
}


@pytest.mark.parametrize("mask", list(MASKS))
def test_index_bodies_match_the_torch_ops(mask):
    execute = MASKS[mask]
    for name, torch_op in (("RouteIndex", torch_ops.route_index), ("RouteSeqIndex", torch_ops.route_seq_index)):
        got, want = _run_body(name, [execute]), torch_op(execute)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape and torch.equal(g, w), (name, g, w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_gather_and_scatter_bodies_match_the_torch_ops(dtype):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 8, generator=gen).to(dtype)
    execute = MASKS["mixed"]
    index, _ = torch_ops.route_index(execute)
    slots, _ = torch_ops.route_seq_index(execute)
    for idx in (index, slots, index[:0]):  # flat [N], per sequence [B, Tq] with -1 entries, and N = 0
        rows = torch_ops.route_gather(x, idx)
        (got,) = _run_body("RouteGather", [x, idx])
        assert torch.equal(got, rows)
        y = torch.randn(rows.shape, generator=gen).to(dtype)
        (got,) = _run_body("RouteScatterAdd", [x, y, idx])
        assert torch.equal(got, torch_ops.route_scatter_add(x, y, idx))


def test_decision_bodies_match_the_torch_ops():
    gen = torch.Generator().manual_seed(2)
    scores = torch.randn(3, 9, 2, generator=gen)
    valid = torch.ones(3, 9, dtype=torch.int32)
    valid[1, :4] = 0
    assert torch.equal(_run_body("RouteArgmax", [scores])[0], torch_ops.route_argmax(scores))
    one = scores[..., :1].contiguous()
    assert torch.allclose(_run_body("RouteThreshold", [one], threshold=0.3)[0], torch_ops.route_threshold(one, 0.3))
    for capacity in (0.25, 0.5, 1.0):
        assert torch.equal(_run_body("RouteTopK", [one, valid], capacity=capacity)[0],
                           torch_ops.route_topk(one, valid, capacity))


# inputs that set an output's shape, by op; a body may feed them only values known from shapes and constants
SHAPE_INPUTS = {"Reshape": (1,), "Expand": (1,), "Range": (0, 1, 2), "ConstantOfShape": (0,), "Slice": (1, 2, 3, 4),
                "TopK": (1,), "Tile": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "ReduceSum": (1,), "CumSum": (1,)}
SHAPE_ARITHMETIC = {"Squeeze", "Unsqueeze", "Concat", "Gather", "Add", "Sub", "Mul", "Max", "Min", "Cast"}
# axes TensorRT's ONNX parser takes only as weights (onnx-tensorrt: Slice "does not support dynamic axes",
# Squeeze / CumSum assertIsWeights, Unsqueeze allValuesKnown, reduceTensor "Axis input must be an initializer")
AXES_INPUTS = {"Slice": (3,), "Squeeze": (1,), "Unsqueeze": (1,), "ReduceSum": (1,), "CumSum": (1,)}


@pytest.mark.parametrize("name", list(OPS))
def test_function_bodies_take_sizes_from_shapes_only(name):
    """TensorRT builds a body without the plugin only if no value computed from data sets a shape: data-
    dependent sizes must come from NonZero (INonZeroLayer), whose output's Shape is a size like any other."""
    fn = function_proto(OPS[name], 18)
    safe, constants = set(), set()
    for node in fn.node:
        if node.op_type == "Constant":
            constants.update(node.output)
        for position in AXES_INPUTS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position]:
                assert node.input[position] in constants, f"{name}: {node.op_type}'s axes are not a Constant"
        if node.op_type in ("Constant", "Shape"):
            safe.update(node.output)
        elif node.op_type == "CastLike" and node.input[0] in safe:  # the second input gives only the type
            safe.update(node.output)
        elif node.op_type in SHAPE_ARITHMETIC and all(i in safe for i in node.input if i):
            safe.update(node.output)
        for position in SHAPE_INPUTS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position]:
                assert node.input[position] in safe, f"{name}: {node.op_type} takes a size computed from data"


def test_the_generated_op_table_and_page_are_fresh():
    """plugins/common/route_ops.h (the C++ op table) and docs/ops.md are generated from spec.py."""
    from irexport.ops.codegen import FILES, stale

    assert stale() == [], "stale: run python -m irexport.ops.codegen"
    assert set(FILES) == {Path("plugins/common/route_ops.h"), Path("docs/ops.md")}


def test_a_hand_edited_generated_file_is_found_stale(tmp_path):
    from irexport.ops.codegen import FILES, stale

    for path, render in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(render())
    assert stale(tmp_path) == []
    header = tmp_path / "plugins/common/route_ops.h"
    header.write_text(header.read_text().replace('"capacity", 0.0f, 1.0f, true', '"capacity", 0.0f, 2.0f, true'))
    (tmp_path / "docs/ops.md").unlink()
    assert stale(tmp_path) == [Path("plugins/common/route_ops.h"), Path("docs/ops.md")]
