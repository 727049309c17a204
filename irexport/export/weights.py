"""One weights file for both graphs of an export, and reading it once.

The prefill and decode graphs hold the same weights: the same parameters, and the same folded copies of
them (transposed matrices) under other names. Each distinct tensor is written once to ``weights.data``
and both graphs point at it as ONNX external data, so the export holds one copy on disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHTS_FILE = "weights.data"
INLINE_BYTES = 1024  # smaller tensors stay inside the graph (onnx's own default threshold)
ALIGN_FROM, ALIGN = 1 << 20, 64 << 10  # tensors of 1 MiB and more start on 64 KiB boundaries, as onnx aligns them


class SharedWeights:
    """Writes the initializers of graphs into one file, each distinct tensor once; graphs go in one by one,
    so only one graph's weights are in memory at a time."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / WEIGHTS_FILE
        self._file = open(self.path, "wb")
        self._offsets: dict[bytes, int] = {}

    def externalize(self, proto) -> None:
        """Move ``proto``'s initializers into the file (or point them at an equal tensor already there)."""
        from onnx import TensorProto

        for tensor in proto.graph.initializer:
            if not tensor.HasField("raw_data") or len(tensor.raw_data) < INLINE_BYTES:
                continue
            raw = tensor.raw_data
            key = hashlib.sha256(raw).digest()
            if key not in self._offsets:
                if len(raw) >= ALIGN_FROM:
                    self._file.write(bytes(-self._file.tell() % ALIGN))
                self._offsets[key] = self._file.tell()
                self._file.write(raw)
            tensor.ClearField("raw_data")
            tensor.data_location = TensorProto.EXTERNAL
            del tensor.external_data[:]
            for k, v in (("location", WEIGHTS_FILE), ("offset", str(self._offsets[key])), ("length", str(len(raw)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = k, v

    def close(self) -> int:
        """Close the file; returns its size in bytes."""
        size = self._file.tell()
        self._file.close()
        return size
