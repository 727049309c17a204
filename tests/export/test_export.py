"""ONNX export: every family in both strategies passes ONNX Runtime parity (prefill, decode, greedy
generation) against the reference; files are deterministic; bad input leaves nothing behind."""

import json

import numpy as np
import onnx
import pytest
import torch
from conftest import EXPORT_LAYERS as LAYERS
from conftest import FAMILY_SETTINGS

from irexport.checkpoints import load_model
from irexport.export.onnx_export import checkpoint_hash
from irexport.filehash import sha256
from irexport.ops import OPS
from irexport.parity.check import parity, sample_inputs


def check_report(report, backend="onnxrt"):
    result = report["results"][backend]
    for graph in ("prefill", "decode"):
        section = result[graph]
        assert section["routing"]["flips"] == section["routing"]["near_tie_flips"], section["routing"]
        assert section["numerics"]["passed"], section["numerics"]
    assert result["generation"]["passed"], result["generation"]
    assert report["passed"]


@pytest.mark.parametrize("strategy", ["compact", "masked"])
@pytest.mark.parametrize("name", list(FAMILY_SETTINGS))
def test_onnxruntime_parity(exported, name, strategy):
    out, model_dir = exported(name, strategy)
    model = load_model(model_dir)
    report = parity(out, model, sample_inputs(model.config.vocab_size, batch=3, seq=20, seed=1), new_tokens=6)
    check_report(report)
    assert report["results"]["onnxrt"]["prefill"]["numerics"]["logits"]["max_abs"] <= 1e-4
    # the routing really is mixed on these inputs, so both paths of every routed unit ran
    feed = sample_inputs(model.config.vocab_size, batch=3, seq=20, seed=1)
    with torch.no_grad():
        out_ref = model(torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"]))
    fraction = out_ref.execute[:, :, out_ref.valid].float().mean().item()
    assert 0.05 < fraction < 0.95, fraction


@pytest.mark.parametrize("name,strategy", [("informed", "compact"), ("skipgpt", "masked"), ("router_tuning", "compact"),
                                           ("router_tuning_seq", "masked"), ("mod", "compact")])
def test_onnxruntime_parity_float16(exported, name, strategy):
    out, model_dir = exported(name, strategy, "float16")
    model = load_model(model_dir).to(torch.float16)
    check_report(parity(out, model, sample_inputs(model.config.vocab_size, seed=2), new_tokens=4))


def test_compact_graph_runs_units_on_executed_tokens_only(exported):
    """The compact graph gathers rows before the MLP matmuls; the masked graph has no gather."""
    compact, _ = exported("skipgpt", "compact")
    masked, _ = exported("skipgpt", "masked")
    ops = lambda path: [n.op_type for n in onnx.load(str(path / "model.onnx")).graph.node]  # noqa: E731
    assert ops(compact).count("RouteGather") >= 2 * LAYERS and "RouteScatterAdd" in ops(compact)
    assert "RouteGather" not in ops(masked) and "RouteIndex" not in ops(masked)
    assert ops(masked).count("RouteArgmax") == 2 * LAYERS


def test_manifest(exported):
    out, model_dir = exported("informed")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["sha256"] == checkpoint_hash(model_dir)
    assert manifest["opset"] == 18 and manifest["dtype"] == "float32" and manifest["strategy"] == "compact"
    inputs = {io["name"]: io for io in manifest["graph"]["inputs"]}
    assert inputs["input_ids"]["shape"] == ["batch", "sequence"]
    assert inputs["attention_mask"]["shape"] == ["batch", "past_sequence + sequence"]
    assert inputs["past_key_values.0.key"]["shape"] == ["batch", 2, "past_sequence", 16]
    outputs = [io["name"] for io in manifest["graph"]["outputs"]]
    assert outputs[:3] == ["logits", "decisions", "router_margin"] and "present.1.value" in outputs
    names = {op["name"] for op in manifest["custom_ops"]}
    assert names == {"RouteArgmax", "RouteIndex", "RouteSeqIndex", "RouteGather", "RouteScatterAdd"}
    assert all(op["plugin_namespace"] == "irexport" and op["plugin_version"] == OPS[op["name"]].plugin_version
               for op in manifest["custom_ops"])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_weights_are_stored_once(exported, dtype):
    """The graph points into weights.data, and it holds each distinct tensor once: the export is the size
    of its weights (the model's parameters)."""
    out, model_dir = exported("informed", "compact", dtype)
    weights = out / "weights.data"
    assert json.loads((out / "manifest.json").read_text())["weights"] == {
        "file": "weights.data", "bytes": weights.stat().st_size, "sha256": sha256(weights)}
    stored = {}
    graph = onnx.load(str(out / "model.onnx"), load_external_data=False).graph
    external = [t for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and all({e.key: e.value for e in t.external_data}["location"] == "weights.data" for t in external)
    for t in external:
        info = {e.key: int(e.value) for e in t.external_data if e.key != "location"}
        stored[info["offset"]] = info["length"]
    assert (out / "model.onnx").stat().st_size < 1 << 20  # the graph file holds no weights
    parameters = sum(p.numel() for p in load_model(model_dir).parameters()) * (4 if dtype == "float32" else 2)
    assert sum(stored.values()) <= weights.stat().st_size < 1.1 * parameters  # once (plus folded copies of small ones)
    model = onnx.load(str(out / "model.onnx"))  # the graph loads with its weights from the file
    assert sum(onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer) > 0.9 * parameters


def test_export_is_byte_identical(tmp_path, exported, cli):
    out, model_dir = exported("mod", "compact")
    assert cli("export", model_dir, "-o", tmp_path / "again")[0] == 0
    for f in ("model.onnx", "weights.data"):
        assert (out / f).read_bytes() == (tmp_path / "again" / f).read_bytes(), f
    first, again = (json.loads((d / "manifest.json").read_text()) for d in (out, tmp_path / "again"))
    assert first["graph"] == again["graph"] and first["source"]["sha256"] == again["source"]["sha256"]


def test_export_is_byte_identical_across_processes(tmp_path, exported):
    """Memory addresses differ only between processes: every file of two exports made in two processes is
    the same, and no exporter debug trail is left in the graphs."""
    import subprocess
    import sys

    import onnx

    _, model_dir = exported("informed", "compact")
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:
        run = subprocess.run([sys.executable, "-m", "irexport.cli.main", "export", str(model_dir), "-o", str(out)],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(p.name for p in outs[1].iterdir()) == ["manifest.json", "model.onnx", "weights.data"]
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    proto = onnx.load(str(outs[0] / "model.onnx"), load_external_data=False)
    assert not proto.graph.metadata_props and not any(n.metadata_props for n in proto.graph.node)


@pytest.mark.parametrize("routing_ops", ["bodies", "kernels"])
@pytest.mark.parametrize("name", ["informed", "mod"])
def test_one_session_serves_prefill_decode_and_chunks(exported, name, routing_ops, request):
    """The one graph in one ONNX Runtime session: a prefill (empty cache), a chunk of 3 tokens extending
    the cache, then one token, each equal to the reference's forward on the same cache; with the routing
    ops' function bodies and with irexport's kernels (skipped where they cannot be built)."""
    from irexport.runtime import OnnxGenerator

    if routing_ops == "kernels":
        request.getfixturevalue("use_kernels")
    out, model_dir = exported(name)
    model = load_model(model_dir)
    session = OnnxGenerator(out, routing_ops=routing_ops)
    assert session.routing_ops == routing_ops
    ids = np.random.default_rng(7).integers(0, 257, (2, 12))
    mask = np.ones_like(ids)
    mask[1, :3] = 0
    got = session.run("prefill", session.io.prefill_feed(ids[:, :8], mask[:, :8]))
    with torch.no_grad():
        ref = model(torch.from_numpy(ids[:, :8]), attention_mask=torch.from_numpy(mask[:, :8]), mode="compact")
        for start, stop in ((8, 11), (11, 12)):
            np.testing.assert_array_equal(got["decisions"], ref.execute.numpy())
            np.testing.assert_allclose(got["logits"], ref.logits.numpy(), atol=1e-4)
            feed = {"input_ids": ids[:, start:stop], "attention_mask": mask[:, :stop], **session.io.cache_feed(got)}
            got = session.run("decode", feed)
            ref = model(torch.from_numpy(ids[:, start:stop]), attention_mask=torch.from_numpy(mask[:, :stop]),
                        past_key_values=ref.past_key_values, mode="compact")
        np.testing.assert_array_equal(got["decisions"], ref.execute.numpy())
        np.testing.assert_allclose(got["logits"], ref.logits.numpy(), atol=1e-4)


def test_generate_command_matches_the_reference(exported, cli, tmp_path):
    from irexport.reference import greedy

    out, model_dir = exported("informed")
    ids = np.random.default_rng(3).integers(0, 257, (2, 7))
    np.save(tmp_path / "ids.npy", ids)
    code, stdout, err = cli("generate", out, "--input-ids", tmp_path / "ids.npy", "--max-new-tokens", "5")
    assert code == 0, err
    tokens = [json.loads(line)["tokens"] for line in stdout.strip().splitlines()]
    expected = greedy(load_model(model_dir), ids, np.ones_like(ids), 5, "compact")
    assert tokens == expected.tolist()
    code, stdout, err = cli("generate", out, "--prompt", "routed", "--max-new-tokens", "3")
    assert code == 0, err
    assert len(json.loads(stdout)["tokens"]) == 3 and "completion" in json.loads(stdout)


def test_parity_command_fails_on_a_broken_export(exported, cli, tmp_path):
    """Scaling the LM head (folded to a [hidden, vocab] initializer) breaks the logits: parity exits 1 (with
    --no-verify: the edited graph stands for a backend that computes wrongly, not for a file to refuse)."""
    out, model_dir = exported("skipgpt", "masked")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("manifest.json", "weights.data"):
        (broken / f).write_bytes((out / f).read_bytes())
    model = onnx.load(str(out / "model.onnx"))
    lm_head = next(t for t in model.graph.initializer if list(t.dims) == [64, 257])
    array = onnx.numpy_helper.to_array(lm_head) * 1.01
    lm_head.CopyFrom(onnx.numpy_helper.from_array(array, lm_head.name))
    onnx.save(model, str(broken / "model.onnx"))
    assert cli("parity", broken, "--model", model_dir, "--new-tokens", "0")[0] == 2  # the graph's sha256 differs
    code, stdout, _ = cli("parity", broken, "--model", model_dir, "--new-tokens", "0", "--no-verify")
    assert code == 1
    report = json.loads((broken / "parity_report.json").read_text())
    assert not report["results"]["onnxrt"]["prefill"]["numerics"]["logits"]["passed"] and not report["passed"]
    assert "FAIL" in stdout


def test_interrupted_export_leaves_nothing(exported, cli, tmp_path, monkeypatch):
    import irexport.export.onnx_export as onnx_export

    _, model_dir = exported("informed")
    real = onnx_export.export_graph

    def interrupt_after_tracing(*args):
        real(*args)  # weights.data is written by now
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "export_graph", interrupt_after_tracing)
    code, _, err = cli("export", model_dir, "-o", tmp_path / "out")
    assert code == 130 and "interrupted" in err
    assert list(tmp_path.iterdir()) == [], "no model.onnx and no temporary directory may remain"


def test_export_bad_inputs(exported, cli, tmp_path):
    out, model_dir = exported("informed")
    code, _, err = cli("export", tmp_path, "-o", tmp_path / "x")
    assert code == 2 and "routing_config.json" in err and "Traceback" not in err
    code, _, err = cli("export", model_dir, "-o", "/proc/irexport-export")
    assert code == 2 and err.strip().splitlines()[-1].startswith("irexport: error: /proc/irexport-export")
    code, _, err = cli("export", model_dir, "-o", tmp_path / "y", "--dtype", "int8")
    assert code == 2 and "argument --dtype: invalid choice: 'int8'" in err and not (tmp_path / "y").exists()
    code, _, err = cli("parity", tmp_path)
    assert code == 2 and "manifest.json" in err
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return  # bf16 parity can run here; the refusal below is for CPU-only ONNX Runtime
    bf16 = tmp_path / "bf16"
    bf16.mkdir()
    manifest = json.loads((out / "manifest.json").read_text())
    (bf16 / "manifest.json").write_text(json.dumps({**manifest, "dtype": "bfloat16"}))
    for f in ("model.onnx", "weights.data"):
        (bf16 / f).write_bytes((out / f).read_bytes())
    code, _, err = cli("parity", bf16)
    assert code == 2 and "CUDA provider" in err


def test_parity_refuses_a_model_that_is_not_the_exports_source(exported, cli, tmp_path):
    out, _ = exported("informed")
    other = tmp_path / "other"
    assert cli("init", other, "--layers", "3")[0] == 0
    code, _, err = cli("parity", out, "--model", other)
    assert code == 2 and "num_layers is 3" in err
