"""Tests that need a GPU or TensorRT. They skip with the reason where those are absent (CPU CI)."""

import pytest
import torch

from irexport.checkpoints import load_model
from irexport.parity.check import parity, sample_inputs


def tensorrt_or_skip():
    try:
        import tensorrt as trt
    except ImportError:
        pytest.skip("TensorRT is not installed (pip's full TensorRT builder cannot be installed on this machine)")
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as e:  # noqa: BLE001 - stub packages fail in many ways
        pytest.skip(f"TensorRT is installed but has no usable builder here: {e}")
    if builder is None:
        pytest.skip("TensorRT could not create a builder (no GPU?)")
    return trt, builder


@pytest.mark.tensorrt
@pytest.mark.parametrize("strategy", ["compact", "masked"])
def test_tensorrt_inlines_the_function_bodies_without_the_plugin_library(exported, strategy):
    """Without irexport's plugin library loaded, TensorRT (>= 10.7) must inline every routing op's
    function body: the network parses and builds, and holds no plugin layer."""
    trt, builder = tensorrt_or_skip()
    out, _ = exported("informed", strategy)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, trt.Logger(trt.Logger.ERROR))
    assert parser.parse_from_file(str(out / "model.onnx")), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    layer_types = {network.get_layer(i).type for i in range(network.num_layers)}
    assert trt.LayerType.PLUGIN_V3 not in layer_types and trt.LayerType.PLUGIN_V2 not in layer_types
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name in ("input_ids", "attention_mask"):
        profile.set_shape(name, (1, 1), (2, 16), (4, 64))
    config.add_optimization_profile(profile)
    assert builder.build_serialized_network(network, config) is not None


@pytest.mark.gpu
def test_onnxruntime_cuda_parity_bfloat16(exported):
    """bfloat16 graphs run only on ONNX Runtime's CUDA provider (the CPU provider has no bf16 kernels)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("ONNX Runtime's CUDA provider is not available (needs onnxruntime-gpu and a GPU)")
    out, model_dir = exported("informed", "compact", "bfloat16")
    model = load_model(model_dir).to(torch.bfloat16)
    report = parity(out, model, sample_inputs(model.config.vocab_size), new_tokens=4)
    assert report["passed"], report
