"""The style the code already follows, checked on every run: ruff over the Python (pyproject.toml's
[tool.ruff]) and clang-format over the C++ and CUDA of plugins/ and engines/ (.clang-format). Both are pinned
in the test extra: a formatter's output changes between releases."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPP = sorted(p for folder in ("plugins", "engines") for p in (ROOT / folder).rglob("*")
             if p.suffix in (".cpp", ".h", ".cu", ".cuh"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' installs it)")
    return path


def test_python_passes_ruff():
    result = subprocess.run([tool("ruff"), "check", "irexport", "tests", "benchmarks"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_cpp_is_clang_formatted():
    assert len(CPP) > 20, "the C++ sources were not found"
    result = subprocess.run([tool("clang-format"), "--dry-run", "--Werror", *map(str, CPP)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, "run clang-format -i on:\n" + result.stderr[-4000:]
