"""Running the PyTorch reference on user inputs, and saving its outputs as golden outputs.

Outputs are saved twice: ``outputs.npz`` for numpy users, and Polygraphy's RunResults JSON so that
``polygraphy run --load-outputs outputs.polygraphy.json`` compares another backend against them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .errors import IrexportError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
RUNNER_NAME = "irexport-torch-reference"


def load_input_ids(path: Path, vocab_size: int) -> np.ndarray:
    try:
        ids = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise IrexportError(f"{path}: not found") from None
    except (ValueError, OSError, EOFError) as e:
        raise IrexportError(f"{path}: not a readable .npy array ({e})") from None
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[1] == 0 or ids.shape[0] == 0:
        raise IrexportError(f"{path}: input ids must have shape [batch, seq] with seq > 0, got {list(ids.shape)}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise IrexportError(f"{path}: input ids must be integers, got {ids.dtype}")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise IrexportError(f"{path}: token ids must lie in [0, {vocab_size}), got [{ids.min()}, {ids.max()}]")
    return ids.astype(np.int64)


def load_attention_mask(path: Path, shape: tuple) -> np.ndarray:
    try:
        mask = np.load(path, allow_pickle=False)
    except (FileNotFoundError, ValueError, OSError, EOFError) as e:
        raise IrexportError(f"{path}: not a readable .npy array ({e})") from None
    if mask.ndim == 1:
        mask = mask[None]
    if tuple(mask.shape) != tuple(shape):
        raise IrexportError(f"{path}: attention mask has shape {list(mask.shape)}, the input ids {list(shape)}")
    if not np.isin(mask, (0, 1)).all() or not mask.any(axis=1).all():
        raise IrexportError(f"{path}: attention mask must be 0/1 with at least one real token per sequence")
    return mask.astype(np.int64)


def tokenize(model_dir: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from transformers import AutoTokenizer

    if not any((Path(model_dir) / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise IrexportError(f"{model_dir}: the model has no tokenizer; pass token ids with --input-ids")
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    enc = tok(texts, return_tensors="np", padding=True)
    if enc["input_ids"].shape[1] == 0:
        raise IrexportError("--text: the text tokenizes to no tokens")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


@torch.no_grad()
def run(model, input_ids: np.ndarray, attention_mask: np.ndarray | None, dtype: str = "float32", mode: str = "masked"):
    """Returns (RoutedOutput, outputs dict of numpy arrays)."""
    if dtype not in DTYPES:
        raise IrexportError(f"unsupported dtype {dtype!r} (expected one of {', '.join(DTYPES)})")
    model = model.to(DTYPES[dtype])
    ids = torch.from_numpy(input_ids)
    mask = torch.from_numpy(attention_mask) if attention_mask is not None else None
    out = model(ids, attention_mask=mask, mode=mode)
    outputs = {
        "logits": out.logits.float().numpy(),
        "decisions": out.execute.numpy(),  # bool [layers, 2 (attention, mlp), batch, seq]
        "router_margin": out.margin.numpy(),
    }
    return out, outputs


def save(out_dir: Path, outputs: dict, feed: dict, meta: dict) -> None:
    """Write outputs.npz, the Polygraphy files (inputs for --load-inputs, outputs for --load-outputs)
    and run.json into ``out_dir`` (a temporary directory that is renamed once complete)."""
    from polygraphy.comparator import IterationResult, RunResults
    from polygraphy.json import save_json
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.ERROR  # keep Polygraphy's info lines (temp paths) off the console

    np.savez(out_dir / "outputs.npz", **feed, **outputs)
    results = RunResults()
    results.append((RUNNER_NAME, [IterationResult(outputs=dict(outputs), runner_name=RUNNER_NAME)]))
    results.save(str(out_dir / "outputs.polygraphy.json"))
    save_json([feed], str(out_dir / "inputs.polygraphy.json"))
    (out_dir / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
