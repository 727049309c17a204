"""A real TensorRT parser and builder on every CI run: TensorRT-RTX (``pip install tensorrt-rtx-cu13``) parses
ONNX with TensorRT's own parser and builds engines on a CPU (its kernels are compiled just in time on an RTX
GPU). Through ``irexport build --target tensorrt-rtx``, every family x strategy x float32 / float16 / bfloat16 builds with
irexport's plugin library (every routing node a plugin layer), and every masked export without it (every
routing node inlined); a compact export without it is refused in one line.

Each build is an ``irexport`` child process, as users run it: Polygraphy picks its TensorRT once per process.
Running the engines needs an RTX GPU; here nothing runs them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import PROFILE

from irexport.engine.record import REPORT
from irexport.ops.spec import DOMAIN

pytestmark = pytest.mark.tensorrt_rtx

FAMILIES = ("informed", "skipgpt", "router_tuning", "mod")


@pytest.fixture(scope="module")
def rtx():
    try:
        import tensorrt_rtx
    except Exception as e:  # noqa: BLE001 - ImportError, or a library that fails to load
        pytest.skip(f"TensorRT-RTX is not installed (pip install tensorrt-rtx-cu13): {type(e).__name__}: {e}")
    return tensorrt_rtx


@pytest.fixture(scope="module")
def recipes(tmp_path_factory):
    """{dtype: recipe path}: the CI profile, no timing cache (TensorRT-RTX's build times no tactics)."""
    root = tmp_path_factory.mktemp("rtx-recipes")
    paths = {}
    for dtype, precision in (("float32", "fp32"), ("float16", "fp16"), ("bfloat16", "bf16")):
        paths[dtype] = root / f"rtx-{precision}.yaml"
        paths[dtype].write_text(json.dumps({"precision": precision, "profile": PROFILE, "target": "tensorrt-rtx"}))
    return paths


def irexport(*argv):
    """``irexport ARGV`` in a child process: (exit code, stdout, stderr)."""
    child = subprocess.run([sys.executable, "-m", "irexport.cli.main", *map(str, argv)], capture_output=True, text=True)
    return child.returncode, child.stdout, child.stderr


def routing_ops(export) -> dict:
    model = onnx.load(str(export / "model.onnx"), load_external_data=False)
    nodes = [n.op_type for n in model.graph.node if n.domain == DOMAIN]
    return {op: nodes.count(op) for op in sorted(set(nodes))}


def built(out, stdout, stderr) -> dict:
    assert "Traceback" not in stderr, stderr[-3000:]
    # the parser names every node apart: no inlined copy repeats another's node names
    assert "already exists" not in stdout + stderr, (stdout + stderr)[-3000:]
    return json.loads((out / REPORT).read_text())


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("strategy", ["compact", "masked"])
@pytest.mark.parametrize("name", FAMILIES)
def test_every_export_builds_with_the_plugin_library(name, strategy, dtype, exported, plugin_build, recipes, rtx,
                                                     tmp_path):
    export, _ = exported(name, strategy, dtype)
    out = tmp_path / "engine"
    code, stdout, stderr = irexport("build", export, "--recipe", recipes[dtype], "-o", out,
                                    "--plugins", plugin_build / "libirexport_plugins.so")
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    report = built(out, stdout, stderr)
    assert report["target"] == "tensorrt-rtx" and report["tensorrt_version"] == rtx.__version__
    engine = report["engine"]
    ops = routing_ops(export)
    assert engine["routing"]["plugins"] == ops and engine["routing"]["inlined"] == {}
    assert engine["plugin_layers"] == sum(ops.values()) and engine["bytes"] > 0
    # compact's index ops declare size tensors: their shapes depend on the data, masked's never do
    assert engine["data_dependent_shapes"] == (strategy == "compact")
    assert report["compute_capabilities"] is None  # TensorRT-RTX's default set of RTX GPUs
    assert "TensorRT-RTX" in stderr and "timing cache" not in stderr  # the progress line names the target


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("name", FAMILIES)
def test_masked_exports_build_without_plugins(name, dtype, exported, recipes, rtx, tmp_path):
    export, _ = exported(name, "masked", dtype)
    out = tmp_path / "engine"
    code, stdout, stderr = irexport("build", export, "--recipe", recipes[dtype], "-o", out, "--no-plugins")
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    engine = built(out, stdout, stderr)["engine"]
    assert engine["routing"]["inlined"] == routing_ops(export) and engine["routing"]["plugins"] == {}
    assert engine["plugin_layers"] == 0 and not engine["data_dependent_shapes"]


def test_compact_without_plugins_is_refused(exported, recipes, rtx, tmp_path):
    """Its parser would import the bodies' NonZero as a NonZero plugin, which TensorRT-RTX does not ship."""
    export, _ = exported("informed", "compact")
    code, stdout, stderr = irexport("build", export, "--recipe", recipes["float32"], "-o", tmp_path / "engine",
                                    "--no-plugins")
    assert code == 2 and stdout == "" and stderr.count("\n") == 1, stderr
    assert "only with irexport's plugin library" in stderr and "--strategy masked" in stderr
    assert not (tmp_path / "engine").exists()


REGISTRY = """
import json, sys
import numpy as np
import tensorrt_rtx as trt

registry = trt.get_plugin_registry()
assert registry.load_library(sys.argv[1]) is not None
probes = json.loads(sys.argv[2])  # {op: {field: [values]}}
seen = {}
for creator in registry.all_creators:
    if creator.plugin_namespace != "irexport":
        continue
    accepted = {}
    for field, values in probes.get(creator.name, {}).items():
        accepted[field] = []
        for value in values:
            fields = trt.PluginFieldCollection([trt.PluginField(field, np.array([value], np.float32),
                                                                trt.PluginFieldType.FLOAT32)])
            accepted[field].append(creator.create_plugin("probe", fields, trt.TensorRTPhase.BUILD) is not None)
    seen[creator.name] = {"version": creator.plugin_version, "interface": creator.interface_info.kind,
                          "fields": [[f.name, str(f.type)] for f in creator.field_names], "accepted": accepted}
print(json.dumps(seen))
"""


def test_the_built_library_registers_what_the_op_descriptions_say(plugin_build, rtx):
    """Read back through a real TensorRT registry (TensorRT-RTX's): one V3 creator per op under the plugins'
    namespace, with the op's version and its one float32 field, which accepts exactly the op's range."""
    from irexport.ops.spec import OPS, PLUGIN_NAMESPACE

    assert PLUGIN_NAMESPACE == "irexport"
    probes, expected = {}, {}
    for name, spec in OPS.items():
        for attr in spec.attributes:
            below, above = np.nextafter(np.float32(attr.low), np.float32(-1)), np.nextafter(np.float32(attr.high),
                                                                                       np.float32(2))
            values = [float(v) for v in (below, attr.low, (attr.low + attr.high) / 2, attr.high, above)]
            probes.setdefault(name, {})[attr.name] = values
            expected.setdefault(name, {})[attr.name] = [attr.accepts(v) for v in values]
    child = subprocess.run([sys.executable, "-c", REGISTRY, str(plugin_build / "libirexport_plugins.so"),
                            json.dumps(probes)], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr[-3000:]
    seen = json.loads(child.stdout.strip().splitlines()[-1])
    assert set(seen) == set(OPS)
    for name, spec in OPS.items():
        assert seen[name]["version"] == spec.plugin_version and seen[name]["interface"] == "PLUGIN CREATOR_V3ONE"
        assert seen[name]["fields"] == [[a.name, "PluginFieldType.FLOAT32"] for a in spec.attributes], name
        assert seen[name]["accepted"] == expected.get(name, {}), name
    assert expected["RouteTopK"]["capacity"] == [False, False, True, True, False]  # (0, 1]: the probes can fail


def test_recipe_settings_are_checked_against_the_target(exported, recipes, rtx, tmp_path):
    export, _ = exported("informed", "masked")
    recipe = json.loads(recipes["float32"].read_text())
    path = tmp_path / "recipe.yaml"
    untargeted = {k: v for k, v in recipe.items() if k != "target"}
    for settings, argv, message in (
            ({**recipe, "version_compatible": True}, (), "version_compatible is a TensorRT setting"),
            ({**recipe, "target": "tensorrt", "compute_capabilities": ["8.6"]}, (), "TensorRT builds for the GPU it runs on"),
            ({**untargeted, "compute_capabilities": ["8.6"]}, ("--target", "tensorrt"), "and this build targets TensorRT"),
            ({**recipe, "compute_capabilities": ["7.5", "8.6"]}, (), "7.5 (Turing) takes float16 engines only")):
        path.write_text(json.dumps(settings))
        code, stdout, stderr = irexport("build", export, "--recipe", path, "-o", tmp_path / "engine", "--no-plugins",
                                        *argv)
        assert code == 2 and stderr.count("\n") == 1 and message in stderr, stderr
        assert not (tmp_path / "engine").exists()
    # compute capabilities name TensorRT-RTX's GPUs: a recipe with them and no target builds for it
    path.write_text(json.dumps({**untargeted, "compute_capabilities": [8.6, "12.0"]}))
    code, stdout, stderr = irexport("build", export, "--recipe", path, "-o", tmp_path / "engine", "--no-plugins")
    assert code == 0, stderr[-3000:]
    report = json.loads((tmp_path / "engine" / REPORT).read_text())
    assert report["target"] == "tensorrt-rtx" and report["compute_capabilities"] == ["8.6", "12.0"]
    assert "RTX compute capabilities 8.6, 12.0" in stderr


def test_polygraphy_follows_the_target_after_its_other_modules_were_imported(rtx):
    """Polygraphy's comparator imports its TensorRT datatype module, which binds a TensorRT module when imported;
    pointing Polygraphy at TensorRT-RTX afterwards rebinds it (TrtRunner converts the engine's dtypes with it)."""
    code = ("import polygraphy.comparator, tensorrt_rtx\n"
            "from irexport.engine.targets import require_target\n"
            "require_target('tensorrt-rtx')\n"
            "from polygraphy.datatype import DataType\n"
            "print(DataType.from_dtype(tensorrt_rtx.float32, source_module='tensorrt') == DataType.FLOAT32)\n")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == 0 and child.stdout.strip() == "True", child.stdout + child.stderr


def test_a_plugin_error_reaches_the_user_through_tensorrt_rtx(exported, plugin_build, recipes, rtx, tmp_path):
    """The library's creator checks its field and logs through TensorRT-RTX's own logger (the ILoggerFinder it
    was handed), and the build ends in one line, exit 3 (TensorRT failed on an export irexport accepted: here
    with --no-verify): the interfaces match, not by accident."""
    export = tmp_path / "export"
    shutil.copytree(exported("mod", "compact")[0], export)
    model = onnx.load(str(export / "model.onnx"), load_external_data=False)
    topk = next(n for n in model.graph.node if n.op_type == "RouteTopK")
    next(a for a in topk.attribute if a.name == "capacity").f = 2.0
    onnx.save(model, str(export / "model.onnx"))
    code, stdout, stderr = irexport("build", export, "--recipe", recipes["float32"], "-o", tmp_path / "engine",
                                    "--plugins", plugin_build / "libirexport_plugins.so", "--no-verify")
    assert code == 3 and "Traceback" not in stderr, stderr[-3000:]
    assert "field 'capacity' = 2.000000 is out of range" in stdout + stderr
    assert stderr.strip().splitlines()[-1].startswith("irexport: error:") and "could not build" in stderr
    assert not (tmp_path / "engine").exists()


def test_the_parser_finds_tensorrt_rtx_by_the_name_it_asks_for(exported, plugin_build, recipes, rtx, tmp_path):
    """The wheel ships libtensorrt_rtx.so.1 only; the parser dlopens libtensorrt_rtx.so to import a plugin and
    aborts the process when that fails. irexport links the name once (here: after a broken link)."""
    import os

    from irexport.engine.targets import _rtx_library_dir

    libs = _rtx_library_dir()
    if libs is None or not os.access(libs, os.W_OK):
        pytest.skip(f"TensorRT-RTX's libraries are not the wheel's writable layout here ({libs})")
    link = libs / "libtensorrt_rtx.so"
    if link.exists() and not link.is_symlink():
        pytest.skip(f"{link} is a file here (not the wheel's layout): nothing for irexport to link")
    export, _ = exported("router_tuning", "masked")
    link.unlink(missing_ok=True)
    link.symlink_to("libtensorrt_rtx.so.0-missing")  # dangling: the parser's dlopen would fail
    try:
        code, stdout, stderr = irexport("build", export, "--recipe", recipes["float32"], "-o", tmp_path / "engine",
                                        "--plugins", plugin_build / "libirexport_plugins.so")
    finally:
        if not link.exists():  # never leave the install broken
            link.unlink(missing_ok=True)
            link.symlink_to("libtensorrt_rtx.so.1")
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    assert f"linked {link} -> libtensorrt_rtx.so.1" in stderr
    assert link.resolve().name == "libtensorrt_rtx.so.1"


def test_an_unwritable_install_is_one_line_saying_what_to_run(monkeypatch, tmp_path):
    """Where the link cannot be made (a read-only install), the user gets the command, never the parser's abort."""
    import irexport.engine.targets as targets

    (tmp_path / "libtensorrt_rtx.so.1").write_bytes(b"")
    monkeypatch.setattr(targets, "_rtx_library_dir", lambda: tmp_path)

    def refuse(*_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(targets.os, "replace", refuse)
    with pytest.raises(targets.IrexportError, match=rf"run once: ln -sfn libtensorrt_rtx.so.1 {tmp_path}/libtensorrt_rtx.so"):
        targets.let_rtx_parser_load_plugins()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["libtensorrt_rtx.so.1"]  # nothing half-made left behind


@pytest.fixture(scope="module")
def rtx_engine(exported, plugin_build, recipes, rtx, tmp_path_factory):
    """A TensorRT-RTX engine of the informed compact export, with the plugin library."""
    export, _ = exported("informed", "compact")
    out = tmp_path_factory.mktemp("rtx-engine") / "engine"
    code, stdout, stderr = irexport("build", export, "--recipe", recipes["float32"], "-o", out,
                                    "--plugins", plugin_build / "libirexport_plugins.so")
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    return export, out


def rtx_gpu() -> str | None:
    """The name of an RTX-class GPU torch sees (TensorRT-RTX's targets: compute capability 7.5 to 12.x, not the
    data-centre 9.0 / 10.0), else None."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    from irexport.engine.recipe import COMPUTE_CAPABILITIES

    return torch.cuda.get_device_name() if f"{major}.{minor}" in COMPUTE_CAPABILITIES else None


def test_rtx_engines_are_checked_then_need_a_gpu(rtx_engine, tmp_path):
    """Here (no GPU) the runtimes check the engine against its record, then stop in one line, exit 2."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the engine runs instead (test_rtx_engines_run_on_an_rtx_gpu)")
    export, engine = rtx_engine
    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([[1, 2, 3]], np.int64))
    for argv in (("generate", export, "--engine", engine, "--input-ids", ids),
                 ("parity", export, "--backends", "onnxrt,trt", "--engine", engine, "--new-tokens", "1")):
        code, _, stderr = irexport(*argv)
        assert code == 2 and "Traceback" not in stderr, stderr[-3000:]
        assert stderr.strip().splitlines()[-1] == ("irexport: error: TensorRT-RTX engines run on a CUDA GPU, and "
                                                   "torch sees none (a CUDA build of torch is needed)")


@pytest.mark.gpu
def test_rtx_engines_run_on_an_rtx_gpu(rtx_engine):
    """An RTX GPU compiles the engine's kernels when it loads it; parity against the reference then holds."""
    if rtx_gpu() is None:
        pytest.skip("needs an RTX GPU (TensorRT-RTX's targets: compute capability 7.5, 8.x, 12.x), none here")
    export, engine = rtx_engine
    code, stdout, stderr = irexport("parity", export, "--backends", "torch,onnxrt,trt", "--engine", engine)
    assert code == 0, stdout[-3000:] + stderr[-3000:]
