"""Where the files irexport's commands need beyond its Python code are: the plugin sources (``plugins/``, which
``irexport plugins build`` compiles), the shipped engine recipes (``engines/recipes/``), and the directory the
plugin build writes to and the library finders look in.

The package reaches the sources through ``irexport/_data/``: in a checkout its two entries are symlinks to the
top-level folders (``_data/plugins -> plugins/``, ``_data/recipes -> engines/recipes/``), and a wheel carries
copies of them as package data (pyproject.toml, ``[tool.setuptools.package-data]``), so the same paths serve an
editable install and a wheel install. Should the symlinks be lost (a copy that does not keep them), the top-level
folders of the checkout are used.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DATA = PACKAGE / "_data"


def checkout() -> Path | None:
    """The repository irexport runs from (an editable install or PYTHONPATH), or None when installed from a wheel."""
    root = PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "plugins" / "CMakeLists.txt").is_file() else None


def _data(name: str, in_checkout: str) -> Path:
    """Resolved: in a checkout the top-level folder itself (a CMake build directory keeps the source path it was
    configured with, so plugins/ and _data/plugins must not both be handed to it)."""
    packaged = DATA / name
    root = checkout()
    if packaged.is_dir() or root is None:
        return packaged.resolve()
    return root / in_checkout


def plugin_sources() -> Path:
    """The CMake project of the routing kernels, TensorRT plugins and ONNX Runtime kernels (CMakeLists.txt)."""
    return _data("plugins", "plugins")


def recipes_dir() -> Path:
    """The shipped engine recipes (``*.yaml``), which ``irexport build --recipe NAME`` finds by name."""
    return _data("recipes", "engines/recipes")


def plugin_build_dir() -> Path:
    """Where ``irexport plugins build`` writes by default, and where irexport looks for the libraries it built:
    ``build/plugins`` of the checkout, or, installed from a wheel, the user's data directory
    (``$XDG_DATA_HOME/irexport/plugins``, by default ``~/.local/share/irexport/plugins``). Never site-packages
    (read-only, shared), and never the current directory: libraries found there would load whatever a directory
    one happens to run irexport in holds. Absolute."""
    root = checkout()
    if root is not None:
        return root / "build" / "plugins"
    data = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(data):  # unset, or relative (which the XDG spec says to ignore)
        try:
            data = Path.home() / ".local" / "share"
        except RuntimeError:  # no $HOME and no passwd entry: nowhere of the user's own
            return Path(tempfile.gettempdir()) / f"irexport-{os.getuid()}" / "plugins"
    return Path(data) / "irexport" / "plugins"
