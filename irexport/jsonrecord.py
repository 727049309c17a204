"""Reading JSON records (irexport's own, and users' JSON configs), checked against a schema, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import IrexportError, one_line
from .schema import Spec, validate

MAX_BYTES = 64 << 20  # records are small; a larger file is not one of them (and is not read into memory)


def read_json(path: Path, absent: str | None = None, max_bytes: int = MAX_BYTES):
    """The JSON value in ``path``; ``absent`` is the error when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise IrexportError(absent or f"{path}: not found")
    try:
        if path.stat().st_size > max_bytes:
            raise IrexportError(f"{path}: {path.stat().st_size} bytes, too large for this kind of file (at most {max_bytes})")
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, integers of > 4300 digits
        raise IrexportError(f"{path}: not valid JSON ({one_line(e, 120)})") from None
    except OSError as e:
        raise IrexportError(f"{path}: cannot read ({e.strerror})") from None


def read_json_record(path: Path, absent: str, schema: Spec, stale: str) -> dict:
    """A record irexport wrote, checked against ``schema``; ``stale`` says how to write a good one."""
    record = read_json(path, absent)
    try:
        return validate(record, schema, str(path))
    except IrexportError as e:
        raise IrexportError(f"{e} ({stale})") from None
