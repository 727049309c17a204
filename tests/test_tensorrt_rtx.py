"""A real TensorRT parser and builder on every CI run: TensorRT-RTX (``pip install tensorrt-rtx-cu13``) parses
ONNX with TensorRT's own parser and builds engines on a CPU (its kernels are compiled just in time on an RTX
GPU). Every family's masked export, float32 and float16, builds without the plugin library, every routing
node inlined from its function body, with irexport's two optimization profiles (prefill, decode).

Each build runs in a child process, where Polygraphy is told to use TensorRT-RTX before it imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import PROFILE

pytestmark = pytest.mark.tensorrt_rtx

BUILD = """
import json, sys
import tensorrt_rtx as trt
from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile
from irexport.engine.profiles import input_shapes
from irexport.engine.recipe import parse_recipe
from irexport.export.manifest import PHASES, load_manifest

export, recipe = sys.argv[1], parse_recipe(json.loads(sys.argv[2]), "test.yaml")
manifest = load_manifest(export)
builder, network, parser = NetworkFromOnnxPath(f"{export}/model.onnx", strongly_typed=True)()
layers = [network.get_layer(i) for i in range(network.num_layers)]
profiles = []
for phase in PHASES:
    profile = Profile()
    for name, (lo, opt, hi) in input_shapes(manifest, recipe, phase).items():
        profile.add(name, min=lo, opt=opt, max=hi)
    profiles.append(profile)
engine = EngineBytesFromNetwork((builder, network, parser), CreateConfig(profiles=profiles))()
print(json.dumps({"layers": len(layers), "plugin_layers": sum(l.type == trt.LayerType.PLUGIN_V3 for l in layers),
                  "engine_bytes": engine.nbytes}))
"""


def _tensorrt_rtx():
    try:
        import tensorrt_rtx
    except Exception as e:  # noqa: BLE001 - ImportError, or a library that fails to load
        pytest.skip(f"TensorRT-RTX is not installed (pip install tensorrt-rtx-cu13): {type(e).__name__}: {e}")
    return tensorrt_rtx


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("name", ["informed", "skipgpt", "router_tuning", "mod"])
def test_masked_exports_build_without_plugins(name, dtype, exported):
    _tensorrt_rtx()
    out, _ = exported(name, "masked", dtype)
    spec = {"precision": {"float32": "fp32", "float16": "fp16"}[dtype], "profile": PROFILE}
    child = subprocess.run([sys.executable, "-c", BUILD, str(out), json.dumps(spec)], capture_output=True, text=True,
                           env={**os.environ, "POLYGRAPHY_USE_TENSORRT_RTX": "1"})
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    built = json.loads(child.stdout.strip().splitlines()[-1])
    assert built["plugin_layers"] == 0 and built["layers"] > 0 and built["engine_bytes"] > 0, built
