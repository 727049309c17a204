"""irexport's ONNX Runtime kernels (plugins/onnxruntime, libirexport_onnxrt.so), built here against ONNX
Runtime's public C API header ($ONNXRUNTIME_ROOT; .ci/run points it at ../shared/third_party/onnxruntime):
each op's kernel against its function body node by node, parity of every family x strategy x dtype with the
kernels and with the bodies, and the library's one-line errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import node_model, run_node

from irexport.errors import IrexportError
from irexport.ops import torch_ops
from irexport.ops.spec import DOMAIN, FLOATS, OPS


def same(kernel, body, exact=True):
    assert len(kernel) == len(body)
    for k, b in zip(kernel, body, strict=False):
        assert k.dtype == b.dtype and k.shape == b.shape, (k.dtype, b.dtype, k.shape, b.shape)
        if exact:
            assert np.array_equal(k, b), (k, b)
        else:
            np.testing.assert_allclose(k, b, rtol=1e-6, atol=1e-6)


MASKS = {
    "mixed": torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0], [0, 7, 0, 0]], dtype=torch.int32),  # any non-zero executes
    "none executes": torch.zeros(2, 5, dtype=torch.int32),
    "all execute": torch.ones(3, 2, dtype=torch.int32),
    "one sequence": torch.tensor([[0, 1, 1, 0, 1]], dtype=torch.int32),
    "empty batch": torch.zeros(0, 4, dtype=torch.int32),
    "random": (torch.rand(8, 33, generator=torch.Generator().manual_seed(0)) < 0.4).int(),
}


@pytest.mark.parametrize("mask", list(MASKS))
def test_index_kernels_equal_the_bodies(kernels, mask):
    for name in ("RouteIndex", "RouteSeqIndex"):
        same(run_node(name, [MASKS[mask]], kernels), run_node(name, [MASKS[mask]]))


# bfloat16: ONNX Runtime's CPU provider runs no bfloat16 bodies and Python feeds none; the kernels' bfloat16 paths are
# the host implementations tests/plugins/test_plugin_kernels.py checks against the torch ops
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("mask", list(MASKS))
def test_gather_and_scatter_kernels_equal_the_bodies(kernels, mask, dtype):
    execute = MASKS[mask]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(*execute.shape, 8, generator=gen).to(dtype)
    index, _ = torch_ops.route_index(execute)
    slots, _ = torch_ops.route_seq_index(execute)
    for idx in (index, slots):  # flat [N] and per sequence [B, Tq] with -1 entries
        rows = run_node("RouteGather", [x, idx], kernels)
        same(rows, run_node("RouteGather", [x, idx]))
        y = torch.randn(rows[0].shape, generator=gen).to(dtype)
        same(run_node("RouteScatterAdd", [x, y, idx], kernels), run_node("RouteScatterAdd", [x, y, idx]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape", [(3, 9), (1, 1), (0, 4), (2, 0)])
def test_decision_kernels_equal_the_bodies(kernels, dtype, shape):
    gen = torch.Generator().manual_seed(2)
    scores = torch.randn(*shape, 2, generator=gen).to(dtype)
    valid = torch.ones(shape, dtype=torch.int32)
    if shape[0] > 1:
        valid[1, :4] = 0  # padding
    same(run_node("RouteArgmax", [scores], kernels), run_node("RouteArgmax", [scores]))
    one = scores[..., :1].contiguous()
    # ONNX Runtime's Sigmoid is vectorized: the kernel's expf agrees to rounding
    same(run_node("RouteThreshold", [one], kernels, threshold=0.3), run_node("RouteThreshold", [one], threshold=0.3),
         exact=False)
    for capacity in (0.25, 0.5, 1.0):
        got = run_node("RouteTopK", [one, valid], kernels, capacity=capacity)
        if shape[1] == 0:  # no token: the body's GatherElements has no k-th score to read (graphs never ask)
            assert got[0].shape == shape and got[0].dtype == np.float32
            continue
        same(got, run_node("RouteTopK", [one, valid], capacity=capacity))


def test_kernels_refuse_what_the_ops_do_not_take(kernels):
    """An attribute outside the op's range fails the session, naming the op; an index entry outside x's rows
    fails the run instead of reading out of bounds."""
    scores = torch.randn(2, 3, 1)
    with pytest.raises(Exception, match=r"RouteTopK: attribute 'capacity' = 1\.5.* is out of range"):
        run_node("RouteTopK", [scores, torch.ones(2, 3, dtype=torch.int32)], kernels, capacity=1.5)
    x = torch.randn(4, 8)
    with pytest.raises(Exception, match=r"RouteGather: index entry 4 is outside \[-1, 4\)"):
        run_node("RouteGather", [x, torch.tensor([0, 4])], kernels)


def port_samples(name):
    """Inputs of the op's port types and its attributes; its float inputs float16, not the float32 of a fixed port."""
    execute = MASKS["mixed"]
    x = torch.randn(*execute.shape, 8).half()
    index, _ = torch_ops.route_index(execute)
    scores = torch.randn(*execute.shape, 1).half()
    return {"RouteArgmax": ([torch.randn(*execute.shape, 2).half()], {}),
            "RouteThreshold": ([scores], {"threshold": 0.5}),
            "RouteTopK": ([scores, torch.ones(execute.shape, dtype=torch.int32)], {"capacity": 0.5}),
            "RouteIndex": ([execute], {}),
            "RouteSeqIndex": ([execute], {}),
            "RouteGather": ([x, index], {}),
            "RouteScatterAdd": ([x, torch.zeros(len(index), 8).half(), index], {})}[name]


@pytest.mark.parametrize("name", list(OPS))
def test_the_kernels_take_and_give_the_port_types_of_spec(kernels, name):
    """The types the kernels declare to ONNX Runtime come from the op table generated from spec.py: each output
    has its port's type (a float port of any type: the float inputs' type), an input of a fixed type given another
    fails the session naming the port, and a float port given an integer tensor fails the kernel."""
    spec = OPS[name]
    inputs, attrs = port_samples(name)
    outputs = run_node(name, inputs, kernels, **attrs)
    fixed = {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64}
    for port, out in zip(spec.outputs, outputs, strict=True):
        assert out.dtype == (np.float16 if port.types == FLOATS else fixed[port.types[0]]), port.name
    for i, port in enumerate(spec.inputs):
        wrong = list(inputs)
        wrong[i] = inputs[i].long() if port.types == ("tensor(int32)",) else inputs[i].int()
        if port.types == FLOATS:
            expected = rf"{name}: .*float tensor"
        else:
            expected = rf"Type 'tensor\(int\d+\)' of input parameter \({port.name}\) of operator \({name}\)"
        with pytest.raises(Exception, match=expected):
            run_node(name, wrong, kernels, **attrs)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("strategy", ["compact", "masked"])
@pytest.mark.parametrize("name", ["informed", "skipgpt", "router_tuning", "mod"])
def test_parity_with_the_kernels_and_with_the_bodies(name, strategy, dtype, exported, use_kernels):
    from irexport.checkpoints import load_model
    from irexport.parity.check import parity, sample_inputs
    from irexport.reference import DTYPES

    out, model_dir = exported(name, strategy, dtype)
    model = load_model(model_dir, DTYPES[dtype])
    feed = sample_inputs(model.config.vocab_size, 2, 12, 0)
    for routing_ops in ("kernels", "bodies"):
        report = parity(out, model, feed, new_tokens=3, routing_ops=routing_ops)
        assert report["passed"], (routing_ops, report["results"]["onnxrt"])
        assert report["results"]["onnxrt"]["routing_ops"] == routing_ops


def test_sessions_use_the_kernels_when_built(exported, use_kernels, monkeypatch, cli):
    import onnxruntime as ort

    from irexport.onnxrt_kernels import register
    from irexport.runtime import OnnxGenerator

    out, _ = exported("informed", "compact")
    cpu = ["CPUExecutionProvider"]
    assert OnnxGenerator(out, providers=cpu).routing_ops == "kernels"  # auto, on the CPU
    assert register(ort.SessionOptions(), "auto", ["CUDAExecutionProvider", *cpu]) == "bodies"  # a GPU session: bodies
    assert OnnxGenerator(out, providers=cpu, routing_ops="bodies").routing_ops == "bodies"
    # what ONNX Runtime runs: the routing nodes stay (kernels) or are inlined away (bodies)
    for ops, routing_nodes in (("kernels", True), ("bodies", False)):
        assert (optimized_routing_nodes(out, ops) > 0) == routing_nodes, ops
    ids = np.array([[1, 2, 3]], np.int64)
    tokens = {ops: OnnxGenerator(out, providers=cpu, routing_ops=ops).greedy(ids, np.ones_like(ids), 4)
              for ops in ("kernels", "bodies")}
    assert np.array_equal(tokens["kernels"], tokens["bodies"])
    monkeypatch.delenv("IREXPORT_ONNXRT_KERNELS")
    assert OnnxGenerator(out, providers=cpu).routing_ops == "bodies"  # not built: the bodies run, and parity says so
    code, _, stderr = cli("generate", out, "--input-ids", write_ids(out.parent, ids), "--routing-ops", "kernels")
    last = stderr.strip().splitlines()[-1]  # (the lines before: the fixture's export)
    assert code == 2 and last.startswith("irexport: error:") and "kernels are not built" in last and "plugins build" in last


def optimized_routing_nodes(export: Path, routing_ops: str) -> int:
    """irexport-domain nodes in the graph ONNX Runtime runs (after its optimizations and inlining)."""
    import tempfile

    import onnxruntime as ort

    from irexport.onnxrt_kernels import register

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        register(options, routing_ops, ["CPUExecutionProvider"])
        ort.InferenceSession(str(export / "model.onnx"), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
        return sum(n.domain == DOMAIN for n in graph.node)


def test_auto_falls_back_to_the_bodies_in_one_line(use_kernels, monkeypatch, capsys):
    """A library this ONNX Runtime cannot load (here: one naming no file) leaves auto on the bodies, saying why;
    asking for the kernels is an error."""
    import onnxruntime as ort

    from irexport.onnxrt_kernels import register

    monkeypatch.setenv("IREXPORT_ONNXRT_KERNELS", "/nonexistent/libirexport_onnxrt.so")
    assert register(ort.SessionOptions(), "auto", ["CPUExecutionProvider"]) == "bodies"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run as function bodies" in err and "names no file" in err
    with pytest.raises(IrexportError, match="names no file"):
        register(ort.SessionOptions(), "kernels", ["CPUExecutionProvider"])


def test_a_node_of_another_op_version_is_refused(kernels):
    """The kernels implement each op's current version (spec.py); a node of another one fails the session."""
    import onnxruntime as ort

    model = onnx.load_from_string(node_model("RouteIndex", [MASKS["mixed"]]))
    next(a for a in model.graph.node[0].attribute if a.name == "plugin_version").s = b"1"
    options = ort.SessionOptions()
    options.register_custom_ops_library(str(kernels))
    with pytest.raises(Exception, match=r"RouteIndex: plugin_version '1' is not 2"):
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_argmax_takes_two_scores_and_topk_ranks_a_nan_as_the_torch_op(kernels):
    with pytest.raises(Exception, match=r"RouteArgmax: scores must be a float tensor \[B, T, 2\]"):
        run_node("RouteArgmax", [torch.randn(1, 3, 3)], kernels)
    # torch.sort(descending=True) puts a NaN first: it takes one of the k slots (token 3 is dropped), and a NaN
    # k-th score makes every margin NaN (nothing executes)
    nan = float("nan")
    cases = (([-1.0, nan, 1.0, 0.0], 0.5, [-1.5, nan, 0.5, -0.5]), ([nan, 2.0, 1.0, 0.0], 0.25, [nan] * 4))
    for scores, capacity, expected in cases:
        inputs = [torch.tensor(scores)[None, :, None], torch.ones(1, 4, dtype=torch.int32)]
        (margin,) = run_node("RouteTopK", inputs, kernels, capacity=capacity)
        np.testing.assert_array_equal(margin, [expected])
        np.testing.assert_array_equal(margin, run_node("RouteTopK", inputs, capacity=capacity)[0])  # the body
        np.testing.assert_array_equal(margin, torch_ops.route_topk(*inputs, capacity).numpy())


def write_ids(where: Path, ids) -> Path:
    path = where / "ids.npy"
    np.save(path, ids)
    return path


def test_ort_library_path(use_kernels, monkeypatch, tmp_path):
    import irexport

    assert irexport.ort_library_path() == str(use_kernels.resolve())
    monkeypatch.setenv("IREXPORT_ONNXRT_KERNELS", str(tmp_path / "missing.so"))
    with pytest.raises(IrexportError, match="names no file"):
        irexport.ort_library_path()


def test_a_library_for_a_newer_onnx_runtime_is_refused(tmp_path):
    """Built against the C API of a newer ONNX Runtime than the installed one: one line, before ONNX Runtime
    is asked to load it."""
    from irexport.onnxrt_kernels import check_library

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    source = tmp_path / "newer.c"
    source.write_text("unsigned irexportOrtApiVersion(void) { return 99; }\n")
    library = tmp_path / "libnewer.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    with pytest.raises(IrexportError, match=r"built for ONNX Runtime >= 1\.99 \(C API 99\)"):
        check_library(library)
    with pytest.raises(IrexportError, match="not irexport's ONNX Runtime kernels"):
        check_library(Path(torch.__file__).parent / "lib" / "libc10.so")


def test_the_kernels_build_without_cuda_or_tensorrt(kernels):
    """Self-contained: ONNX Runtime's API is what it is handed at registration; it links no onnxruntime."""
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(kernels)], capture_output=True, text=True).stdout
    assert {line.split()[-1] for line in symbols.splitlines() if " T " in line} == {"RegisterCustomOps",
                                                                                   "irexportOrtApiVersion"}
    assert "onnxruntime" not in subprocess.run(["readelf", "-d", str(kernels)], capture_output=True, text=True).stdout
