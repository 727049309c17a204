"""The engine stage up to the TensorRT boundary, on the CPU: recipes, profiles from the manifest, the
build record that runtimes check (engine files, TensorRT version, plugin library, input shapes), the
commands' behaviour without TensorRT, and the CI parity matrix over ONNX Runtime."""

import json

import numpy as np
import onnx
import pytest
import torch
from conftest import PROFILE, RECIPES, recipe

from irexport.engine.build import check_builder_version, classify_routing_nodes, routing_nodes
from irexport.engine.profiles import check_precision, input_shapes
from irexport.engine.recipe import load_recipe
from irexport.engine.record import check_engine_file, check_tensorrt_version, plugin_library_for, read_build_report
from irexport.engine.targets import TARGETS, require_target
from irexport.errors import IrexportError
from irexport.export.manifest import load_manifest
from irexport.parity.matrix import regressions
from irexport.runtime.tensorrt import check_feed


def tensorrt_installed() -> bool:
    """Full TensorRT (not TensorRT-RTX, which CI installs)."""
    try:
        require_target("tensorrt")
    except IrexportError:
        return False
    return True


# --- recipes -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_parse(path):
    r = load_recipe(path)
    assert r.name == path.stem and r.precision in ("float32", "float16", "bfloat16")
    assert all(r.profile[a].min <= r.profile[a].opt <= r.profile[a].max for a in ("batch", "sequence", "cache"))


def test_recipe_values():
    r = recipe(precision="bf16", builder_optimization_level=5, version_compatible=True, serialize_plugins=True,
               workspace_mib=512, timing_cache="t.cache")
    assert (r.precision, r.builder_optimization_level, r.workspace_mib, r.timing_cache) == ("bfloat16", 5, 512, "t.cache")
    assert r.profile["cache"].max == 256 and r.version_compatible and r.serialize_plugins


@pytest.mark.parametrize("change,message", [
    ({"precison": "fp16"}, "unknown key 'precison'"),
    ({"precision": "int8"}, "key 'precision' must be one of"),
    ({"profile": {k: v for k, v in PROFILE.items() if k != "cache"}}, "missing key 'profile.cache'"),
    ({"profile": {**PROFILE, "tokens": PROFILE["batch"]}}, "unknown key 'profile.tokens'"),
    ({"profile": {**PROFILE, "batch": {"min": 4, "opt": 2, "max": 8}}}, "min <= opt <= max"),
    ({"profile": {**PROFILE, "batch": {"min": 1, "max": 8}}}, "missing key 'profile.batch.opt'"),
    ({"profile": {**PROFILE, "batch": {"min": 0, "opt": 2, "max": 8}}}, "profile.batch.min"),
    ({"builder_optimization_level": 9}, "builder_optimization_level"),
    ({"builder_optimization_level": True}, "builder_optimization_level"),
    ({"serialize_plugins": True}, "needs version_compatible"),
    ({"version_compatible": "yes"}, "true or false"),
    ({"name": "../x"}, "plain directory name"),
])
def test_recipe_errors_name_the_key(change, message):
    with pytest.raises(IrexportError, match="test.yaml") as e:
        recipe(**change)
    assert message in str(e.value)


def test_recipe_file_errors(tmp_path):
    with pytest.raises(IrexportError, match="recipe not found"):
        load_recipe(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("precision: [fp16\n")
    with pytest.raises(IrexportError, match="not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- fp16\n")
    with pytest.raises(IrexportError, match="mapping"):
        load_recipe(tmp_path / "list.yaml")


# --- profiles from the manifest ---------------------------------------------------------------------------

def test_profiles_follow_the_manifest_axes(exported):
    out, _ = exported("informed")
    manifest = load_manifest(out)
    kv_heads, head_dim = manifest["model"]["kv_shape"][1], manifest["model"]["kv_shape"][3]
    prefill = input_shapes(manifest, recipe(), "prefill")
    assert prefill["input_ids"] == prefill["attention_mask"] == ((1, 1), (2, 16), (4, 128))
    assert prefill["past_key_values.0.key"] == ((1, kv_heads, 0, head_dim), (2, kv_heads, 0, head_dim),
                                                (4, kv_heads, 0, head_dim))  # an empty cache
    decode = input_shapes(manifest, recipe(), "decode")
    assert decode["input_ids"] == ((1, 1), (2, 1), (4, 1))
    assert decode["attention_mask"] == ((1, 2), (2, 33), (4, 257))  # past + the new token
    assert decode["past_key_values.1.value"] == ((1, kv_heads, 1, head_dim), (2, kv_heads, 32, head_dim),
                                                 (4, kv_heads, 256, head_dim))
    assert set(decode) == set(prefill) == {io["name"] for io in manifest["graph"]["inputs"]}


def test_profile_errors(exported):
    out, _ = exported("informed")
    manifest = load_manifest(out)
    with pytest.raises(IrexportError, match="export --dtype float16"):
        check_precision(manifest, recipe(precision="fp16"), "test.yaml")
    manifest["graph"]["inputs"][0]["shape"] = ["batch", "chunk"]
    with pytest.raises(IrexportError, match="'chunk', which no recipe axis covers"):
        input_shapes(manifest, recipe(), "prefill")
    with pytest.raises(IrexportError, match="unknown phase 'draft'"):
        input_shapes(manifest, recipe(), "draft")


# --- what the build reports about routing nodes ---------------------------------------------------------------

def test_routing_nodes_are_classified_as_plugins_or_inlined(exported):
    out, _ = exported("informed", "compact")
    nodes = routing_nodes(onnx.load(str(out / "model.onnx"), load_external_data=False))
    ops = {n["op"] for n in nodes}
    assert ops == {"RouteArgmax", "RouteIndex", "RouteSeqIndex", "RouteGather", "RouteScatterAdd"}
    everything = classify_routing_nodes(nodes, [n["name"] for n in nodes])
    assert everything["inlined"] == {} and sum(everything["plugins"].values()) == len(nodes)
    nothing = classify_routing_nodes(nodes, ["unrelated_layer"])
    assert nothing["plugins"] == {} and sum(nothing["inlined"].values()) == len(nodes)
    gathers = [n["name"] for n in nodes if n["op"] == "RouteGather"]
    part = classify_routing_nodes(nodes, gathers)
    assert set(part["plugins"]) == {"RouteGather"} and "RouteGather" not in part["inlined"]


def test_classification_is_not_fooled_by_suffixed_names():
    """The parser appends "_N" only to a taken name: "X_1" is node X_1 when that node exists."""
    nodes = [{"name": "/l0/RouteArgmax", "op": "RouteArgmax"}, {"name": "/l0/RouteArgmax_1", "op": "RouteArgmax"},
             {"name": "/l0/RouteGather", "op": "RouteGather"}]
    got = classify_routing_nodes(nodes, ["/l0/RouteArgmax_1", "/l0/RouteGather_2"])
    assert got["plugin_nodes"] == ["/l0/RouteArgmax_1", "/l0/RouteGather"]
    assert got["inlined_nodes"] == ["/l0/RouteArgmax"]


# --- the build record runtimes check ---------------------------------------------------------------------------

def test_intact_build_record_passes(build_dir):
    engines, plugins, _ = build_dir
    report = read_build_report(engines)
    assert check_engine_file(engines, report) == engines / "model.engine"
    assert [report["engine"]["profiles"][phase]["index"] for phase in ("prefill", "decode")] == [0, 1]
    assert plugin_library_for(report) == plugins.resolve()
    check_tensorrt_version(report, "11.1.0", "x")


def test_truncated_or_swapped_engines_are_refused(build_dir):
    engines, _, _ = build_dir
    report = read_build_report(engines)
    data = (engines / "model.engine").read_bytes()
    (engines / "model.engine").write_bytes(data[:1000])
    with pytest.raises(IrexportError, match="1000 bytes, the build wrote 4096 .truncated"):
        check_engine_file(engines, report)
    (engines / "model.engine").write_bytes(data[::-1])
    with pytest.raises(IrexportError, match="sha256 mismatch"):
        check_engine_file(engines, report)
    (engines / "model.engine").unlink()
    with pytest.raises(IrexportError, match="engine file not found"):
        check_engine_file(engines, report)
    (engines / "build_report.json").write_text("{")
    with pytest.raises(IrexportError, match="not valid JSON"):
        read_build_report(engines)
    with pytest.raises(IrexportError, match="not a directory written by irexport build"):
        read_build_report(engines.parent)


def test_plugin_library_must_be_present_and_the_same(build_dir, tmp_path):
    engines, plugins, _ = build_dir
    report = read_build_report(engines)
    plugins.write_bytes(b"plugin library v2")
    with pytest.raises(IrexportError, match="not the plugin library .* was built with"):
        plugin_library_for(report, where=str(engines))
    plugins.unlink()
    with pytest.raises(IrexportError, match="plugin library not found"):
        plugin_library_for(report)
    with pytest.raises(IrexportError, match="plugin library not found"):
        plugin_library_for(report, tmp_path / "elsewhere.so")
    report["plugins"]["serialized"] = True  # version-compatible engines carry it
    assert plugin_library_for(report) is None


def test_tensorrt_version_rules(build_dir):
    engines, _, _ = build_dir
    report = read_build_report(engines)
    with pytest.raises(IrexportError, match="built with TensorRT 11.1.0, this is TensorRT 11.4.0"):
        check_tensorrt_version(report, "11.4.0", "x")
    report["version_compatible"] = True
    check_tensorrt_version(report, "11.4.0", "x")  # newer runtime of the same major
    for other in ("11.0.0", "12.0.0"):
        with pytest.raises(IrexportError, match="this is TensorRT"):
            check_tensorrt_version(report, other, "x")


def test_feed_is_checked_against_the_profile(build_dir):
    engines, _, _ = build_dir
    inputs = read_build_report(engines)["engine"]["profiles"]["decode"]["inputs"]
    kv = inputs["past_key_values.0.key"]["min"]
    feed = {name: np.zeros([2, kv[1], 5, kv[3]], np.float32) for name in inputs if name.startswith("past")}
    feed.update(input_ids=np.zeros((2, 1), np.int64), attention_mask=np.ones((2, 6), np.int64))
    check_feed(inputs, feed, "decode")
    check_feed(inputs, {**feed, "input_ids": torch.zeros(2, 1, dtype=torch.int64)}, "decode")
    cases = [
        ({k: v for k, v in feed.items() if k != "attention_mask"}, "missing input 'attention_mask'"),
        ({**feed, "position_ids": feed["input_ids"]}, "unknown input 'position_ids'"),
        ({**feed, "input_ids": feed["input_ids"].astype(np.int32)}, "input_ids is int32, the engine takes int64"),
        ({**feed, "input_ids": np.zeros(2, np.int64)}, "takes rank 2"),
        ({**feed, "attention_mask": np.ones((2, 300), np.int64)},
         r"\[2, 300\], outside the engine's profile \[1, 2\] .. \[4, 257\] \(rebuild with a wider recipe"),
        ({**feed, "input_ids": np.zeros((5, 1), np.int64)}, "outside the engine's profile"),
    ]
    for bad, message in cases:
        with pytest.raises(IrexportError, match=message):
            check_feed(inputs, bad, "decode")
    # the prefill profile takes an empty cache only: a decode feed is outside it
    prefill = read_build_report(engines)["engine"]["profiles"]["prefill"]["inputs"]
    with pytest.raises(IrexportError, match=r"past_key_values.0.key has shape \[2, 2, 5, 16\], outside .* \(prefill takes an empty cache"):
        check_feed(prefill, feed, "prefill")
    empty = {name: np.zeros([2, kv[1], 0, kv[3]], np.float32) for name in inputs if name.startswith("past")}
    check_feed(prefill, {**feed, **empty, "attention_mask": np.ones((2, 1), np.int64)}, "prefill")


def test_bfloat16_inputs_take_float32_arrays():
    inputs = {"past": {"dtype": "bfloat16", "min": [1], "max": [8]}}
    check_feed(inputs, {"past": np.zeros(4, np.float32)}, "x")
    check_feed(inputs, {"past": torch.zeros(4, dtype=torch.bfloat16)}, "x")
    with pytest.raises(IrexportError, match="is float16, the engine takes bfloat16"):
        check_feed(inputs, {"past": np.zeros(4, np.float16)}, "x")


# --- the commands without TensorRT --------------------------------------------------------------------------

@pytest.mark.skipif(tensorrt_installed(), reason="TensorRT is installed here: the missing-TensorRT path cannot be checked")
def test_build_without_tensorrt_says_how_to_get_it(exported, cli):
    out, _ = exported("informed")
    code, stdout, stderr = cli("build", out, "--recipe", RECIPES / "demo.yaml", "--target", "tensorrt")
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "TensorRT is not installed" in stderr and "docker" in stderr
    assert "Traceback" not in stderr and not (out / "engines").exists()


def test_build_checks_the_recipe_before_tensorrt(exported, cli, tmp_path):
    out, _ = exported("informed")
    code, _, stderr = cli("build", out, "--recipe", RECIPES / "demo-fp16.yaml")
    assert code == 2 and "asks for float16 but the export is float32" in stderr
    (tmp_path / "r.yaml").write_text("precision: fp32\nprofile: {batch: {min: 1, opt: 1, max: 1}}\n")
    code, _, stderr = cli("build", out, "--recipe", tmp_path / "r.yaml")
    assert code == 2 and "missing key 'profile.sequence'" in stderr
    code, _, stderr = cli("build", tmp_path, "--recipe", RECIPES / "demo.yaml")
    assert code == 2 and "not an irexport export directory" in stderr


def test_generate_with_engines_checks_them_first(build_dir, cli, tmp_path):
    engines, _, out = build_dir
    np.save(tmp_path / "ids.npy", np.array([[1, 2, 3]], np.int64))
    data = (engines / "model.engine").read_bytes()
    (engines / "model.engine").write_bytes(data[:-1])
    code, _, stderr = cli("generate", out, "--engine", engines, "--input-ids", tmp_path / "ids.npy")
    assert code == 2 and "model.engine: 4095 bytes" in stderr and stderr.count("\n") == 1
    (engines / "model.engine").write_bytes(data)
    code, _, stderr = cli("generate", out, "--engine", engines, "--input-ids", tmp_path / "ids.npy")
    assert code == 2 and stderr.count("\n") == 1
    assert ("built for TensorRT, which is not installed here" in stderr) != tensorrt_installed() or "GPU" in stderr


def test_parity_trt_backend_needs_engines(exported, cli):
    out, _ = exported("informed")
    code, _, stderr = cli("parity", out, "--backends", "torch,onnxrt,trt", "--new-tokens", "0")
    assert code == 2 and "needs --engine DIR (engine builds found: none" in stderr
    code, _, stderr = cli("parity", out, "--backends", "torch,tensorflow")
    assert code == 2 and "unknown backend 'tensorflow'" in stderr and stderr.count("\n") == 1


# --- the CI parity matrix ---------------------------------------------------------------------------------

def test_regressions_against_a_baseline():
    row = {"export": "e", "backend": "trt", "passed": True, "logits_max_abs": 1e-5, "kv_max_abs": 1e-6}
    assert regressions([row], [row], 2.0) == []
    assert regressions([row], [{**row, "logits_max_abs": 1e-6}], 2.0) == [
        "e [trt]: logits_max_abs 1e-05 > 2.0x the baseline's 1e-06"]
    assert "fails now" in regressions([{**row, "passed": False}], [row], 2.0)[0]
    assert regressions([row], [{**row, "export": "other"}], 2.0) == []  # new entries are not regressions


def test_parity_matrix_passes_and_catches_a_regression(exported, cli, tmp_path):
    out, _ = exported("router_tuning", "compact")
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"entries": [{"export": str(out), "backend": "onnxrt", "passed": True,
                                                 "logits_max_abs": 1e-12, "kv_max_abs": 1.0}]}))
    summary = tmp_path / "matrix.json"
    code, stdout, _ = cli("parity-matrix", out, "--baseline", baseline, "--report", summary, "--new-tokens", "2")
    report = json.loads(summary.read_text())
    assert report["entries"][0]["passed"] and report["entries"][0]["backend"] == "onnxrt"
    assert code == 1 and not report["passed"] and "logits_max_abs" in report["regressions"][0]
    assert "REGRESSION" in stdout and "matrix FAIL" in stdout
    code, stdout, _ = cli("parity-matrix", out, "--report", summary, "--new-tokens", "2")
    assert code == 0 and "matrix PASS: 1/1" in stdout


@pytest.mark.parametrize("target,version,ok", [
    ("tensorrt", "10.8.0.43", True), ("tensorrt", "11.1.0", True), ("tensorrt", "10.7.0", False),
    ("tensorrt", "10.6.1", False), ("tensorrt", "8.6.1", False), ("tensorrt", "garbage", False),
    ("tensorrt-rtx", "1.7.1.116", True), ("tensorrt-rtx", "1.6.0", False)])
def test_builder_version_floor(target, version, ok):
    """TensorRT: 10.7 made plugins win over function bodies, 10.8 fixed function-input names aliasing graph
    tensors. TensorRT-RTX: 1.7 is the oldest verified (it numbers its releases apart from TensorRT)."""
    if ok:
        check_builder_version(TARGETS[target], version)
    else:
        oldest = {"tensorrt": "TensorRT >= 10.8", "tensorrt-rtx": "TensorRT-RTX >= 1.7"}[target]
        with pytest.raises(IrexportError, match=f"{oldest} is needed"):
            check_builder_version(TARGETS[target], version)
