"""The routing kernels of plugins/: the host build (CPU, everywhere) and the CUDA build (nvcc compile
everywhere nvcc is installed; kernel correctness on a GPU), all against the torch ops of the reference."""

import ctypes
import shutil
import subprocess

import pytest
import torch
from conftest import cmake_build

from irexport.ops import torch_ops

DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 7}  # TensorRT DataType numbering


@pytest.fixture(scope="session")
def host_lib(tmp_path_factory):
    build = cmake_build(tmp_path_factory.mktemp("plugins-host"), "-DIRX_WITH_CUDA=OFF")
    lib = ctypes.CDLL(str(build / "libirexport_host.so"))
    lib.irx_host_index_count.restype = ctypes.c_int32
    lib.irx_host_seq_index_count.restype = ctypes.c_int32
    return lib


def ptr(t: torch.Tensor):
    """The tensor's data pointer; the caller keeps the tensor alive (no temporaries)."""
    return ctypes.c_void_p(t.data_ptr())


def poisoned(shape, dtype, device="cpu"):
    """Outputs start as NaN (or -7 for integers) so that elements a kernel fails to write are caught."""
    if dtype.is_floating_point:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.full(shape, -7, dtype=dtype, device=device)


def random_case(seed, batch, seq, fraction):
    """An execute mask (every token at fraction 1; otherwise sequence 1 is left-padded) and the valid mask."""
    g = torch.Generator().manual_seed(seed)
    execute = torch.rand(batch, seq, generator=g) < fraction
    valid = torch.ones(batch, seq, dtype=torch.bool)
    if batch > 1 and fraction < 1:
        valid[1, : seq // 3] = False
    return execute & valid, valid, g


SHAPES = [(0, 5), (1, 1), (2, 7), (3, 64), (2, 300)]
FRACTIONS = [0.0, 0.4, 1.0]


def row_cases(execute, dim, dtype, g):
    """(x, index, y) for RouteGather / RouteScatterAdd as the compact path uses them: the flat index [N] over
    x [B, T, D], and the slots [B, Tq] (-1 padded) over the compact rows [N, D]."""
    batch, seq = execute.shape
    index, n = torch_ops.route_index(execute.to(torch.int32))
    slots, _ = torch_ops.route_seq_index(execute.to(torch.int32))
    flat = (torch.randn(batch, seq, dim, generator=g).to(dtype), index, torch.randn(int(n), dim, generator=g).to(dtype))
    per_sequence = (torch.randn(int(n), dim, generator=g).to(dtype), slots, torch.randn(*slots.shape, dim, generator=g).to(dtype))
    return flat, per_sequence


@pytest.mark.parametrize("batch,seq", SHAPES)
@pytest.mark.parametrize("fraction", FRACTIONS)
def test_host_index_and_seq_index(host_lib, batch, seq, fraction):
    execute, _, _ = random_case(batch * seq, batch, seq, fraction)
    ex32 = execute.to(torch.int32).contiguous()  # kept alive: ctypes only sees its pointer
    for name, op in (("index", torch_ops.route_index), ("seq_index", torch_ops.route_seq_index)):
        expected, count = op(ex32)
        size = getattr(host_lib, f"irx_host_{name}_count")(ptr(ex32), batch, seq)
        assert size == count.item() == expected.shape[-1], name
        out, count_out = poisoned((max(batch * seq, 1),), torch.int64), torch.zeros(1, dtype=torch.int32)  # the upper bound
        assert getattr(host_lib, f"irx_host_{name}")(ptr(ex32), batch, seq, ptr(out), ptr(count_out)) == 0
        assert count_out.item() == size
        assert torch.equal(out[: expected.numel()].view(expected.shape), expected), name


@pytest.mark.parametrize("batch,seq", SHAPES)
@pytest.mark.parametrize("fraction", FRACTIONS)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_host_gather_scatter(host_lib, batch, seq, fraction, dtype):
    """Flat index (rank 1) and slots (rank 2, -1 entries), B = 0, N = 0 and every token executed."""
    execute, _, g = random_case(batch * seq, batch, seq, fraction)
    for x, index, y in row_cases(execute, 24, dtype, g):
        rows = x.numel() // 24
        out = poisoned((*index.shape, 24), dtype)
        assert host_lib.irx_host_gather(ptr(x), ptr(index), DTYPES[dtype], index.numel(), 24, ptr(out)) == 0
        assert torch.equal(out, torch_ops.route_gather(x, index)), index.shape
        out = poisoned(x.shape, dtype)
        assert host_lib.irx_host_scatter_add(ptr(x), ptr(y), ptr(index), DTYPES[dtype], rows, index.numel(), 24, ptr(out)) == 0
        assert torch.equal(out, torch_ops.route_scatter_add(x, y, index)), index.shape


@pytest.mark.parametrize("batch,seq", SHAPES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_host_decisions(host_lib, batch, seq, dtype):
    _, valid, g = random_case(seq, batch, seq, 0.5)
    scores2 = torch.randn(batch, seq, 2, generator=g).to(dtype)
    scores1 = torch.randn(batch, seq, 1, generator=g).to(dtype)
    margin = poisoned((batch, seq), torch.float32)
    host_lib.irx_host_argmax(ptr(scores2), DTYPES[dtype], batch, seq, ptr(margin))
    assert torch.equal(margin, torch_ops.route_argmax(scores2))
    host_lib.irx_host_threshold(ptr(scores1), DTYPES[dtype], batch, seq, 1, ctypes.c_float(0.3), ptr(margin))
    assert torch.allclose(margin, torch_ops.route_threshold(scores1, 0.3), atol=1e-6)
    for capacity in (0.25, 0.5, 1.0):
        v32 = valid.to(torch.int32).contiguous()
        host_lib.irx_host_topk(ptr(scores1), ptr(v32), DTYPES[dtype], batch, seq, 1, ctypes.c_float(capacity), ptr(margin))
        expected = torch_ops.route_topk(scores1, v32, capacity)
        assert torch.equal(margin, expected), capacity
        kept = ((margin >= 0) & valid).sum(1)
        assert torch.equal(kept, torch.ceil(valid.sum(1).float() * capacity).long())


def test_kernels_compile_with_nvcc(tmp_path):
    """The CUDA kernel library builds for the default architectures (80;86;89;90) with nvcc."""
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    build = cmake_build(tmp_path / "plugins")
    lib = build / "libirexport_kernels.so"
    assert lib.is_file()
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
    exported = {line.split()[-1] for line in symbols.splitlines() if " T " in line}
    assert exported == {"irx_cuda_argmax", "irx_cuda_threshold", "irx_cuda_topk", "irx_cuda_index",
                        "irx_cuda_index_workspace_size", "irx_cuda_seq_index", "irx_cuda_seq_index_workspace_size",
                        "irx_cuda_gather", "irx_cuda_scatter_add"}


@pytest.fixture(scope="session")
def cuda_lib(tmp_path_factory):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU (torch.cuda.is_available() is False)")
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    build = cmake_build(tmp_path_factory.mktemp("plugins-cuda"))
    lib = ctypes.CDLL(str(build / "libirexport_kernels.so"))
    lib.irx_cuda_index_workspace_size.restype = ctypes.c_size_t
    lib.irx_cuda_seq_index_workspace_size.restype = ctypes.c_size_t
    return lib


SYNC = None  # the C ABI's stream argument: null runs on the default stream and synchronises


@pytest.mark.gpu
@pytest.mark.parametrize("batch,seq", SHAPES + [(4, 2048), (3, 1500)])  # several RouteIndex tiles, the last one partial
@pytest.mark.parametrize("fraction", FRACTIONS)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cuda_kernels_match_the_torch_ops(cuda_lib, batch, seq, fraction, dtype):
    execute, valid, g = random_case(batch * seq + 1, batch, seq, fraction)
    dev = torch.device("cuda")
    ex32 = execute.to(torch.int32).to(dev)
    for name, op in (("index", torch_ops.route_index), ("seq_index", torch_ops.route_seq_index)):
        expected, count = op(execute.to(torch.int32))
        out, count_out = poisoned((batch * seq,), torch.int64, dev), torch.zeros(1, dtype=torch.int32, device=dev)
        size = getattr(cuda_lib, f"irx_cuda_{name}_workspace_size")(batch, seq)
        workspace = torch.empty(size // 4 + 1, dtype=torch.int32, device=dev)
        assert getattr(cuda_lib, f"irx_cuda_{name}")(ptr(ex32), batch, seq, ptr(out), ptr(count_out), ptr(workspace), SYNC) == 0
        assert count_out.item() == count.item(), name
        assert torch.equal(out[: expected.numel()].view(expected.shape).cpu(), expected), name
    for dim in (200, 3):  # 16-byte vectors; element by element
        for x, index, y in row_cases(execute, dim, dtype, g):
            x_dev, y_dev, idx = x.to(dev), y.to(dev), index.to(dev)
            out = poisoned((*index.shape, dim), dtype, dev)
            assert cuda_lib.irx_cuda_gather(ptr(x_dev), ptr(idx), DTYPES[dtype], index.numel(), dim, ptr(out), SYNC) == 0
            assert torch.equal(out.cpu(), torch_ops.route_gather(x, index)), (dim, index.shape)
            out = poisoned(x.shape, dtype, dev)
            assert cuda_lib.irx_cuda_scatter_add(ptr(x_dev), ptr(y_dev), ptr(idx), DTYPES[dtype], x.numel() // dim,
                                                 index.numel(), dim, ptr(out), SYNC) == 0
            assert torch.equal(out.cpu(), torch_ops.route_scatter_add(x, y, index)), (dim, index.shape)
    scores = torch.randn(batch, seq, 1, generator=g).to(dtype)
    scores_dev, v32 = scores.to(dev), valid.to(torch.int32).to(dev)
    margin = poisoned((batch, seq), torch.float32, dev)
    assert cuda_lib.irx_cuda_topk(ptr(scores_dev), ptr(v32), DTYPES[dtype], batch, seq, 1, ctypes.c_float(0.5), ptr(margin),
                                  SYNC) == 0
    assert torch.equal(margin.cpu(), torch_ops.route_topk(scores, valid.to(torch.int32), 0.5))
    scores2 = torch.randn(batch, seq, 2, generator=g).to(dtype)
    scores2_dev = scores2.to(dev)
    assert cuda_lib.irx_cuda_argmax(ptr(scores2_dev), DTYPES[dtype], batch, seq, ptr(margin), SYNC) == 0
    assert torch.equal(margin.cpu(), torch_ops.route_argmax(scores2))


def test_plugin_library_compiles_against_tensorrt_headers(plugin_build):
    """Built against $TensorRT_ROOT's headers; exports TensorRT's two entry points and the TensorRT major it was
    built for, and links no libnvinfer (neither does the register library, which finds it by soname)."""
    lib = plugin_build / "libirexport_plugins.so"
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
    assert {line.split()[-1] for line in symbols.splitlines() if " T " in line} == {
        "getCreators", "setLoggerFinder", "irexportPluginTensorRTMajor"}
    for built in (lib, plugin_build / "libirexport_plugins_register.so"):
        assert "libnvinfer" not in subprocess.run(["readelf", "-d", str(built)], capture_output=True, text=True).stdout


def test_plugins_build_command(tmp_path, cli):
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    code, _, err = cli("plugins", "build", "--build-dir", tmp_path / "b")
    assert code == 0, err
    assert (tmp_path / "b" / "libirexport_host.so").is_file() and "built in" in err


@pytest.mark.parametrize("flag,value,message", [
    ("--tensorrt-root", "{tmp}", "no TensorRT headers here"),
    ("--cuda-archs", "90;sm_80", "expected CUDA architectures"),
    ("--cuda-archs", "90 -DEVIL=1", "expected CUDA architectures"),
])
def test_plugins_build_refuses_bad_flags_before_cmake(tmp_path, cli, flag, value, message):
    code, _, err = cli("plugins", "build", "--build-dir", tmp_path / "b", flag, value.format(tmp=tmp_path))
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()
