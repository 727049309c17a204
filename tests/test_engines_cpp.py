"""The C++ engine runtime (engines/): its .npy code against numpy (CPU, everywhere), the runtime compiled
against the TensorRT headers (TensorRT_ROOT set), irexport-run's refusals (when it is linked) and an engine
run end to end (TensorRT, a GPU and a built engine)."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ENGINES = Path(__file__).resolve().parents[1] / "engines"
# Passed on to cmake when set: TensorRT_ROOT (headers, and a library under it) and TensorRT_LIBRARY (a library
# elsewhere, e.g. the lean runtime's libnvinfer_lean.so.11 from the tensorrt_lean_libs wheel).
TENSORRT_OPTIONS = ("TensorRT_ROOT", "TensorRT_LIBRARY")


@pytest.fixture(scope="session")
def engines_build(tmp_path_factory):
    """(build dir, cmake's configure output): one build of engines/ per session."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    build = tmp_path_factory.mktemp("engines")
    options = [f"-D{name}={os.environ[name]}" for name in TENSORRT_OPTIONS if os.environ.get(name)]
    configure = subprocess.run(["cmake", "-S", str(ENGINES), "-B", str(build), *options],
                               check=False, capture_output=True, text=True)
    assert configure.returncode == 0, configure.stdout[-4000:] + configure.stderr[-4000:]
    compiled = subprocess.run(["cmake", "--build", str(build), "-j4"], check=False, capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stdout[-4000:] + compiled.stderr[-4000:]
    return build, configure.stdout


def run(*argv):
    return subprocess.run([str(a) for a in argv], check=False, capture_output=True, text=True, timeout=120)


def assert_one_error_line(result, code, *fragments):
    """Exit ``code`` and one ``...: error: ...`` line on stderr holding every fragment (no crash, no abort)."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], result.stderr
    for fragment in fragments:
        assert str(fragment) in lines[0]


# --- .npy read/write (no TensorRT) -------------------------------------------------------------------------

DTYPES = ["bool", "int32", "int64", "float16", "float32"]
SHAPES = [(), (0,), (3, 0, 2), (5,), (2, 3), (2, 3, 4)]


def random_array(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    a = rng.standard_normal(shape).astype(dtype)
    if a.size >= 3:
        a.flat[:3] = [np.nan, np.inf, -0.0]  # copied bit for bit
    return a


def roundtrip(tool, src: Path, array) -> np.ndarray:
    dst = src.with_name("out.npy")
    result = run(tool, src, dst)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{array.dtype.name} [{','.join(map(str, array.shape))}]"
    back = np.load(dst)
    assert back.dtype == array.dtype and back.shape == array.shape and back.tobytes() == array.tobytes()
    return back


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_npy_roundtrip_matches_numpy(engines_build, tmp_path, dtype, shape):
    array = random_array(dtype, shape)
    np.save(tmp_path / "in.npy", array)
    roundtrip(engines_build[0] / "npy_roundtrip", tmp_path / "in.npy", array)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_header_versions(engines_build, tmp_path, version):
    array = random_array("float32", (4, 5))
    with open(tmp_path / "in.npy", "wb") as f:
        np.lib.format.write_array(f, array, version=version)
    roundtrip(engines_build[0] / "npy_roundtrip", tmp_path / "in.npy", array)


def truncated_data(path):
    np.save(path, np.ones((4, 4), np.float32))
    path.write_bytes(path.read_bytes()[:-5])


def truncated_header(path):
    np.save(path, np.ones(3, np.int64))
    path.write_bytes(path.read_bytes()[:40])


BAD_NPY = {  # case -> (writes the file, what the message says)
    "missing": (lambda path: None, "No such file"),
    "not npy": (lambda path: path.write_bytes(b"PK\x03\x04 not an array"), "not a .npy file"),
    "truncated data": (truncated_data, "truncated data"),
    "truncated header": (truncated_header, "truncated header"),
    "fortran order": (lambda path: np.save(path, np.asfortranarray(np.ones((2, 3), np.float32))), "Fortran"),
    "complex64": (lambda path: np.save(path, np.ones(3, np.complex64)), "unsupported dtype '<c8'"),
    "big-endian": (lambda path: np.save(path, np.ones(3, ">f4")), "unsupported dtype '>f4'"),
}


@pytest.mark.parametrize("case", list(BAD_NPY))
def test_npy_bad_inputs_are_one_line_errors(engines_build, tmp_path, case):
    write, message = BAD_NPY[case]
    path = tmp_path / "bad input.npy"
    write(path)
    result = run(engines_build[0] / "npy_roundtrip", path, tmp_path / "out.npy")
    assert_one_error_line(result, 2, path, message)
    assert not (tmp_path / "out.npy").exists()


# --- the TensorRT runtime ----------------------------------------------------------------------------------

def test_runtime_compiles_against_tensorrt_headers(engines_build):
    if not os.environ.get("TensorRT_ROOT"):
        pytest.skip("set TensorRT_ROOT to the public TensorRT headers to run this check")
    build, configure = engines_build
    if "no CUDA toolkit found" in configure:
        pytest.skip("the CUDA toolkit (cuda_runtime_api.h, libcudart) was not found")
    if "irexport-run linked against" in configure:
        assert (build / "irexport-run").is_file() and (build / "libirexport_engine_runtime.a").is_file()
    else:
        assert "compile-only" in configure, configure
        objects = build / "CMakeFiles" / "irexport_engine_runtime.dir" / "runtime"
        assert {p.name for p in objects.glob("*.o")} == {"engine_runner.cpp.o", "main.cpp.o"}


@pytest.fixture
def irexport_run(engines_build):
    exe = engines_build[0] / "irexport-run"
    if not exe.is_file():
        pytest.skip("irexport-run was not linked: it needs the TensorRT headers and a TensorRT library "
                    "(set TensorRT_ROOT, and TensorRT_LIBRARY for a library outside it)")
    return exe


def test_irexport_run_refuses_bad_usage_and_files_before_tensorrt(irexport_run, tmp_path):
    engine, empty, plugin = tmp_path / "model.engine", tmp_path / "empty.engine", tmp_path / "no-plugins.so"
    engine.write_bytes(os.urandom(4096))
    empty.touch()
    out = ["--output-dir", tmp_path / "out"]
    assert run(irexport_run, "--help").returncode == 0
    assert_one_error_line(run(irexport_run, *out), 2, "--engine is required")
    assert_one_error_line(run(irexport_run, "--engine", engine, "--frobnicate"), 2, "unknown argument")
    assert_one_error_line(run(irexport_run, "--engine", engine, "--input", "ids", *out), 2, "NAME=FILE.npy")
    assert_one_error_line(run(irexport_run, "--engine", tmp_path / "missing.engine", *out), 2, "missing.engine")
    assert_one_error_line(run(irexport_run, "--engine", empty, *out), 2, empty, "empty")
    assert_one_error_line(run(irexport_run, "--engine", engine, "--plugins", plugin, *out), 2, plugin,
                          "plugin library not found")
    assert_one_error_line(run(irexport_run, "--engine", engine, "--input", f"ids={tmp_path / 'x.npy'}", *out), 2,
                          "x.npy")


def test_irexport_run_refuses_a_garbage_engine(irexport_run, tmp_path):
    """Without a usable GPU the CUDA check comes first (exit 1); with one, TensorRT refuses the file (exit 2).
    TensorRT's own messages may come before irexport-run's one error line."""
    engine = tmp_path / "garbage.engine"
    engine.write_bytes(os.urandom(4096))
    result = run(irexport_run, "--engine", engine, "--output-dir", tmp_path / "out")
    errors = [line for line in result.stderr.splitlines() if line.startswith("irexport-run: error: ")]
    assert len(errors) == 1 and result.stderr.splitlines()[-1] == errors[0], result.stderr
    if result.returncode == 1:
        assert "no usable CUDA GPU" in errors[0]
    else:
        assert result.returncode == 2 and f"{engine}: not a TensorRT engine this runtime can load" in errors[0]


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_irexport_run_runs_an_exported_engine(irexport_run, tmp_path):
    """An engine built from an irexport export (prefill graph): random token ids in, logits [1, 8, vocab] out."""
    engine = os.environ.get("IREXPORT_TEST_ENGINE")
    if not engine:
        pytest.skip("set IREXPORT_TEST_ENGINE to an engine built from an irexport export (and IREXPORT_PLUGINS "
                    "to its plugin libraries, separated by os.pathsep) to run this test")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU (torch.cuda.is_available() is False)")
    plugins = [a for lib in os.environ.get("IREXPORT_PLUGINS", "").split(os.pathsep) if lib for a in ("--plugins", lib)]
    described = run(irexport_run, "--engine", engine, *plugins, "--describe")
    assert described.returncode == 0, described.stderr
    io = {fields[1]: fields for fields in map(str.split, described.stdout.splitlines())}
    assert io["input_ids"][:3] == ["input", "input_ids", "int64"] and io["attention_mask"][0] == "input"
    vocab = int(io["logits"][3].strip("[]").split(",")[-1])

    rng = np.random.default_rng(0)
    np.save(tmp_path / "ids.npy", rng.integers(0, vocab, (1, 8), dtype=np.int64))
    np.save(tmp_path / "mask.npy", np.ones((1, 8), np.int64))
    inputs = ["--input", f"input_ids={tmp_path / 'ids.npy'}", "--input", f"attention_mask={tmp_path / 'mask.npy'}"]
    result = run(irexport_run, "--engine", engine, *plugins, *inputs, "--output-dir", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("logits ") and line.endswith(f" [1,8,{vocab}]") for line in result.stdout.splitlines())
    logits = np.load(tmp_path / "out" / "logits.npy")
    assert logits.shape == (1, 8, vocab) and np.isfinite(logits).all()

    # a wrong input is refused before the GPU runs
    np.save(tmp_path / "ids.npy", np.zeros((1, 8), np.float32))
    refused = run(irexport_run, "--engine", engine, *plugins, *inputs, "--output-dir", tmp_path / "out")
    assert refused.returncode == 2 and "input 'input_ids': dtype float32" in refused.stderr.splitlines()[-1]
