"""A file's sha256, remembered across processes while the file provably has not changed.

Hashing runs at about 1.7 GB/s here (measured: docs/verified-weights.md), so a multi-GB ``weights.data`` or engine
costs seconds per use. A hash is remembered under the file's identity: device, inode, size, modification
time and status-change time (ctime). Any write to the file, and any ``touch`` or ``os.utime`` that puts an
old modification time back, sets its ctime to the current time, and no user call sets ctime to a chosen
value; a file replaced by another gets a new inode. The record lives in the user's cache directory
(``$IREXPORT_CACHE_DIR``, else ``$XDG_CACHE_HOME/irexport``, else ``~/.cache/irexport``), not beside the
file, so editing an export cannot forge it. What this trusts: the filesystem keeps ctime (local Linux
filesystems do; check a network or FUSE mount), nobody writes the disk below the filesystem, and nobody
who can write your cache directory is hostile (they could as well edit your files).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

from .errors import IrexportError
from .schema import SHA256, Int, List, Obj, validate

CACHE_FILE = "sha256.json"
MAX_ENTRIES = 256  # the most recently verified files; older ones are hashed again when next used
BLOCK = 8 << 20
SETTLED_NS = 2_000_000_000  # a file last changed this long before it is hashed can be remembered

_ENTRY = Obj({"identity": List(Int(), min_len=5, max_len=5), "sha256": SHA256})
_MEMORY: dict[str, dict] = {}  # this process's verified files, also when the cache directory is not writable


def cache_dir() -> Path | None:
    """Where verified files are remembered; None where there is no such place (no home directory)."""
    explicit = os.environ.get("IREXPORT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    try:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "irexport"
    except RuntimeError:  # no $HOME and no passwd entry
        return None


def identity(stat: os.stat_result) -> list[int]:
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


def _read_cache() -> dict:
    """The remembered hashes; a missing, unreadable or malformed cache is an empty one, and a malformed entry
    is left out (it is only a cache)."""
    directory = cache_dir()
    try:
        files = json.loads((directory / CACHE_FILE).read_bytes())["files"] if directory else {}
        entries = files.items() if isinstance(files, dict) else ()
    except (OSError, ValueError, RecursionError, KeyError, TypeError):
        return {}
    remembered = {}
    for path, entry in entries:
        try:
            remembered[path] = validate(entry, _ENTRY, CACHE_FILE)
        except IrexportError:
            continue
    return remembered


def _remember(path: str, entry: dict) -> None:
    _MEMORY[path] = entry
    directory = cache_dir()
    if directory is None:
        return
    files = _read_cache()
    files.pop(path, None)
    files[path] = entry  # newest last: the oldest are dropped first
    files = dict(list(files.items())[-MAX_ENTRIES:])
    tmp = directory / f".{CACHE_FILE}.{os.getpid()}.partial"
    try:  # a cache that cannot be written (read-only home) only costs a hash next time
        directory.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"files": files}, indent=1) + "\n")
        os.replace(tmp, directory / CACHE_FILE)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _remembered(path: str, stat: os.stat_result) -> str | None:
    """The hash remembered for ``path`` at this identity: this process's first, then the cache's."""
    entry = _MEMORY.get(path)
    if entry is None or entry["identity"] != identity(stat):
        entry = _read_cache().get(path)
    return entry["sha256"] if entry is not None and entry["identity"] == identity(stat) else None


def sha256(path) -> str:
    """The sha256 of ``path`` (hex), from the cache while the file's identity is unchanged."""
    path = Path(path).resolve()
    key = str(path)
    now = time.time_ns()
    stat = os.stat(path)
    remembered = _remembered(key, stat)
    if remembered is not None:
        return remembered
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
        after = os.fstat(f.fileno())
    # not remembered: a file that changed while it was read, or whose last change was so shortly before it was
    # hashed that another change in the same clock tick (timestamps are coarse: a few ms, seconds on some
    # filesystems) would keep its identity
    if identity(after) == identity(stat) and now - stat.st_ctime_ns > SETTLED_NS:
        _remember(key, {"identity": identity(stat), "sha256": digest.hexdigest()})
    return digest.hexdigest()
