"""Tests that need a GPU or TensorRT: engine builds, TensorRT parity, the Python runtime. They skip
with the reason where those are absent (CPU CI); the docker image (docker/) has everything."""

import json

import numpy as np
import pytest
import torch
from conftest import RECIPES

from irexport.checkpoints import load_model
from irexport.errors import IrexportError
from irexport.parity.check import parity, sample_inputs


def tensorrt_or_skip():
    from irexport.engine.targets import require_target

    try:
        _, trt = require_target("tensorrt")
    except IrexportError as e:
        pytest.skip(str(e))
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as e:  # noqa: BLE001 - stub packages fail in many ways
        pytest.skip(f"TensorRT is installed but has no usable builder here: {e}")
    if builder is None or not torch.cuda.is_available():
        pytest.skip("TensorRT could not create a builder, or torch sees no CUDA GPU")
    return trt, builder


def plugins_or_skip():
    from irexport.engine.loading import find_plugin_library

    try:
        return find_plugin_library()
    except IrexportError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def engines(exported, tmp_path_factory):
    """engines(name, strategy, dtype, plugins=True) -> engine dir built with the demo recipe of that dtype."""
    from irexport.cli.main import main

    built = {}

    def get(name="informed", strategy="compact", dtype="float32", plugins=True):
        key = (name, strategy, dtype, plugins)
        if key not in built:
            tensorrt_or_skip()
            out, _ = exported(name, strategy, dtype)
            recipe = RECIPES / {"float32": "demo.yaml", "float16": "demo-fp16.yaml", "bfloat16": "demo-bf16.yaml"}[dtype]
            dest = tmp_path_factory.mktemp("engines") / "-".join(map(str, key))
            flags = ["--plugins", str(plugins_or_skip())] if plugins else ["--no-plugins"]
            assert main(["build", str(out), "--recipe", str(recipe), "-o", str(dest), "--target", "tensorrt", *flags]) == 0
            built[key] = dest
        return built[key]

    return get


@pytest.mark.tensorrt
@pytest.mark.parametrize("strategy", ["compact", "masked"])
def test_tensorrt_inlines_the_function_bodies_without_the_plugin_library(engines, strategy):
    """Without irexport's plugin library loaded, TensorRT (>= 10.7) must inline every routing op's
    function body: the build succeeds and no routing node became a plugin."""
    engine = json.loads((engines("informed", strategy, plugins=False) / "build_report.json").read_text())["engine"]
    assert engine["plugin_layers"] == 0
    assert engine["routing"]["plugins"] == {}
    assert sum(engine["routing"]["inlined"].values()) > 0


@pytest.mark.tensorrt
@pytest.mark.parametrize("strategy", ["compact", "masked"])
def test_routing_nodes_become_plugins_with_the_library(engines, strategy):
    """... and the engine holds the profiles the build record lists, with their ranges."""
    from irexport.runtime import Engine

    engine_dir = engines("informed", strategy)
    report = json.loads((engine_dir / "build_report.json").read_text())
    assert report["engine"]["routing"]["inlined"] == {}, report["engine"]["routing"]
    assert report["plugins"]["sha256"]
    engine = Engine(engine_dir).engine  # refuses an engine without one profile per phase
    for phase, profile in report["engine"]["profiles"].items():
        for name, spec in profile["inputs"].items():
            got = [list(dims) for dims in engine.get_tensor_profile_shape(name, profile["index"])]
            assert got == [spec["min"], spec["opt"], spec["max"]], (phase, name)


@pytest.mark.tensorrt
@pytest.mark.parametrize("name,strategy,dtype", [("informed", "compact", "float32"), ("mod", "compact", "float32"),
                                                 ("skipgpt", "masked", "float32"), ("informed", "compact", "float16"),
                                                 ("router_tuning", "compact", "bfloat16")])
def test_tensorrt_parity(engines, exported, name, strategy, dtype):
    engine_dir = engines(name, strategy, dtype)
    out, model_dir = exported(name, strategy, dtype)
    model = load_model(model_dir).to(getattr(torch, dtype))
    backends = ("trt",) if dtype == "bfloat16" else ("onnxrt", "trt")  # ONNX Runtime's CPU provider has no bf16
    report = parity(out, model, sample_inputs(model.config.vocab_size, seed=3), new_tokens=4, backends=backends,
                    engine_dir=engine_dir)
    assert report["results"]["trt"]["passed"], report["results"]["trt"]


@pytest.mark.tensorrt
def test_runtime_runs_numpy_and_torch_alike_and_refuses_bad_shapes(engines):
    from irexport.export.graph_io import GraphIO
    from irexport.runtime import Engine

    engine = Engine(engines())
    feed = sample_inputs(257, batch=2, seq=12, seed=4)
    feed = {**feed, **{n: np.zeros((2, *engine.inputs("prefill")[n]["min"][1:]), np.float32)
                       for n in engine.inputs("prefill") if n.startswith("past")}}
    as_numpy = engine.run("prefill", feed)
    as_torch = engine.run("prefill", {k: torch.from_numpy(v).cuda() for k, v in feed.items()})
    assert isinstance(as_numpy["logits"], np.ndarray) and as_torch["logits"].is_cuda
    np.testing.assert_array_equal(as_numpy["logits"], as_torch["logits"].cpu().numpy())
    step = {"input_ids": as_numpy["logits"][:, -1:].argmax(-1), "attention_mask": np.ones((2, 13), np.int64),
            **GraphIO.of_engine_inputs(engine.inputs("decode")).cache_feed(as_numpy)}
    assert engine.run("decode", step)["logits"].shape == (2, 1, 257)  # the decode profile, same engine
    with pytest.raises(IrexportError, match="outside the engine's profile"):
        engine.run("prefill", {**feed, **sample_inputs(257, batch=2, seq=200)})
    with pytest.raises(IrexportError, match="outside the engine's profile"):
        engine.run("prefill", step)  # a non-empty cache is the decode profile's


@pytest.mark.tensorrt
def test_engine_generation_equals_the_reference(engines, exported):
    from irexport.reference import greedy
    from irexport.runtime import EngineGenerator

    _, model_dir = exported("informed", "compact")
    feed = sample_inputs(257, seed=5)
    ours = greedy(load_model(model_dir), feed["input_ids"], feed["attention_mask"], 6, "compact")
    theirs = EngineGenerator(engines()).greedy(feed["input_ids"], feed["attention_mask"], 6)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.gpu
def test_onnxruntime_cuda_parity_bfloat16(exported):
    """bfloat16 graphs run only on ONNX Runtime's CUDA provider (the CPU provider has no bf16 kernels)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers() or not torch.cuda.is_available():
        pytest.skip("ONNX Runtime's CUDA provider is not available (needs onnxruntime-gpu and a GPU)")
    out, model_dir = exported("informed", "compact", "bfloat16")
    model = load_model(model_dir).to(torch.bfloat16)
    report = parity(out, model, sample_inputs(model.config.vocab_size), new_tokens=4)
    assert report["passed"], report
