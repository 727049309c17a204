"""The TensorRT plugin contract, executed: irexport-plugin-harness (plugins/harness) plays TensorRT's role
toward libirexport_plugins.so through the public TensorRT headers, on the routing nodes of real exports
of every family and strategy, and under each loader style. It needs the headers ($TensorRT_ROOT, set by
.ci/run) and nvcc; no TensorRT library and no GPU. The last tests prove that it fails on the defects it
exists to catch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import onnx
import pytest
import torch
from conftest import FAMILY_SETTINGS, tensorrt_headers

from irexport.engine.loading import check_plugin_major, plugin_tensorrt_major
from irexport.engine.targets import RTX_PLUGIN_HEADERS, TARGETS
from irexport.errors import IrexportError
from irexport.ops import OPS, torch_ops
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
    """model.onnx of every family x strategy."""
    return [exported(name, strategy)[0] / "model.onnx" for name in FAMILY_SETTINGS for strategy in STRATEGIES]


def test_every_routing_node_of_every_export_conforms(plugin_build, every_export, tmp_path):
    cases = tmp_path / "cases.tsv"
    count = write_cases(every_export, cases)
    result = harness(plugin_build, "contract", plugin_build / "libirexport_plugins.so", cases)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"plugin contract: {count} of {count} node signatures conform" in result.stdout
    checked = {line.split("(")[-1].rstrip(")") for line in result.stdout.splitlines() if line.startswith("ok ")}
    assert checked == set(OPS), "the exports exercise every op"


def standin(build):
    """The harness's stand-in libnvinfer.so.<major of the plugin library's headers>."""
    return build / "standin" / f"libnvinfer.so.{plugin_tensorrt_major(build / 'libirexport_plugins.so')}"


def test_registration_under_each_loader_style(plugin_build):
    result = harness(plugin_build, "loaders", plugin_build / "libirexport_plugins.so",
                     plugin_build / "libirexport_plugins_register.so", standin(plugin_build))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 15 and "FAIL" not in result.stdout


def test_register_library_loads_tensorrt_by_soname_when_loaded_first(plugin_build):
    """polygraphy run loads --plugins libraries before it imports tensorrt."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(standin(plugin_build).parent)}
    result = subprocess.run([str(plugin_build / "irexport-plugin-harness"), "register-first",
                             str(plugin_build / "libirexport_plugins_register.so")], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "registers 7 creators" in result.stdout, result.stdout + result.stderr


def test_register_library_without_tensorrt_says_so_and_registers_nothing(plugin_build):
    """Polygraphy --plugins (ctypes.CDLL) in a process where no TensorRT of the library's major is loaded."""
    code = f"import ctypes; ctypes.CDLL({str(plugin_build / 'libirexport_plugins_register.so')!r}); print('loaded')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "loaded"
    assert any(line.startswith("irexport plugins: libnvinfer.so.") and "cannot be found; nothing registered" in line
               for line in result.stderr.splitlines()), result.stderr


def test_loaders_refuse_a_plugin_library_of_another_tensorrt_major(plugin_build):
    library = plugin_build / "libirexport_plugins.so"
    major = plugin_tensorrt_major(library)
    check_plugin_major(library, TARGETS["tensorrt"], f"{major}.1.0")
    with pytest.raises(IrexportError, match=f"built against TensorRT {major} headers, TensorRT {major - 1}.8.0 takes "
                                            f"plugins built with TensorRT {major - 1}'s"):
        check_plugin_major(library, TARGETS["tensorrt"], f"{major - 1}.8.0")
    with pytest.raises(IrexportError, match="not an irexport plugin library"):
        check_plugin_major(plugin_build / "libirexport_host.so", TARGETS["tensorrt"], f"{major}.1.0")


def test_tensorrt_rtx_takes_the_plugins_of_the_tensorrt_headers_it_matches(plugin_build):
    """TensorRT-RTX numbers its releases apart: 1.x takes TensorRT 11's plugin interfaces, knowingly (a table),
    and an RTX major irexport does not know is refused rather than guessed."""
    library = plugin_build / "libirexport_plugins.so"
    rtx = TARGETS["tensorrt-rtx"]
    if plugin_tensorrt_major(library) == RTX_PLUGIN_HEADERS[1]:
        check_plugin_major(library, rtx, "1.7.1.116")
    else:
        with pytest.raises(IrexportError, match=f"TensorRT-RTX 1.7.1.116 takes plugins built with TensorRT "
                                                f"{RTX_PLUGIN_HEADERS[1]}'s"):
            check_plugin_major(library, rtx, "1.7.1.116")
    with pytest.raises(IrexportError, match="does not know which TensorRT headers its plugin interfaces match"):
        check_plugin_major(library, rtx, "2.0.0")


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
    out.type.tensor_type.shape.dim[0].dim_param = "sequence"  # claims [sequence, D] instead of [N, D] (N = index's length)
    result = contract(plugin_build, _cases_of(model, "RouteGather"), tmp_path)
    assert result.returncode == 1 and "dimension 0 is u" in result.stdout and "the node declares sequence" in result.stdout
    out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    result = contract(plugin_build, _cases_of(model, "RouteGather"), tmp_path)
    assert result.returncode == 1 and "the plugin gives FLOAT, the node declares FLOAT16" in result.stdout


def test_harness_catches_a_missing_creator_and_bad_cases(plugin_build, exported, tmp_path):
    """A node of an export made before RouteGather's version 2 (per-sequence compaction) finds no creator."""
    text = _cases_of(_compact_model(exported), "RouteGather").replace("\tRouteGather\t2\tirexport", "\tRouteGather\t1\tirexport", 1)
    result = contract(plugin_build, text, tmp_path)
    assert result.returncode == 1 and "no creator registered for (RouteGather, version 1" in result.stdout
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
    # linked to libnvinfer as the old library was (here the harness's stand-in: it binds by soname at dlopen);
    # nvcc as the driver: TensorRT's headers include cuda_runtime_api.h, which it knows where to find
    nvinfer = standin(plugin_build)
    compiled = subprocess.run(["nvcc", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", "-I", str(root / "include"),
                               str(source), "-L", str(nvinfer.parent), f"-l:{nvinfer.name}", "-o", str(lib)],
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    result = harness(plugin_build, "loaders", lib, plugin_build / "libirexport_plugins_register.so", nvinfer)
    assert result.returncode == 1
    assert "FAIL dlopen of the plugin library registers nothing by itself" in result.stdout
    assert "re-entrant registry call" in result.stdout


# ---- enqueue on a GPU: every node signature of the real exports against the torch ops --------------------

TORCH_TYPES = {"FLOAT": torch.float32, "FLOAT16": torch.float16, "BFLOAT16": torch.bfloat16, "INT32": torch.int32,
               "INT64": torch.int64}


def parse_cases(text: str) -> list[dict]:
    cases = []
    for block in filter(str.strip, text.split("\nend\n")):
        lines = [line.split("\t") for line in block.strip().splitlines()]
        cases.append({"op": lines[0][2],
                      "attrs": {f[1]: float(f[3]) for f in lines if f[0] == "attr" and f[2] == "FLOAT"},
                      "inputs": [(f[2], f[3].split(",") if f[3] else []) for f in lines if f[0] == "input"]})
    return cases


def case_inputs(case: dict, seed: int) -> list[torch.Tensor]:
    """Inputs for one node signature: symbolic sizes concrete (the batch 3, others 37), masks valid, and an index
    that holds rows of x: RouteIndex's flat rows [N], or RouteSeqIndex's slots [B, Tq] (with -1 entries)."""
    g = torch.Generator().manual_seed(seed)
    op, ports = case["op"], case["inputs"]
    per_sequence = op in ("RouteGather", "RouteScatterAdd") and len(ports[-1][1]) == 2
    sizes = {(ports[-1] if per_sequence else ports[0])[1][0]: 3}  # the batch: the first dimension of the mask or slots

    def shape(dims):
        return [int(d) if d.lstrip("-").isdigit() else sizes.setdefault(d, 37) for d in dims]

    def mask(b, t):
        m = (torch.rand(b, t, generator=g) < 0.45).to(torch.int32)
        if b > 1:
            m[1] = 0  # a sequence that executes nothing
        return m

    (t0, d0) = ports[0]
    first = shape(d0)
    if op in ("RouteArgmax", "RouteThreshold", "RouteTopK"):
        scores = torch.randn(*first, generator=g).to(TORCH_TYPES[t0])
        if op != "RouteTopK":
            return [scores]
        valid = torch.ones(first[0], first[1], dtype=torch.int32)
        valid[0, : first[1] // 4] = 0  # left padding
        return [scores, valid]
    if op in ("RouteIndex", "RouteSeqIndex"):
        return [mask(first[0], first[1])]
    x = torch.randn(*first, generator=g).to(TORCH_TYPES[t0])
    rows = x.numel() // x.shape[-1]
    if per_sequence:  # slots over x's rows as RouteSeqIndex lays them out; -1 past a sequence's last (and past x's rows)
        index, _ = torch_ops.route_seq_index(mask(shape(ports[-1][1])[0], rows))
        index = torch.where(index < rows, index, -1)
    else:  # the executed rows of x
        index, _ = torch_ops.route_index(mask(1, rows))
    if op == "RouteGather":
        return [x, index]
    return [x, torch.randn(*index.shape, x.shape[-1], generator=g).to(TORCH_TYPES[t0]), index]


def expected_outputs(case: dict, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The torch op of the node's op (its float attributes in the op description's order)."""
    spec = OPS[case["op"]]
    out = getattr(torch_ops, spec.torch_name)(*inputs, *(case["attrs"][a.name] for a in spec.attributes))
    return list(out) if isinstance(out, tuple) else [out]


def raw(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def read_raw(path, dtype: torch.dtype) -> torch.Tensor:
    data = path.read_bytes()
    return torch.frombuffer(bytearray(data), dtype=dtype) if data else torch.empty(0, dtype=dtype)


@pytest.mark.gpu
def test_enqueue_matches_the_torch_ops(plugin_build, every_export, tmp_path):
    """Each distinct node signature runs through the plugin's enqueue (outputs poisoned first), under
    compute-sanitizer when it is installed, and equals the torch op."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU (torch.cuda.is_available() is False)")
    cases_file = tmp_path / "cases.tsv"
    write_cases(every_export, cases_file)
    cases = parse_cases(cases_file.read_text())
    data = tmp_path / "data"
    data.mkdir()
    feeds = []
    for i, case in enumerate(cases):
        inputs = case_inputs(case, seed=i)
        feeds.append(inputs)
        (data / f"case{i}.inputs").write_text("".join(
            f"{dtype}\t{','.join(map(str, x.shape))}\n" for (dtype, _), x in zip(case["inputs"], inputs, strict=False)))
        for k, x in enumerate(inputs):
            (data / f"case{i}.in{k}.bin").write_bytes(raw(x))
    command = [str(plugin_build / "irexport-plugin-harness"), "enqueue", str(plugin_build / "libirexport_plugins.so"),
               str(cases_file), str(data)]
    if shutil.which("compute-sanitizer"):
        command = ["compute-sanitizer", "--tool", "memcheck", "--error-exitcode", "9", *command]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for i, (case, inputs) in enumerate(zip(cases, feeds, strict=True)):
        listing = [line.split("\t") for line in (data / f"case{i}.outputs").read_text().splitlines()]
        outputs = [read_raw(data / f"case{i}.out{j}.bin", TORCH_TYPES[dtype]) for j, (dtype, _) in enumerate(listing)]
        expected = expected_outputs(case, inputs)
        if OPS[case["op"]].data_dependent_shape:  # buffers at the upper bound; the size tensor says how much is the output
            assert outputs[1].item() == expected[1].item(), case
            outputs, expected = [outputs[0][: expected[0].numel()]], expected[:1]
        for got, want in zip(outputs, expected, strict=True):
            got = got.view(want.shape)
            if case["op"] == "RouteThreshold":  # expf on the device
                assert torch.allclose(got, want, atol=1e-6), case
            else:
                assert torch.equal(got, want), case


def test_enqueue_without_a_gpu_is_one_line(plugin_build, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: test_enqueue_matches_the_torch_ops runs instead")
    result = harness(plugin_build, "enqueue", plugin_build / "libirexport_plugins.so", tmp_path / "none.tsv", tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "needs a CUDA GPU" in result.stderr
