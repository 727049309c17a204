"""Our checkpoint format: a transformers directory plus the routing.

  config.json            transformers config (the base model stays loadable by transformers alone)
  model.safetensors      base weights under transformers' names (sharded *.safetensors also read)
  routing_config.json    irexport.models.RoutingConfig
  routing.safetensors    layers.{i}.{attention|mlp}.{router|lff}.*
  tokenizer files        optional
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ..atomic import atomic_dir
from ..errors import IrexportError, one_line
from ..jsonrecord import read_json
from ..models.config import RoutingConfig
from ..models.routed import SUPPORTED_MODEL_TYPES
from ..schema import Bool, Int, List, Num, Obj, OneOf, Opt, Str, validate
from .assemble import assemble
from .tensors import read_safetensors, read_torch

ROUTING_CONFIG = "routing_config.json"
ROUTING_WEIGHTS = "routing.safetensors"


_TOKEN_ID = Opt(OneOf(Int(0), List(Int(0), min_len=1)))
# rotary embeddings: transformers 5 writes rope_parameters, older configs rope_scaling (+ rope_theta)
_ROPE = Opt(Obj({"rope_type": Str(), "type": Str(), "rope_theta": Num(0, open_lo=True), "factor": Num(1)},
                optional=("rope_type", "type", "rope_theta", "factor")))
# the part of a transformers config.json irexport relies on; the rest is transformers' to check
HF_CONFIG_SCHEMA = Obj({
    "model_type": Str(),
    "vocab_size": Int(1, 1 << 24),
    "hidden_size": Int(2, 1 << 16),
    "intermediate_size": Int(1, 1 << 18),
    "num_hidden_layers": Int(1, 4096),
    "num_attention_heads": Int(1, 1024),
    "num_key_value_heads": Opt(Int(1, 1024)),
    "head_dim": Opt(Int(2, 4096)),
    "max_position_embeddings": Int(1, 1 << 24),
    "rms_norm_eps": Num(0, 1, open_lo=True),
    "rope_theta": Num(0, open_lo=True),
    "tie_word_embeddings": Bool(),
    "attention_bias": Bool(),
    "mlp_bias": Bool(),
    "hidden_act": Str(),
    "rope_parameters": _ROPE,
    "rope_scaling": _ROPE,
    "sliding_window": Opt(Int(0)),
    "dtype": Opt(Str()),
    "torch_dtype": Opt(Str()),
    "bos_token_id": _TOKEN_ID,
    "eos_token_id": _TOKEN_ID,
    "pad_token_id": Opt(Int(-1)),  # -1 and vocab_size occur in released configs: it only pads
}, optional=("num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "rope_theta",
             "tie_word_embeddings", "attention_bias", "mlp_bias", "hidden_act", "rope_parameters", "rope_scaling",
             "sliding_window", "dtype", "torch_dtype", "bos_token_id", "eos_token_id", "pad_token_id"))


def check_hf_config(data, where: str) -> dict:
    """``data`` (a config.json's object) checked before transformers or irexport use any of it."""
    data = validate(data, HF_CONFIG_SCHEMA, where)
    if data["model_type"] not in SUPPORTED_MODEL_TYPES:
        raise IrexportError(f"{where}: model_type {data['model_type']!r} is not supported "
                            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
    heads, kv = data["num_attention_heads"], data.get("num_key_value_heads") or data["num_attention_heads"]
    if heads % kv:
        raise IrexportError(f"{where}: num_attention_heads ({heads}) must be a multiple of num_key_value_heads ({kv})")
    head_dim = data.get("head_dim")
    if head_dim is None and data["hidden_size"] % heads:
        raise IrexportError(f"{where}: hidden_size ({data['hidden_size']}) must be a multiple of num_attention_heads "
                            f"({heads}) when head_dim is not given")
    if (head_dim or data["hidden_size"] // heads) % 2:
        raise IrexportError(f"{where}: the head size ({head_dim or data['hidden_size'] // heads}) must be even (rotary embeddings)")
    for key in ("bos_token_id", "eos_token_id"):
        ids = data.get(key)
        if any(i >= data["vocab_size"] for i in ([] if ids is None else ids if isinstance(ids, list) else [ids])):
            raise IrexportError(f"{where}: key {key!r} must lie in [0, {data['vocab_size']}), got {ids!r}")
    if "hidden_act" in data:
        from transformers.activations import ACT2FN

        if data["hidden_act"] not in ACT2FN:
            raise IrexportError(f"{where}: key 'hidden_act' {data['hidden_act']!r} is not an activation transformers knows")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    for key in ("rope_parameters", "rope_scaling"):
        rope_type = (data.get(key) or {}).get("rope_type", (data.get(key) or {}).get("type", "default"))
        if rope_type not in ("default", *ROPE_INIT_FUNCTIONS):
            raise IrexportError(f"{where}: key '{key}.rope_type' {rope_type!r} is not a rotary embedding transformers "
                                f"knows ({', '.join(('default', *ROPE_INIT_FUNCTIONS))})")
    for key in ("dtype", "torch_dtype"):
        name = data.get(key)
        if name is not None and name != "auto" and not isinstance(getattr(torch, name, None), torch.dtype):
            raise IrexportError(f"{where}: key {key!r} {name!r} is not a torch dtype")
    return data


def load_hf_config(path: Path):
    path = Path(path)
    cfg_file = path / "config.json" if path.is_dir() else path
    data = check_hf_config(read_json(cfg_file, f"{cfg_file}: not found (expected a transformers config.json)"), str(cfg_file))
    from transformers import CONFIG_MAPPING

    try:
        return CONFIG_MAPPING[data["model_type"]].from_dict({k: v for k, v in data.items() if k != "model_type"})
    except ImportError:
        raise
    except Exception as e:  # noqa: BLE001 - transformers' own checks of the rest (strict dataclass errors and more)
        raise IrexportError(f"{cfg_file}: transformers refuses the config: {one_line(e)}") from None


def read_base_weights(directory: Path, required: bool = True, dtype: torch.dtype | None = None) -> tuple[dict, str]:
    """Base weights of a transformers directory: *.safetensors (cast to ``dtype`` tensor by tensor as they
    are read), else pytorch_model*.bin (weights only; cast once loaded)."""
    files = sorted(p for p in Path(directory).glob("*.safetensors") if p.name != ROUTING_WEIGHTS)
    reader = functools.partial(read_safetensors, dtype=dtype)
    if not files:
        files, reader = sorted(Path(directory).glob("pytorch_model*.bin")), read_torch
    if not files and required:
        raise IrexportError(f"{directory}: no base weights found (*.safetensors or pytorch_model*.bin)")
    state = {}
    for f in files:
        state.update(reader(f))
    return state, str(files[0] if len(files) == 1 else directory)


def load_model(path, dtype: torch.dtype = torch.float32):
    """Load a routed model saved in our format (no flags needed), its weights in ``dtype`` whatever the
    checkpoint stores: each tensor is cast as it is read, so loading never holds two copies of the weights."""
    path = Path(path)
    if not path.is_dir():
        raise IrexportError(f"{path}: not a model directory")
    if not (path / ROUTING_CONFIG).is_file():
        raise IrexportError(f"{path}: no {ROUTING_CONFIG} (not an irexport model; research checkpoints go through 'irexport convert')")
    hf_config = load_hf_config(path)
    routing_config = RoutingConfig.load(path / ROUTING_CONFIG)
    if routing_config.num_layers != hf_config.num_hidden_layers:
        raise IrexportError(f"{path / ROUTING_CONFIG}: num_layers is {routing_config.num_layers}, config.json has "
                            f"{hf_config.num_hidden_layers} layers")
    base_state, base_where = read_base_weights(path, dtype=dtype)
    routing_state = read_safetensors(path / ROUTING_WEIGHTS, dtype)
    model = assemble(hf_config, routing_config, base_state, routing_state, base_where, str(path / ROUTING_WEIGHTS),
                     dtype)
    model.source_dir = path
    return model


def save_model(model, out_dir, overwrite: bool = False, tokenizer=None, inputs=()) -> Path:
    """Write ``model`` in our format, atomically: a failed save leaves no partial directory (nor replaces one
    of ``inputs``, the files it was read from)."""
    from safetensors.torch import save_file
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a one-shard progress bar is noise

    with atomic_dir(out_dir, overwrite=overwrite, inputs=inputs) as tmp:
        model.base.save_pretrained(tmp, safe_serialization=True)
        model.routing_config.save(tmp / ROUTING_CONFIG)
        routing = {k: v.detach().contiguous() for k, v in model.routing.state_dict().items()}
        # one metadata key only: safetensors writes several in hash order, and saves must be byte-identical
        save_file(routing, str(tmp / ROUTING_WEIGHTS), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return Path(out_dir)
