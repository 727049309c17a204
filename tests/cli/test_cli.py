"""The command line: init, run, inspect, demo; and cheap imports (no TensorRT, no onnxruntime needed)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from irexport.checkpoints import load_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from irexport.cli.main import main

    path = tmp_path_factory.mktemp("cli") / "model"
    assert main(["init", str(path), "--family", "informed", "--arch", "qwen2"]) == 0
    return path


def test_run_saves_reference_outputs(tmp_path, cli, model_dir):
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    ids = np.random.default_rng(0).integers(0, 257, (2, 9))
    mask = np.ones_like(ids)
    mask[1, :4] = 0
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "mask.npy", mask)
    code, _, err = cli("run", model_dir, "--input-ids", tmp_path / "ids.npy", "--attention-mask", tmp_path / "mask.npy",
                       "--mode", "compact", "-o", tmp_path / "run")
    assert code == 0, err
    saved = np.load(tmp_path / "run" / "outputs.npz")
    with torch.no_grad():
        out = load_model(model_dir)(torch.from_numpy(ids), torch.from_numpy(mask))
    valid = out.valid.numpy()
    np.testing.assert_allclose(saved["logits"][valid], out.logits.numpy()[valid], atol=1e-5)
    np.testing.assert_array_equal(saved["decisions"], out.execute.numpy())
    assert saved["decisions"].shape == (4, 2, 2, 9)
    results = RunResults.load(str(tmp_path / "run" / "outputs.polygraphy.json"))
    np.testing.assert_array_equal(results[0][1][0]["logits"], saved["logits"])
    feeds = load_json(str(tmp_path / "run" / "inputs.polygraphy.json"))
    np.testing.assert_array_equal(feeds[0]["attention_mask"], mask)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["mode"] == "compact" and 0 < meta["stats"]["saved_fraction"] < 1


def test_run_text_through_the_tokenizer(tmp_path, cli, model_dir):
    code, _, err = cli("run", model_dir, "--text", "hello", "--text", "routed models", "-o", tmp_path / "run")
    assert code == 0, err
    saved = np.load(tmp_path / "run" / "outputs.npz")
    assert saved["input_ids"].shape == (2, len("routed models"))  # byte-level tokenizer, left padded
    assert saved["attention_mask"][0].sum() == len("hello")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_run_low_precision(tmp_path, cli, model_dir, dtype):
    np.save(tmp_path / "ids.npy", np.arange(12).reshape(1, 12))
    assert cli("run", model_dir, "--input-ids", tmp_path / "ids.npy", "--dtype", dtype, "-o", tmp_path / "low")[0] == 0
    assert cli("run", model_dir, "--input-ids", tmp_path / "ids.npy", "-o", tmp_path / "f32")[0] == 0
    low, ref = np.load(tmp_path / "low" / "outputs.npz"), np.load(tmp_path / "f32" / "outputs.npz")
    assert np.isfinite(low["logits"]).all()
    assert (low["decisions"] == ref["decisions"]).mean() > 0.9


def test_inspect_json(cli, model_dir):
    code, out, err = cli("inspect", model_dir, "--json", "--sample-tokens", "64")
    assert code == 0, err
    report = json.loads(out)
    assert report["architecture"]["model_type"] == "qwen2"
    assert len(report["units"]) == 8
    assert all(0 < u["executed_fraction"] < 1 for u in report["units"])
    assert 0 < report["saved_fraction"] < 1 and report["routed_flops"] < report["dense_flops"]
    assert report["parameters"]["total"] == report["parameters"]["base"] + report["parameters"]["routing"]


def test_inspect_text(cli, model_dir):
    code, out, _ = cli("inspect", model_dir)
    assert code == 0
    assert "family=informed" in out and "FLOPs" in out and "layer  unit" in out


def test_demo(tmp_path, cli):
    code, out, err = cli("demo", "--dir", tmp_path / "demo")
    assert code == 0, err
    assert (tmp_path / "demo" / "reference" / "outputs.polygraphy.json").is_file()
    assert "saved" in out


def test_usage_error_is_one_line_and_exit_2(cli):
    code, out, err = cli("run")
    assert code == 2 and out == ""
    assert err.startswith("irexport: error: run: the following arguments are required") and err.count("\n") == 1


def test_import_and_help_need_no_heavy_packages():
    """``import irexport`` and ``irexport --help`` work with TensorRT and onnxruntime absent, and load no torch."""
    code = (
        "import sys\n"
        "for name in ('tensorrt', 'onnxruntime', 'onnx'):\n"
        "    sys.modules[name] = None  # makes any import of them fail\n"
        "import irexport, irexport.cli.main as m\n"
        "assert 'torch' not in sys.modules, 'torch imported eagerly'\n"
        "assert m.main(['--help']) == 0\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: irexport" in result.stdout


def test_an_internal_error_has_its_own_exit_code_and_one_line(cli, model_dir, monkeypatch):
    """A crash is never read as a failed check (1) or bad input (2): exit 70, one line, traceback with --debug."""
    import irexport.cli.inspect as inspect_cli

    def crash(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(inspect_cli, "main", crash)
    code, _, err = cli("inspect", model_dir)
    assert code == 70
    assert err.count("\n") == 1 and "internal error in 'inspect' (ZeroDivisionError: division by zero)" in err
    assert "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        cli("--debug", "inspect", model_dir)
    monkeypatch.setenv("IREXPORT_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli("inspect", model_dir)


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: "
                                                                  "can't allocate memory: you tried to allocate 8 GB")])
def test_running_out_of_memory_is_one_line_not_a_crash(cli, model_dir, monkeypatch, error):
    """Inputs too large for the machine (a long sequence through eager attention) are the user's to shrink."""
    import irexport.cli.inspect as inspect_cli

    def allocate(*args):
        raise error

    monkeypatch.setattr(inspect_cli, "report", allocate)
    code, _, err = cli("inspect", model_dir)
    assert code == 2 and err.count("\n") == 1 and err.startswith("irexport: error: out of memory in 'inspect'")


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_signal_during_an_export_leaves_nothing(model_dir, tmp_path, signum):
    """SIGTERM (CI timeouts, container stops) is handled like Ctrl-C (SIGINT): exit 130, one line, no partial
    output, and an existing output directory is left as it was."""
    import signal
    import time

    out = tmp_path / "exported"
    out.mkdir()
    (out / "keep.txt").write_text("previous output")
    proc = subprocess.Popen([sys.executable, "-m", "irexport.cli.main", "export", str(model_dir), "-o", str(out),
                             "--overwrite"], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait until the export is under way
        if "exporting the graph" in line:
            break
    time.sleep(1.0)
    proc.send_signal(getattr(signal, signum))
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, rest
    assert rest.strip().splitlines()[-1] == "irexport: interrupted (no partial output was kept)", rest
    assert "Traceback" not in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]  # no .partial directory
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
