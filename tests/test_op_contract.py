"""The op descriptions are the single source of truth: torch ops, exported nodes and function bodies
agree with them (the plugins are checked against the same descriptions in their own tests)."""

import onnx
import pytest
import torch

from irexport.ops import OPS, DOMAIN
from irexport.ops import torch_ops  # noqa: F401  (registers torch.ops.irexport.*)
from irexport.ops.onnx_functions import function_proto


@pytest.mark.parametrize("name", list(OPS))
def test_torch_op_signature_matches_the_description(name):
    spec = OPS[name]
    schema = getattr(torch.ops.irexport, spec.torch_name).default._schema
    assert [a.name for a in schema.arguments] == [p.name for p in spec.inputs] + [a.name for a in spec.attributes]
    assert len(schema.returns) == len(spec.outputs)


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


@pytest.fixture(scope="module")
def exported_models(exported):
    return [onnx.load(str(exported(n, s)[0] / f)) for n, s in (("informed", "compact"), ("mod", "compact"),
                                                               ("router_tuning", "masked")) for f in ("model.onnx", "decode.onnx")]


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
            assert attrs["plugin_namespace"] == b"irexport" and attrs["plugin_version"] == b"1"
            assert len(node.input) == len(spec.inputs) and len(node.output) == len(spec.outputs)
            body = functions[(DOMAIN, node.op_type)]
            assert body.SerializeToString() == function_proto(spec, opset).SerializeToString()
        assert set(functions) == {(DOMAIN, n.op_type) for n in model.graph.node if n.domain == DOMAIN}
    assert seen == set(OPS), "the exports above use every op"
