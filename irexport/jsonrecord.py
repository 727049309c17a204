"""Reading JSON records (irexport's own, and users' JSON configs), checked against a schema, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import IrexportError
from .schema import Spec, validate

MAX_BYTES = 64 << 20  # records are small; a larger file is not one of them (and is not read into memory)


def read_json(path: Path, absent: str | None = None):
    """The JSON value in ``path``; ``absent`` is the error when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise IrexportError(absent or f"{path}: not found")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise IrexportError(f"{path}: {path.stat().st_size} bytes, too large for a JSON record")
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise IrexportError(f"{path}: not valid JSON ({str(e).splitlines()[0][:120]})") from None
    except OSError as e:
        raise IrexportError(f"{path}: cannot read ({e.strerror})") from None


def read_json_record(path: Path, absent: str, schema: Spec, stale: str) -> dict:
    """A record irexport wrote, checked against ``schema``; ``stale`` says how to write a good one."""
    record = read_json(path, absent)
    try:
        return validate(record, schema, str(path))
    except IrexportError as e:
        raise IrexportError(f"{e} ({stale})") from None
