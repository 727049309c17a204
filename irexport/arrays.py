"""Reading users' arrays (.npy, .npz, Polygraphy's inputs JSON) without trusting their headers.

A .npy header states the array's shape and dtype; numpy allocates what it states before reading the data.
Here the header is checked against the bytes that follow it first, so a truncated file or a lying header
is one line, not a petabyte allocation. Object arrays (pickles) are refused.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import IrexportError
from .jsonrecord import read_json
from .schema import List, Map, Obj, Str, validate


def _checked_header(stream, data_bytes: int, where: str, max_items: int | None) -> None:
    """Read a .npy header from ``stream``: numbers only, at most ``max_items`` of them, and shape x itemsize
    equal to ``data_bytes`` minus the header."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(stream)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise IrexportError(f"{where}: not a readable .npy array ({str(e).splitlines()[0]})") from None
    if dtype.hasobject:
        raise IrexportError(f"{where}: holds Python objects (a pickle), not numbers; refused")
    if dtype.kind not in "biuf":
        raise IrexportError(f"{where}: dtype {dtype} is not a number type")
    if max_items is not None and math.prod(shape) > max_items:
        raise IrexportError(f"{where}: shape {list(shape)} holds more than {max_items} values, the most irexport takes here")
    claimed = math.prod(shape) * dtype.itemsize
    held = data_bytes - stream.tell()
    if claimed != held:
        raise IrexportError(f"{where}: the header says shape {list(shape)} of {dtype} ({claimed} bytes), the file holds "
                            f"{held} bytes of data (truncated or not a .npy file)")


def _load(stream, data_bytes: int, where: str, max_items: int | None = None) -> np.ndarray:
    start = stream.tell()
    _checked_header(stream, data_bytes, where, max_items)
    stream.seek(start)
    try:
        return np.load(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise IrexportError(f"{where}: not a readable .npy array ({str(e).splitlines()[0]})") from None


def read_npy(path, max_items: int | None = None) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise IrexportError(f"{path}: not found")
    with open(path, "rb") as f:
        return _load(f, path.stat().st_size, str(path), max_items)


_MAX_RATIO = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: 1032}  # np.savez, np.savez_compressed; deflate's limit


def read_npz(path, names=None, max_items: int | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz (numpy's zip of .npy files), each checked before it is read; with ``names``,
    any other array is an error (before anything is read)."""
    path = Path(path)
    if not path.is_file():
        raise IrexportError(f"{path}: not found")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            _check_names([i.filename.removesuffix(".npy") for i in archive.infolist()], names, path)
            for info in archive.infolist():
                name, where = info.filename.removesuffix(".npy"), f"{path}: array {info.filename.removesuffix('.npy')!r}"
                if info.compress_type not in _MAX_RATIO:
                    raise IrexportError(f"{where}: compressed in a way numpy does not write (zip method {info.compress_type})")
                if info.file_size > _MAX_RATIO[info.compress_type] * info.compress_size + 1024:
                    raise IrexportError(f"{where}: claims {info.file_size} bytes from {info.compress_size} compressed "
                                        "(more than the compression can give: a corrupt or hostile archive)")
                with archive.open(info) as member:
                    arrays[name] = _load(member, info.file_size, where, max_items)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise IrexportError(f"{path}: not a readable .npz archive ({e})") from None
    return arrays


# Polygraphy's JSON for a list of feeds (``polygraphy run --save-inputs``, ``irexport run``): each array is a
# base64 .npy file; irexport reads the first feed
POLYGRAPHY_INPUTS = List(Map(Obj({"polygraphy_class": Str(choices=("ndarray",)), "array": Str()})), min_len=1)


def read_polygraphy_inputs(path, names=None, max_items: int | None = None) -> dict[str, np.ndarray]:
    path = Path(path)
    feeds = validate(read_json(path, max_bytes=4 << 30), POLYGRAPHY_INPUTS, str(path))
    _check_names(list(feeds[0]), names, path)
    arrays = {}
    for name, encoded in feeds[0].items():
        try:
            raw = base64.b64decode(encoded["array"], validate=True)
        except (binascii.Error, ValueError):
            raise IrexportError(f"{path}: key '[0].{name}.array' is not base64 data") from None
        arrays[name] = _load(io.BytesIO(raw), len(raw), f"{path}: array {name!r}", max_items)
    return arrays


def _check_names(found, names, path) -> None:
    unknown = [n for n in found if names is not None and n not in names]
    if unknown:
        raise IrexportError(f"{path}: unknown array {unknown[0]!r} (expected {', '.join(names)})")
