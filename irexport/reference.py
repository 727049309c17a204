"""Running the PyTorch reference on user inputs, and saving its outputs as golden outputs.

Outputs are saved twice: ``outputs.npz`` for numpy users, and Polygraphy's RunResults JSON so that
``polygraphy run --load-outputs outputs.polygraphy.json`` compares another backend against them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .arrays import read_npy
from .errors import IrexportError

MAX_INPUT_TOKENS = 1024 * 65536  # the largest batch x sequence the flags take: a file's header is held to it
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
RUNNER_NAME = "irexport-torch-reference"


def check_input_ids(ids: np.ndarray, vocab_size: int, where: str) -> np.ndarray:
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[1] == 0 or ids.shape[0] == 0:
        raise IrexportError(f"{where}: input ids must have shape [batch, seq] with seq > 0, got {list(ids.shape)}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise IrexportError(f"{where}: input ids must be integers, got {ids.dtype}")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise IrexportError(f"{where}: token ids must lie in [0, {vocab_size}), got [{ids.min()}, {ids.max()}]")
    return ids.astype(np.int64)


def check_attention_mask(mask: np.ndarray, shape: tuple, where: str) -> np.ndarray:
    if mask.ndim == 1:
        mask = mask[None]
    if tuple(mask.shape) != tuple(shape):
        raise IrexportError(f"{where}: attention mask has shape {list(mask.shape)}, the input ids {list(shape)}")
    if not np.isin(mask, (0, 1)).all() or not mask.any(axis=1).all():
        raise IrexportError(f"{where}: attention mask must be 0/1 with at least one real token per sequence")
    return mask.astype(np.int64)


def load_input_ids(path: Path, vocab_size: int) -> np.ndarray:
    return check_input_ids(read_npy(path, MAX_INPUT_TOKENS), vocab_size, str(path))


def load_attention_mask(path: Path, shape: tuple) -> np.ndarray:
    return check_attention_mask(read_npy(path, MAX_INPUT_TOKENS), shape, str(path))


def has_tokenizer(model_dir: Path) -> bool:
    return any((Path(model_dir) / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir))
    except ImportError:
        raise  # a missing package is said as such by the CLI
    except Exception as e:  # noqa: BLE001 - tokenizer files are users' input; transformers raises anything on bad ones
        raise IrexportError(f"{model_dir}: cannot load the tokenizer ({str(e).splitlines()[0] if str(e) else e})") from None


def tokenize(model_dir: Path, texts: list[str], vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    if not has_tokenizer(model_dir):
        raise IrexportError(f"{model_dir}: the model has no tokenizer; pass token ids with --input-ids")
    tok = load_tokenizer(model_dir)
    tok.padding_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise IrexportError(f"{model_dir}: the tokenizer has neither a pad nor an eos token to pad a batch with")
        tok.pad_token = tok.eos_token
    enc = tok(texts, return_tensors="np", padding=True)
    where = "--text"
    ids = check_input_ids(enc["input_ids"], vocab_size, where)
    return ids, check_attention_mask(enc["attention_mask"], ids.shape, where)


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


@torch.no_grad()
def run_graph(model, feed: dict, mode: str, force=None, float32: bool = False) -> dict:
    """The reference on a feed of the exported graph (numpy; with or without past_key_values), its outputs
    named as the graph's (numpy; float32 for low-precision ones), in the model's dtype or (``float32``)
    computed in float32. ``force``: decisions to replay instead of the routers' own."""
    import contextlib

    from .export.graph_io import GraphIO
    from .models.compute_dtype import computing_in

    dtype = torch.float32 if float32 else next(model.parameters()).dtype
    io = GraphIO.of_config(model.config)
    past = None
    if io.past_names[0] in feed:
        cache = [torch.from_numpy(feed[n]).to(dtype) for n in io.past_names]
        past = tuple(zip(cache[::2], cache[1::2], strict=True))
    with computing_in(model, dtype) if float32 else contextlib.nullcontext():
        out = model(torch.from_numpy(feed["input_ids"]), attention_mask=torch.from_numpy(feed["attention_mask"]),
                    past_key_values=past, mode=mode, force_execute=None if force is None else torch.from_numpy(force))
    result = {"logits": out.logits.float().numpy(), "decisions": out.execute.numpy(), "router_margin": out.margin.numpy()}
    flat = [t for kv in out.past_key_values for t in kv]
    result.update({n: t.float().numpy() for n, t in zip(io.present_names, flat, strict=True)})
    return result


@torch.no_grad()
def greedy(model, input_ids: np.ndarray, attention_mask: np.ndarray, new_tokens: int, mode: str = "masked") -> np.ndarray:
    """The reference's greedy tokens, fed as every backend is fed (``GraphIO.greedy``), in torch: the cache stays
    in the model's dtype, and the prefill runs without one (the reference's own prefill)."""
    from .export.graph_io import GraphIO

    dtype = next(model.parameters()).dtype
    io = GraphIO.of_config(model.config, str(dtype).removeprefix("torch."))

    def run(phase, feed):
        past = None
        if phase == "decode":
            cache = [feed[n] for n in io.past_names]
            past = tuple(zip(cache[::2], cache[1::2], strict=True))
        out = model(feed["input_ids"], attention_mask=feed["attention_mask"], past_key_values=past, mode=mode)
        return {"logits": out.logits, **dict(zip(io.present_names, (t for kv in out.past_key_values for t in kv), strict=True))}

    return io.greedy(run, torch.from_numpy(input_ids), torch.from_numpy(attention_mask), new_tokens)


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
