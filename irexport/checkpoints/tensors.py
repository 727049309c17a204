"""Read tensor files safely, turning every failure into a one-line error that names the file.

``torch.load`` always runs with ``weights_only=True``: a pickle that carries code is refused, never run.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import IrexportError


def cast(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """Floating-point tensors in ``dtype`` (None: as stored); integer tensors as stored."""
    return tensor if dtype is None or not tensor.is_floating_point() else tensor.to(dtype)


def read_safetensors(path: Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The file's tensors, each read into memory of its own (pread, not a mapping of the file) and cast to
    ``dtype`` as it is read: reading a float32 checkpoint as bfloat16 peaks at the bfloat16 weights plus
    one float32 tensor."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise IrexportError(f"{path}: not found")
    try:
        with safe_open(str(path), framework="pt", backend="pread") as f:
            return {key: cast(f.get_tensor(key), dtype) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise IrexportError(f"{path}: not a readable safetensors file (truncated or corrupt?): {e}") from None


def read_torch(path: Path) -> dict[str, torch.Tensor]:
    """A ``torch.save``d state dict (optionally nested under 'state_dict' or 'model'), tensors only."""
    if not path.is_file():
        raise IrexportError(f"{path}: not found")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported pickle content"
        raise IrexportError(
            f"{path}: refused to unpickle: the file holds objects other than tensors "
            f"(weights_only=True; code is never run): {first}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise IrexportError(f"{path}: not a readable torch checkpoint (truncated or corrupt?): {first}") from None
    for nest in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(nest), dict):
            obj = obj[nest]
    if not isinstance(obj, dict):
        raise IrexportError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise IrexportError(f"{path}: key {key!r} is not a string (a state dict maps parameter names to tensors)")
        if not isinstance(value, torch.Tensor):
            raise IrexportError(f"{path}: key {key!r} is a {type(value).__name__}, not a tensor")
    return obj


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    return read_safetensors(path) if path.suffix == ".safetensors" else read_torch(path)
