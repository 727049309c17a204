"""The export's weights file.

The graph's initializers go to ``weights.data`` as ONNX external data, each distinct tensor once (a
folded copy equal to another tensor, or tied embeddings, point at the same bytes), written straight
from torch.onnx's in-memory model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHTS_FILE = "weights.data"
INLINE_BYTES = 1024  # smaller tensors stay inside the graph (onnx's own default threshold)
ALIGN_FROM, ALIGN = 1 << 20, 64 << 10  # tensors of 1 MiB and more start on 64 KiB boundaries (a multiple of the page size)


class SharedWeights:
    """Writes the initializers of a graph into one file, each distinct tensor once. The graph goes in as
    torch.onnx's in-memory model (onnx_ir), before it is serialized: no protobuf copy of the weights is
    made, and the optimizer's folded tensors (transposed weights) are released once written."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / WEIGHTS_FILE
        self._file = open(self.path, "wb")
        self._offsets: dict[bytes, int] = {}
        self._sha256 = hashlib.sha256()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._sha256.update(data)

    def externalize(self, model) -> None:
        """Move the initializers of ``model`` (an onnx_ir.Model) into the file, or point them at an equal
        tensor already there."""
        import onnx_ir as ir

        for value in model.graph.initializers.values():
            tensor = value.const_value
            if tensor is None or tensor.nbytes < INLINE_BYTES:
                continue
            raw = tensor.tobytes()  # ONNX's raw layout, one tensor at a time
            key = hashlib.sha256(raw).digest()
            if key not in self._offsets:
                if len(raw) >= ALIGN_FROM:
                    self._write(bytes(-self._file.tell() % ALIGN))
                self._offsets[key] = self._file.tell()
                self._write(raw)
            value.const_value = ir.ExternalTensor(WEIGHTS_FILE, self._offsets[key], len(raw), tensor.dtype,
                                                  shape=tensor.shape, name=value.name, base_dir=self.path.parent)

    def record(self) -> dict:
        """What the manifest says of the file, so that readers can check it before use."""
        return {"file": WEIGHTS_FILE, "bytes": self._file.tell(), "sha256": self._sha256.hexdigest()}
