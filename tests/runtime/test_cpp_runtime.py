"""The C++ engine runtime (engines/): its .npy code against numpy (CPU, everywhere), the runtime compiled
against the TensorRT headers (TensorRT_ROOT set), irexport-run's refusals (when it is linked) and an engine
run end to end (TensorRT, a GPU and a built engine)."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

ENGINES = ROOT / "engines"
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
    usage = run(irexport_run, "--help")
    assert usage.returncode == 0 and "--profile N" in usage.stdout and "0 = prefill" in usage.stdout, usage.stdout
    assert_one_error_line(run(irexport_run, *out), 2, "--engine is required")
    assert_one_error_line(run(irexport_run, "--engine", engine, "--frobnicate"), 2, "unknown argument")
    assert_one_error_line(run(irexport_run, "--engine", engine, "--input", "ids", *out), 2, "NAME=FILE.npy")
    assert_one_error_line(run(irexport_run, "--engine", engine, *out, "--profile"), 2, "--profile needs a value")
    assert_one_error_line(run(irexport_run, "--engine", engine, *out, "--profile", "0", "--profile", "1"), 2,
                          "--profile is given twice")
    assert_one_error_line(run(irexport_run, "--engine", tmp_path / "missing.engine", *out), 2, "missing.engine")
    assert_one_error_line(run(irexport_run, "--engine", empty, *out), 2, empty, "empty")
    assert_one_error_line(run(irexport_run, "--engine", engine, "--plugins", plugin, *out), 2, plugin,
                          "plugin library not found")
    assert_one_error_line(run(irexport_run, "--engine", engine, "--input", f"ids={tmp_path / 'x.npy'}", *out), 2,
                          "x.npy")
    assert not (tmp_path / "out").exists(), "a refused run leaves no output directory behind"


@pytest.mark.parametrize("value", ["-1", "x", "1x", "+1", " 1", "1.0", "", "99999999999"])
def test_irexport_run_refuses_a_bad_profile_before_tensorrt(irexport_run, tmp_path, value):
    """--profile takes a non-negative integer; it is checked with the arguments (exit 2), so a garbage engine
    file behind it is never opened. Whether the engine has that profile is checked once it is loaded (GPU)."""
    engine = tmp_path / "model.engine"
    engine.write_bytes(os.urandom(4096))
    result = run(irexport_run, "--engine", engine, "--profile", value, "--output-dir", tmp_path / "out")
    assert_one_error_line(result, 2, "--profile takes a non-negative integer", f"got '{value}'")


def test_irexport_run_refuses_a_garbage_engine(irexport_run, tmp_path):
    """Without a usable GPU the CUDA check comes first (exit 3); with one, TensorRT refuses the file (exit 2).
    TensorRT's own messages may come before irexport-run's one error line."""
    engine = tmp_path / "garbage.engine"
    engine.write_bytes(os.urandom(4096))
    result = run(irexport_run, "--engine", engine, "--output-dir", tmp_path / "out")
    errors = [line for line in result.stderr.splitlines() if line.startswith("irexport-run: error: ")]
    assert len(errors) == 1 and result.stderr.splitlines()[-1] == errors[0], result.stderr
    if result.returncode == 3:
        assert "no usable CUDA GPU" in errors[0]
    else:
        assert result.returncode == 2 and f"{engine}: not a TensorRT engine this runtime can load" in errors[0]


def shape_of(text):
    """"[1,2,0,16]" -> [1, 2, 0, 16]; "[]" -> []."""
    return [int(d) for d in text.strip("[]").split(",") if d]


def describe(irexport_run, engine, plugins, profile):
    """irexport-run --describe for one profile: {input: (dtype, min, max)}, {output: (dtype, shape)}."""
    described = run(irexport_run, "--engine", engine, *plugins, "--profile", profile, "--describe")
    assert described.returncode == 0, described.stderr
    head, *lines = described.stdout.splitlines()
    assert head == f"profile {profile} (the engine has 2 optimization profiles)", described.stdout
    fields = [line.split() for line in lines]
    inputs = {f[1]: (f[2], shape_of(f[5]), shape_of(f[7])) for f in fields if f[0] == "input"}
    outputs = {f[1]: (f[2], shape_of(f[3])) for f in fields if f[0] == "output"}
    return inputs, outputs


def save_feed(directory, feed):
    """.npy files for ``feed`` and the --input arguments naming them."""
    directory.mkdir()
    args = []
    for name, array in feed.items():
        np.save(directory / f"{name}.npy", array)
        args += ["--input", f"{name}={directory / f'{name}.npy'}"]
    return args


def npy_dtype(engine_dtype):
    return np.float32 if engine_dtype == "bfloat16" else np.dtype(engine_dtype)  # irexport-run feeds bf16 from f32


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_irexport_run_runs_an_exported_engine(irexport_run, tmp_path):
    """An irexport model.engine (one graph, profile 0 = prefill, 1 = decode): a prefill of random token ids with
    an empty KV cache (past_key_values.* [1, kv_heads, 0, head_dim]), then one decode step on its present.*;
    logits finite; inputs that do not fit the profile, a profile the engine lacks and a wrong dtype refused."""
    engine = os.environ.get("IREXPORT_TEST_ENGINE")
    if not engine:
        pytest.skip("set IREXPORT_TEST_ENGINE to a model.engine built from an irexport export (and IREXPORT_PLUGINS "
                    "to its plugin libraries, separated by os.pathsep) to run this test")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU (torch.cuda.is_available() is False)")
    plugins = [a for lib in os.environ.get("IREXPORT_PLUGINS", "").split(os.pathsep) if lib for a in ("--plugins", lib)]
    prefill, outputs = describe(irexport_run, engine, plugins, 0)
    decode, _ = describe(irexport_run, engine, plugins, 1)
    past = [name for name in prefill if name.startswith("past_key_values.")]
    assert past and set(prefill) == {"input_ids", "attention_mask", *past} and set(decode) == set(prefill), prefill
    assert prefill["input_ids"][0] == "int64"
    assert all(prefill[name][1][2] == prefill[name][2][2] == 0 for name in past), prefill  # prefill: empty cache
    assert decode["input_ids"][1][1] == decode["input_ids"][2][1] == 1, decode  # decode: one new token
    vocab = outputs["logits"][1][-1]

    # a prompt length both phases accept: the prefill's sequence, then the decode's past_sequence
    lo = max(prefill["input_ids"][1][1], decode[past[0]][1][2])
    hi = min(prefill["input_ids"][2][1], decode[past[0]][2][2])
    assert lo <= hi, (prefill["input_ids"], decode[past[0]])
    seq = min(max(8, lo), hi)

    rng = np.random.default_rng(0)
    mask_dtype = npy_dtype(prefill["attention_mask"][0])
    feed = {"input_ids": rng.integers(0, vocab, (1, seq), dtype=np.int64),
            "attention_mask": np.ones((1, seq), mask_dtype)}
    for name in past:
        kv_heads, head_dim = prefill[name][1][1], prefill[name][1][3]
        feed[name] = np.zeros((1, kv_heads, 0, head_dim), npy_dtype(prefill[name][0]))
    inputs = save_feed(tmp_path / "prefill", feed)
    result = run(irexport_run, "--engine", engine, *plugins, "--profile", 0, *inputs, "--output-dir", tmp_path / "out0")
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("logits ") and line.endswith(f" [1,{seq},{vocab}]")
               for line in result.stdout.splitlines()), result.stdout
    logits = np.load(tmp_path / "out0" / "logits.npy")
    assert logits.shape == (1, seq, vocab) and np.isfinite(logits).all()
    present = {name: np.load(tmp_path / "out0" / (name.replace("past_key_values.", "present.") + ".npy"))
               for name in past}
    assert all(present[name].shape == (1, feed[name].shape[1], seq, feed[name].shape[3]) for name in past)

    # one decode step on the prefill's cache
    step = {"input_ids": rng.integers(0, vocab, (1, 1), dtype=np.int64),
            "attention_mask": np.ones((1, seq + 1), mask_dtype),
            **{name: present[name].astype(npy_dtype(decode[name][0])) for name in past}}
    result = run(irexport_run, "--engine", engine, *plugins, "--profile", 1, *save_feed(tmp_path / "decode", step),
                 "--output-dir", tmp_path / "out1")
    assert result.returncode == 0, result.stderr
    logits = np.load(tmp_path / "out1" / "logits.npy")
    assert logits.shape == (1, 1, vocab) and np.isfinite(logits).all()

    # refused before the GPU runs: the prefill feed under the decode profile, a profile the engine lacks,
    # a wrong dtype
    refused = run(irexport_run, "--engine", engine, *plugins, "--profile", 1, *inputs, "--output-dir", tmp_path / "out")
    assert refused.returncode == 2 and "with optimization profile 1" in refused.stderr.splitlines()[-1], refused.stderr
    refused = run(irexport_run, "--engine", engine, *plugins, "--profile", 2, *inputs, "--output-dir", tmp_path / "out")
    assert refused.returncode == 2, refused.stderr
    assert "profile 2: the engine has 2 optimization profiles (0..1)" in refused.stderr.splitlines()[-1]
    np.save(tmp_path / "prefill" / "input_ids.npy", np.zeros((1, seq), np.float32))
    refused = run(irexport_run, "--engine", engine, *plugins, *inputs, "--output-dir", tmp_path / "out")
    assert refused.returncode == 2 and "input 'input_ids': dtype float32" in refused.stderr.splitlines()[-1]
