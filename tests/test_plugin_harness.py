"""The TensorRT plugin contract, executed: irexport-plugin-harness (plugins/harness) plays TensorRT's role
toward libirexport_plugins.so through the public TensorRT headers, on the routing nodes of real exports
of every family and strategy, and under each loader style. It needs the headers ($TensorRT_ROOT, set by
.ci/run) and nvcc; no TensorRT library and no GPU. The last tests prove that it fails on the defects it
exists to catch."""

from __future__ import annotations

import subprocess
import textwrap

import onnx
import pytest

from conftest import FAMILY_SETTINGS, tensorrt_headers
from irexport.ops import OPS
from irexport.ops.plugin_cases import node_cases, write_cases

STRATEGIES = ("compact", "masked")


def harness(build, *args):
    return subprocess.run([str(build / "irexport-plugin-harness"), *map(str, args)], capture_output=True, text=True)


def contract(build, cases_text: str, tmp_path):
    cases = tmp_path / "cases.tsv"
    cases.write_text(cases_text)
    return harness(build, "contract", build / "libirexport_plugins.so", cases)


@pytest.fixture(scope="module")
def every_export(exported):
    """model.onnx and decode.onnx of every family x strategy."""
    return [exported(name, strategy)[0] / graph for name in FAMILY_SETTINGS for strategy in STRATEGIES
            for graph in ("model.onnx", "decode.onnx")]


def test_every_routing_node_of_every_export_conforms(plugin_build, every_export, tmp_path):
    cases = tmp_path / "cases.tsv"
    count = write_cases(every_export, cases)
    result = harness(plugin_build, "contract", plugin_build / "libirexport_plugins.so", cases)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"plugin contract: {count} of {count} node signatures conform" in result.stdout
    checked = {line.split("(")[-1].rstrip(")") for line in result.stdout.splitlines() if line.startswith("ok ")}
    assert checked == set(OPS), "the exports exercise every op"


def test_registration_under_each_loader_style(plugin_build):
    result = harness(plugin_build, "loaders", plugin_build / "libirexport_plugins.so",
                     plugin_build / "libirexport_plugins_register.so")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") >= 10 and "FAIL" not in result.stdout


def test_plugins_check_command(plugin_build, exported, cli):
    code, _, err = cli("plugins", "check", exported("mod", "compact")[0], "--build-dir", plugin_build)
    assert code == 0, err
    code, _, err = cli("plugins", "check", plugin_build / "no-such-export", "--build-dir", plugin_build)
    assert code == 2 and "no .onnx file" in err


def _compact_model(exported):
    return onnx.load(str(exported("informed", "compact")[0] / "model.onnx"), load_external_data=False)


def _cases_of(model, op_type: str) -> str:
    return "\n".join(text for text in node_cases(model, "mutated").values() if f"\t{op_type}\t" in text.splitlines()[0]) + "\n"


@pytest.mark.parametrize("form", ["one output", "size tensor unnamed"])
def test_harness_catches_a_wrong_output_count(plugin_build, exported, tmp_path, form):
    """RouteIndex as the exports had it before (one output), or with the size tensor's name left empty."""
    model = _compact_model(exported)
    node = next(n for n in model.graph.node if n.op_type == "RouteIndex")
    if form == "one output":
        del node.output[1:]
    else:
        node.output[1] = ""
    result = contract(plugin_build, _cases_of(model, "RouteIndex"), tmp_path)
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "the plugin has 2 outputs, the node names 1" in result.stdout


def test_harness_catches_a_bool_input(plugin_build, exported, tmp_path):
    """RouteIndex's execute mask as a bool tensor, as the exports had it before."""
    model = _compact_model(exported)
    node = next(n for n in model.graph.node if n.op_type == "RouteIndex")
    info = next(v for v in model.graph.value_info if v.name == node.input[0])
    info.type.tensor_type.elem_type = onnx.TensorProto.BOOL
    result = contract(plugin_build, _cases_of(model, "RouteIndex"), tmp_path)
    assert result.returncode == 1 and "is BOOL: TensorRT plugins take no bool or uint8" in result.stdout


def test_harness_catches_a_wrong_symbolic_shape_and_type(plugin_build, exported, tmp_path):
    model = _compact_model(exported)
    gather = next(n for n in model.graph.node if n.op_type == "RouteGather")
    out = next(v for v in model.graph.value_info if v.name == gather.output[0])
    out.type.tensor_type.shape.dim[1].dim_param = "sequence"  # claims [batch, sequence, D] instead of [batch, Tq, D]
    result = contract(plugin_build, _cases_of(model, "RouteGather"), tmp_path)
    assert result.returncode == 1 and "dimension 1 is u" in result.stdout and "the node declares sequence" in result.stdout
    out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    result = contract(plugin_build, _cases_of(model, "RouteGather"), tmp_path)
    assert result.returncode == 1 and "the plugin gives FLOAT, the node declares FLOAT16" in result.stdout


def test_harness_catches_a_missing_creator_and_bad_cases(plugin_build, exported, tmp_path):
    text = _cases_of(_compact_model(exported), "RouteGather").replace("\tRouteGather\t1\tirexport", "\tRouteGather\t2\tirexport", 1)
    result = contract(plugin_build, text, tmp_path)
    assert result.returncode == 1 and "no creator registered for (RouteGather, version 2" in result.stdout
    result = contract(plugin_build, "case\tonly-two\tfields\n", tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "5 fields" in result.stderr
    assert harness(plugin_build, "nonsense").returncode == 2


# A plugin library with the registration the project had before: it registers its creator when loaded
# and takes it back inside getCreators, a registry call from inside IPluginRegistry::loadLibrary.
SELF_REGISTERING = textwrap.dedent("""
    #include <NvInferRuntime.h>
    using namespace nvinfer1;
    namespace {
    class Creator : public IPluginCreatorV3One {
    public:
        IPluginV3* createPlugin(char const*, PluginFieldCollection const*, TensorRTPhase) noexcept override { return nullptr; }
        PluginFieldCollection const* getFieldNames() noexcept override { return &mFields; }
        char const* getPluginName() const noexcept override { return "RouteArgmax"; }
        char const* getPluginVersion() const noexcept override { return "1"; }
        char const* getPluginNamespace() const noexcept override { return "irexport"; }
    private:
        PluginFieldCollection mFields{};
    };
    Creator gCreator;
    IPluginCreatorInterface* gAll[] = {&gCreator};
    __attribute__((constructor)) void registerOnLoad() { getPluginRegistry()->registerCreator(gCreator, "irexport"); }
    }
    extern "C" __attribute__((visibility("default"))) void setLoggerFinder(ILoggerFinder*) {}
    extern "C" __attribute__((visibility("default"))) IPluginCreatorInterface* const* getCreators(int32_t& n) {
        getPluginRegistry()->deregisterCreator(gCreator);
        n = 1;
        return gAll;
    }
""")


def test_harness_catches_self_registration_and_reentrant_registry_calls(plugin_build, tmp_path):
    root = tensorrt_headers()
    source = tmp_path / "self_registering.cpp"
    source.write_text(SELF_REGISTERING)
    lib = tmp_path / "libself_registering.so"
    # nvcc as the driver: TensorRT's headers include cuda_runtime_api.h, which it knows where to find
    compiled = subprocess.run(["nvcc", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", "-I", str(root / "include"),
                               str(source), "-o", str(lib)], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    result = harness(plugin_build, "loaders", lib, plugin_build / "libirexport_plugins_register.so")
    assert result.returncode == 1
    assert "FAIL dlopen of the plugin library registers nothing by itself" in result.stdout
    assert "re-entrant registry call" in result.stdout
