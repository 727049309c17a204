"""Reading the JSON records irexport writes (export manifests, build reports), with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import IrexportError


def read_json_record(path: Path, absent: str, required, stale: str) -> dict:
    """The record at ``path``; ``absent`` is the error when there is none, each of ``required`` is a key
    path (a tuple) that must be present, and ``stale`` says how to refresh a record missing one."""
    if not path.is_file():
        raise IrexportError(absent)
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise IrexportError(f"{path}: not readable JSON ({e})") from None
    for keys in required:
        node = record
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                raise IrexportError(f"{path}: missing key {'.'.join(keys)!r} ({stale})")
            node = node[key]
    return record
