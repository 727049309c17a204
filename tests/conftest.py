"""Shared fixtures: tiny seeded random routed models, and the published research layouts written
from them (key names as in the informed-routing, SkipGPT and router-tuning code)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from irexport.cli.main import main as cli_main
from irexport.models.random_init import make_random_model

FAMILY_SETTINGS = {  # id -> (family, extra routing settings)
    "informed": ("informed", {}),
    "skipgpt": ("skipgpt", {}),
    "router_tuning": ("router_tuning", {}),
    "router_tuning_seq": ("router_tuning", {"pooling": "sequence"}),
    "mod": ("mod", {}),
}
CAUSAL = ("informed", "skipgpt", "router_tuning")  # per-token decisions: prefill + decode = full forward
ARCHS = ("llama", "mistral", "qwen2", "qwen3")


def tiny(name: str = "informed", arch: str = "llama", seed: int = 0, **kw):
    family, settings = FAMILY_SETTINGS[name]
    return make_random_model(family, arch, seed=seed, **{**settings, **kw})


def random_ids(batch: int, seq: int, seed: int = 1, vocab: int = 257) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


def left_padding_mask(lengths: list[int], seq: int) -> torch.Tensor:
    mask = torch.zeros(len(lengths), seq, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, seq - n:] = 1
    return mask


def research_state_dict(model, include=("base", "router", "lw"), prefix: str = "") -> dict:
    """The informed-routing / SkipGPT ``torch.save`` layout of ``model`` (optionally a partial dict)."""
    unit_names = {("attention", "router"): "router_attention", ("mlp", "router"): "router_mlp",
                  ("attention", "lff"): "lw_attn", ("mlp", "lff"): "lw_mlp"}
    out = {}
    if "base" in include:
        for key, value in model.base.state_dict().items():
            parts = key.split(".")
            if key.startswith("model.layers."):
                key = ".".join(parts[:3] + ["block"] + parts[3:])
            out[prefix + key] = value.clone()
    for key, value in model.routing.state_dict().items():
        _, layer, unit, part, *rest = key.split(".")
        if ("router" if part == "router" else "lw") in include:
            out[prefix + ".".join(["model.layers", layer, unit_names[unit, part], *rest])] = value.clone()
    return out


def router_tuning_state_dict(model) -> dict:
    """The router-tuning (MindSkip) layout: ``model.layers.{i}.router.weight`` [1, d]."""
    return {f"model.layers.{key.split('.')[1]}.router.weight": value.clone()
            for key, value in model.routing.state_dict().items()}


ROOT = Path(__file__).resolve().parents[1]  # the checkout
PLUGINS = ROOT / "plugins"
RECIPES = ROOT / "engines" / "recipes"


def cmake_build(build_dir: Path, *options) -> Path:
    """Configure and build plugins/ (skips without cmake; a failing build fails the test)."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    configure = subprocess.run(["cmake", "-S", str(PLUGINS), "-B", str(build_dir), *options], capture_output=True, text=True)
    assert configure.returncode == 0, configure.stderr
    build = subprocess.run(["cmake", "--build", str(build_dir), "-j2"], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return build_dir


def tensorrt_headers() -> Path:
    """$TensorRT_ROOT with TensorRT's headers under include/ (.ci/run points it at the public headers in
    ../shared/third_party/tensorrt), else the test skips."""
    root = os.environ.get("TensorRT_ROOT")
    if not root or not (Path(root) / "include" / "NvInferRuntime.h").is_file():
        pytest.skip("TensorRT headers not found: set TensorRT_ROOT (a TensorRT install, or a directory whose include/ "
                    "holds the public TensorRT headers; .ci/run uses ../shared/third_party/tensorrt)")
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed (the plugin library has CUDA kernels)")
    return Path(root)


@pytest.fixture(scope="session")
def plugin_build(tmp_path_factory):
    """plugins/ built against the TensorRT headers: kernels, plugin library, register library, harness."""
    root = tensorrt_headers()
    return cmake_build(tmp_path_factory.mktemp("plugins-trt"), f"-DTensorRT_ROOT={root}")


PROFILE = {"batch": {"min": 1, "opt": 2, "max": 4}, "sequence": {"min": 1, "opt": 16, "max": 128},
           "cache": {"min": 1, "opt": 32, "max": 256}}


def recipe(**overrides):
    from irexport.engine.recipe import parse_recipe

    return parse_recipe({"precision": "fp32", "profile": PROFILE, **overrides}, "test.yaml")


EXPORT_LAYERS = 2  # export time grows with depth; two layers exercise everything


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """exported(name, strategy, dtype) -> (export dir, model dir); each export is made once per session."""
    from irexport.checkpoints import save_model
    from irexport.models.random_init import byte_tokenizer

    root = tmp_path_factory.mktemp("exports")
    cache = {}

    def get(name, strategy="compact", dtype="float32"):
        key = (name, strategy, dtype)
        if key not in cache:
            model_dir = root / f"{name}-model"
            if not model_dir.exists():
                save_model(tiny(name, num_hidden_layers=EXPORT_LAYERS), model_dir, tokenizer=byte_tokenizer())
            out = root / f"{name}-{strategy}-{dtype}"
            assert cli_main(["export", str(model_dir), "-o", str(out), "--strategy", strategy, "--dtype", dtype]) == 0
            cache[key] = (out, model_dir)
        return cache[key]

    return get



@pytest.fixture
def build_dir(exported, tmp_path):
    """An engine directory as irexport build writes it, with stand-in engine bytes: everything runtimes
    check before TensorRT is asked (TensorRT itself never sees these files)."""
    from irexport.engine.profiles import input_shapes
    from irexport.engine.record import engine_record, report_header, write_report
    from irexport.export.graph_io import PHASES
    from irexport.export.manifest import load_manifest

    out, _ = exported("informed")
    manifest = load_manifest(out)
    plugins = tmp_path / "libirexport_plugins.so"
    plugins.write_bytes(b"plugin library v1")
    report = report_header("11.1.0", recipe(), out, manifest, plugins, "tensorrt")
    engines = tmp_path / "engines"
    engines.mkdir()
    path = engines / "model.engine"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    report["engine"] = engine_record(path, out / manifest["graph"]["file"], manifest,
                                     {phase: input_shapes(manifest, recipe(), phase) for phase in PHASES})
    write_report(engines, report)
    return engines, plugins, out


def node_model(name, inputs, **attrs) -> bytes:
    """One routing node (torch tensors as its inputs) and its model-local function, as exports hold them."""
    import onnx

    from irexport.ops.onnx_functions import function_proto
    from irexport.ops.spec import DOMAIN, DOMAIN_OPSET, OPS

    types = {torch.float32: onnx.TensorProto.FLOAT, torch.float16: onnx.TensorProto.FLOAT16,
             torch.int32: onnx.TensorProto.INT32, torch.int64: onnx.TensorProto.INT64}
    spec = OPS[name]
    node = onnx.helper.make_node(name, [p.name for p in spec.inputs], [p.name for p in spec.outputs], domain=DOMAIN,
                                 **attrs, **spec.node_attributes)
    graph = onnx.helper.make_graph(
        [node], "node",
        [onnx.helper.make_tensor_value_info(p.name, types[t.dtype], None) for p, t in zip(spec.inputs, inputs, strict=True)],
        [onnx.ValueInfoProto(name=p.name) for p in spec.outputs])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18),
                                                         onnx.helper.make_opsetid(DOMAIN, DOMAIN_OPSET)],
                                   functions=[function_proto(spec, 18)])
    return model.SerializeToString()


def run_node(name, inputs, library=None, **attrs) -> list:
    """The node in ONNX Runtime: with ``library`` (irexport's kernels) registered its kernel runs, else its
    function body; numpy outputs."""
    import onnxruntime as ort

    from irexport.ops.spec import OPS

    options = ort.SessionOptions()
    if library is not None:
        options.register_custom_ops_library(str(library))
    session = ort.InferenceSession(node_model(name, inputs, **attrs), options, providers=["CPUExecutionProvider"])
    return session.run(None, {p.name: t.numpy() for p, t in zip(OPS[name].inputs, inputs, strict=True)})


@pytest.fixture(scope="session")
def kernels(tmp_path_factory):
    """libirexport_onnxrt.so built from plugins/ against $ONNXRUNTIME_ROOT's C API header (no CUDA needed)."""
    root = os.environ.get("ONNXRUNTIME_ROOT")
    if not root or not (Path(root) / "include" / "onnxruntime_c_api.h").is_file():
        pytest.skip("ONNX Runtime's C API header not found: set ONNXRUNTIME_ROOT (a directory whose include/ holds "
                    "onnxruntime_c_api.h; .ci/run uses ../shared/third_party/onnxruntime)")
    build = cmake_build(tmp_path_factory.mktemp("onnxrt-kernels"), f"-DONNXRUNTIME_ROOT={root}", "-DIRX_WITH_CUDA=OFF")
    return build / "libirexport_onnxrt.so"


@pytest.fixture
def use_kernels(kernels, monkeypatch):
    monkeypatch.setenv("IREXPORT_ONNXRT_KERNELS", str(kernels))
    return kernels


@pytest.fixture(autouse=True)
def no_onnxrt_kernels_unless_asked(monkeypatch):
    """ONNX Runtime sessions run the function bodies unless a test builds and asks for irexport's kernels
    (tests/test_onnxrt_kernels.py): a library left in the checkout's build/ must not change what tests run."""
    monkeypatch.delenv("IREXPORT_ONNXRT_KERNELS", raising=False)
    monkeypatch.setattr("irexport.onnxrt_kernels.REPO_BUILD", Path("/nonexistent/irexport/libirexport_onnxrt.so"))


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""

    def run(*argv):
        code = cli_main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@torch.no_grad()
def logits(model, ids, mask=None, **kw):
    return model(ids, attention_mask=mask, **kw).logits


def pytest_configure(config):
    import tempfile

    from transformers.utils import logging as hf_logging

    # verified weights are remembered in a cache directory: the tests' own, never the user's (CLI children inherit it)
    os.environ["IREXPORT_CACHE_DIR"] = tempfile.mkdtemp(prefix="irexport-test-cache-")
    hf_logging.disable_progress_bar()
