"""Packaging: a wheel install (not the editable checkout) carries what its commands need beyond the Python code.

The wheel is built from a copy of the sources (pip wheel --no-build-isolation --no-index: no network, the
checkout's build/ and egg-info untouched), installed with --no-deps --no-index into a fresh venv that sees the test
interpreter's site-packages (torch, onnx, ... come from here, nothing is downloaded), and run from a directory outside
the checkout: `irexport --help`, a shipped recipe by name, and `irexport plugins build` (one CUDA architecture,
about a minute), whose libraries must land in the user's data directory (not site-packages, not the current
directory), where the finders look.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import tensorrt_headers

from irexport.errors import IrexportError

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "irexport", "plugins", "engines")  # what a wheel build reads


def shipped_files() -> dict[str, Path]:
    """Wheel path -> checkout file: every file of plugins/ and every recipe."""
    plugins = {f"irexport/_data/plugins/{p.relative_to(ROOT / 'plugins').as_posix()}": p
               for p in (ROOT / "plugins").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    recipes = {f"irexport/_data/recipes/{p.name}": p for p in (ROOT / "engines" / "recipes").glob("*.yaml")}
    return {**plugins, **recipes}


def run(argv, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, argv))}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def site_files(venv: Path) -> set[str]:
    return {str(p.relative_to(venv)) for p in venv.rglob("*") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory):
    """(wheel, venv, env, workdir): the wheel built from a copy of the sources, installed into a fresh venv."""
    pytest.importorskip("setuptools", minversion="70.1", reason="the wheel is built without build isolation (no network): "
                        "setuptools>=70.1 must be installed (the test extra has it)")
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=ignore)  # irexport/_data's symlinks stay links
        elif path.is_file():
            shutil.copy2(path, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", tmp / "dist",
         src], cwd=tmp, env=os.environ)
    wheels = sorted((tmp / "dist").glob("irexport-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp, env=os.environ)
    # the venv sees the packages the interpreter running the tests sees (a venv's own, when pytest runs in one, which
    # --system-site-packages would not show, its base's and the user's): torch, onnx, and pip, which installs into the
    # venv; a path in a .pth is added without running that directory's .pth files, so the checkout's editable install
    # stays out
    packages = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")} | set(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        packages.add(site.getusersitepackages())
    venv_site = Path(run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         cwd=tmp, env=os.environ).stdout.strip())
    (venv_site / "test-interpreter-packages.pth").write_text("".join(f"{p}\n" for p in sorted(packages)))
    run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheels[0]], cwd=tmp, env=os.environ)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "IREXPORT_PLUGINS", "IREXPORT_ONNXRT_KERNELS")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               XDG_DATA_HOME=str(tmp / "data"))  # where a wheel install's plugin build goes: not this user's home
    work = tmp / "work"  # outside the checkout: nothing there for a checkout-relative path to find
    work.mkdir()
    return wheels[0], venv, env, work


def test_checkout_reaches_the_top_level_folders():
    """Editable / checkout: irexport/_data's symlinks lead to plugins/ and engines/recipes/ themselves."""
    from irexport.engine.recipe import load_recipe
    from irexport.resources import checkout, plugin_build_dir, plugin_sources, recipes_dir

    assert (ROOT / "irexport" / "_data" / "plugins").resolve() == ROOT / "plugins"
    assert (ROOT / "irexport" / "_data" / "recipes").resolve() == ROOT / "engines" / "recipes"
    assert checkout() == ROOT
    assert plugin_sources() == ROOT / "plugins" and recipes_dir() == ROOT / "engines" / "recipes"
    assert plugin_build_dir() == ROOT / "build" / "plugins"
    assert load_recipe("demo") == load_recipe(ROOT / "engines" / "recipes" / "demo.yaml")
    # only a bare name is a shipped recipe's: a path that names no file stays a path, and is not found
    for path in ("./demo.yaml", "demo.yaml", "recipes/demo"):
        with pytest.raises(IrexportError, match="recipe not found"):
            load_recipe(path)


def test_wheel_carries_plugin_sources_and_recipes(wheel_install):
    """The wheel holds every plugin source and recipe; installed, irexport runs from the venv, not the checkout."""
    wheel, venv, env, work = wheel_install
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        missing = sorted(set(shipped_files()) - names)
        assert not missing, f"not in {wheel.name}: {missing}"
        for name, path in shipped_files().items():
            assert z.read(name) == path.read_bytes(), f"{name} differs from {path}"
    assert not [n for n in names if n.startswith("irexport/_data/") and not n.startswith(("irexport/_data/plugins/",
                                                                                            "irexport/_data/recipes/"))]

    python = venv / "bin" / "python"
    probe = ("import irexport, irexport.resources as r\n"
             "from irexport.engine.recipe import find_recipe, load_recipe\n"
             "print(irexport.__file__, r.checkout(), r.plugin_sources(), r.recipes_dir(), r.plugin_build_dir(),\n"
             "      find_recipe('demo'), load_recipe('demo').name, sep='\\n')")
    lines = run([python, "-c", probe], cwd=work, env=env).stdout.splitlines()
    site = venv.resolve()
    module, root, sources, recipes, build, demo, name = lines
    assert Path(module).resolve().is_relative_to(site), f"irexport imported from {module}, not the venv {site}"
    assert root == "None"
    assert Path(sources).is_relative_to(site) and (Path(sources) / "CMakeLists.txt").is_file()
    assert Path(recipes).is_relative_to(site) and Path(demo) == Path(recipes) / "demo.yaml" and name == "demo"
    assert Path(build) == Path(env["XDG_DATA_HOME"]) / "irexport" / "plugins"  # never the current directory
    assert "plugins" in run([venv / "bin" / "irexport", "--help"], cwd=work, env=env).stdout


def test_wheel_install_builds_the_plugins(wheel_install):
    """`irexport plugins build` from the wheel, outside the checkout: the libraries land in the user's data
    directory (not in site-packages, not in the current directory), where the plugin library's and the ONNX Runtime
    kernels' finders find them."""
    wheel, venv, env, work = wheel_install
    if shutil.which("cmake", path=env["PATH"]) is None:
        pytest.skip("cmake is not installed")
    tensorrt_headers()  # skips, saying why, without TensorRT's headers or nvcc
    onnxruntime = os.environ.get("ONNXRUNTIME_ROOT")
    with_ort = bool(onnxruntime) and (Path(onnxruntime) / "include" / "onnxruntime_c_api.h").is_file()
    before = site_files(venv)
    run([venv / "bin" / "irexport", "plugins", "build", "--cuda-archs", "90"], cwd=work, env=env, timeout=600)
    built = Path(env["XDG_DATA_HOME"]) / "irexport" / "plugins"
    assert not (work / "build").exists()
    expected = ["libirexport_host.so", "libirexport_kernels.so", "libirexport_plugins.so", "libirexport_plugins_register.so",
                "irexport-plugin-harness"] + (["libirexport_onnxrt.so"] if with_ort else [])
    assert [f for f in expected if not (built / f).is_file()] == [], sorted(p.name for p in built.iterdir())
    assert site_files(venv) == before, "plugins build wrote into the venv"

    probe = ("from irexport.engine.loading import find_plugin_library\n"
             "from irexport.onnxrt_kernels import find_library\n"
             "print(find_plugin_library(), find_library(), sep='\\n')")
    plugins, kernels = run([venv / "bin" / "python", "-c", probe], cwd=work, env=env).stdout.splitlines()
    assert Path(plugins) == (built / "libirexport_plugins.so").resolve()
    if with_ort:
        assert Path(kernels) == (built / "libirexport_onnxrt.so").resolve()
