"""Our checkpoint format: a transformers directory plus the routing.

  config.json            transformers config (the base model stays loadable by transformers alone)
  model.safetensors      base weights under transformers' names (sharded *.safetensors also read)
  routing_config.json    irexport.models.RoutingConfig
  routing.safetensors    layers.{i}.{attention|mlp}.{router|lff}.*
  tokenizer files        optional
"""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_dir
from ..errors import IrexportError
from ..models.config import RoutingConfig
from .assemble import assemble
from .tensors import read_safetensors, read_torch

ROUTING_CONFIG = "routing_config.json"
ROUTING_WEIGHTS = "routing.safetensors"


def load_hf_config(path: Path):
    path = Path(path)
    cfg_file = path / "config.json" if path.is_dir() else path
    if not cfg_file.is_file():
        raise IrexportError(f"{cfg_file}: not found (expected a transformers config.json)")
    from transformers import CONFIG_MAPPING

    try:
        data = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IrexportError(f"{cfg_file}: not valid JSON ({e})") from None
    except OSError as e:
        raise IrexportError(f"{cfg_file}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict) or "model_type" not in data:
        raise IrexportError(f"{cfg_file}: missing key 'model_type'")
    if data["model_type"] not in CONFIG_MAPPING:
        raise IrexportError(f"{cfg_file}: unknown model_type {data['model_type']!r}")
    try:
        return CONFIG_MAPPING[data["model_type"]].from_dict({k: v for k, v in data.items() if k != "model_type"})
    except (TypeError, ValueError, KeyError) as e:
        raise IrexportError(f"{cfg_file}: invalid transformers config: {e}") from None


def read_base_weights(directory: Path, required: bool = True) -> tuple[dict, str]:
    """Base weights of a transformers directory: *.safetensors, else pytorch_model*.bin (weights only)."""
    files = sorted(p for p in Path(directory).glob("*.safetensors") if p.name != ROUTING_WEIGHTS)
    reader = read_safetensors
    if not files:
        files, reader = sorted(Path(directory).glob("pytorch_model*.bin")), read_torch
    if not files and required:
        raise IrexportError(f"{directory}: no base weights found (*.safetensors or pytorch_model*.bin)")
    state = {}
    for f in files:
        state.update(reader(f))
    return state, str(files[0] if len(files) == 1 else directory)


def load_model(path):
    """Load a routed model saved in our format (no flags needed)."""
    path = Path(path)
    if not path.is_dir():
        raise IrexportError(f"{path}: not a model directory")
    if not (path / ROUTING_CONFIG).is_file():
        raise IrexportError(f"{path}: no {ROUTING_CONFIG} (not an irexport model; research checkpoints go through 'irexport convert')")
    hf_config = load_hf_config(path)
    routing_config = RoutingConfig.load(path / ROUTING_CONFIG)
    base_state, base_where = read_base_weights(path)
    routing_state = read_safetensors(path / ROUTING_WEIGHTS)
    model = assemble(hf_config, routing_config, base_state, routing_state, base_where, str(path / ROUTING_WEIGHTS))
    model.source_dir = path
    return model


def save_model(model, out_dir, overwrite: bool = False, tokenizer=None) -> Path:
    """Write ``model`` in our format, atomically: a failed save leaves no partial directory."""
    from safetensors.torch import save_file
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a one-shard progress bar is noise

    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        model.base.save_pretrained(tmp, safe_serialization=True)
        model.routing_config.save(tmp / ROUTING_CONFIG)
        routing = {k: v.detach().contiguous() for k, v in model.routing.state_dict().items()}
        # one metadata key only: safetensors writes several in hash order, and saves must be byte-identical
        save_file(routing, str(tmp / ROUTING_WEIGHTS), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return Path(out_dir)
