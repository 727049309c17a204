"""Write outputs so that an interrupted or failed run never leaves a half-written file behind.

Every output is written under a temporary name in the destination's own directory (so the final
rename stays on one filesystem and is atomic) and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import IrexportError


def _publishable(tmp: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create private (0600/0700) paths, and so do some writers inside a directory (safetensors
    writes through a temporary file): give everything the modes a plain create would, as the umask says."""
    umask = os.umask(0)
    os.umask(umask)
    paths = [tmp, *tmp.rglob("*")] if directory else [tmp]
    for path in paths:
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _prepare_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise IrexportError(f"{path.parent}: cannot create the output directory ({e.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise IrexportError(f"{path.parent}: the output directory is not writable")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    _prepare_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as e:
        raise IrexportError(f"{path}: cannot write the output there ({e.strerror})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        _publishable(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _replaceable(path: Path, inputs) -> Path:
    """``path`` resolved; never the current directory or one above it, nor an input or a directory holding one."""
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise IrexportError(f"{path}: is the current directory or one above it; name a new output directory")
    for given in inputs:
        source = Path(given).resolve()
        if source == resolved or resolved in source.parents:
            raise IrexportError(f"{path}: would replace the input {given}; write the output elsewhere")
    return resolved


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False, inputs=()):
    """Yield a temporary directory next to ``path``; it replaces ``path`` if the block succeeds.

    An existing non-empty ``path`` is an error unless ``overwrite``; it is only removed once the new
    directory is complete. ``path`` may not be (or hold) one of ``inputs``.
    """
    path = _replaceable(Path(path), inputs)
    if path.exists() and not path.is_dir():
        raise IrexportError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise IrexportError(f"{path}: directory exists and is not empty (pass --overwrite to replace it)")
    _prepare_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    except OSError as e:
        raise IrexportError(f"{path}: cannot write the output there ({e.strerror})") from None
    try:
        yield tmp
        _publishable(tmp, directory=True)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
