"""Research checkpoint layouts, mapped onto our format.

Informed routing (EIT-NLP, LFF code), ``torch.save`` state dicts:
  model.layers.{i}.block.<transformers decoder-layer key>       base weights of layer i
  model.layers.{i}.router_attention|router_mlp.hidden_layer.*   router Linear(d, h)
  model.layers.{i}.router_attention|router_mlp.weight_predictor.*  router Linear(h, 2)
  model.layers.{i}.lw_attn|lw_mlp.linear1|linear2.*             LFF
  other keys                                                    transformers names
Training also writes partial dicts (only the lw keys, only the router keys) to overlay on a base model.
SkipGPT: the same router keys without lw_*; the released routers are a single ``weight_predictor``
Linear(d, 2) reading the layer input, and may carry a ``base_model.model.`` prefix (PEFT).
Router-tuning (MindSkip): ``model.layers.{i}.router.weight`` [1, d] in a directory whose config.json
names the ``granularity`` (attn_token / attn_sequence) and ``threshold``.

The formats do not store the family or the router input: the caller passes them.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import IrexportError
from ..jsonrecord import read_json
from ..models.config import RoutingConfig, attribute_range
from ..schema import Obj, Opt, Str, validate
from .assemble import assemble
from .native import load_hf_config, read_base_weights
from .tensors import read_state_dict

RESEARCH_FAMILIES = ("informed", "skipgpt", "router_tuning")
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
_UNIT = {"router_attention": ("attention", "router"), "router_mlp": ("mlp", "router"),
         "lw_attn": ("attention", "lff"), "lw_mlp": ("mlp", "lff")}
_PEFT_PREFIX = "base_model.model."
# what irexport reads of a router-tuning directory's config.json
_ROUTER_TUNING_SCHEMA = Obj({"granularity": Opt(Str()), "threshold": attribute_range("RouteThreshold", "threshold")},
                            optional=("granularity", "threshold"))


def _split(key: str, family: str) -> tuple[str, str]:
    """Map one research key to ('base' | 'routing', our key)."""
    m = _LAYER.match(key)
    if not m:
        return "base", key
    layer, rest = m.groups()
    head, _, tail = rest.partition(".")
    if head == "block":
        return "base", f"model.layers.{layer}.{tail}"
    if head in _UNIT:
        unit, part = _UNIT[head]
        return "routing", f"layers.{layer}.{unit}.{part}.{tail}"
    if head == "router" and family == "router_tuning" and tail == "weight":
        return "routing", f"layers.{layer}.attention.router.proj.weight"
    return "base", key


def read_research(paths: list[Path], family: str) -> tuple[dict, dict, dict]:
    """Read and map research files. Returns (base, routing, origin) with origin[key] = file it came from."""
    base, routing, origin = {}, {}, {}
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin")) + sorted(path.glob("*.pt"))
            if not files:
                raise IrexportError(f"{path}: no *.safetensors, *.bin or *.pt checkpoint in the directory")
        else:
            files = [path]
        for f in files:
            for key, tensor in read_state_dict(f).items():
                if "lora_" in key:
                    raise IrexportError(f"{f}: key {key!r} is a LoRA adapter weight; merge the adapters into the base first")
                name = key[len(_PEFT_PREFIX):] if key.startswith(_PEFT_PREFIX) else key
                where, ours = _split(name, family)
                (base if where == "base" else routing)[ours] = tensor
                origin[ours] = str(f)
    return base, routing, origin


def _router_tuning_settings(paths: list[Path]) -> dict:
    """threshold and pooling from a router-tuning directory's config.json (granularity)."""
    for path in paths:
        cfg_file = Path(path) / "config.json"
        if not cfg_file.is_file():
            continue
        data = validate(read_json(cfg_file), _ROUTER_TUNING_SCHEMA, str(cfg_file))
        settings = {}
        granularity = data.get("granularity")
        if granularity is not None:
            target, _, pooling = str(granularity).partition("_")
            if target != "attn" or pooling not in ("token", "sequence"):
                raise IrexportError(
                    f"{cfg_file}: granularity {granularity!r} is not supported "
                    "(irexport routes attention per token or per sequence: attn_token, attn_sequence)"
                )
            settings["pooling"] = pooling
        if "threshold" in data:
            settings["threshold"] = float(data["threshold"])
        return settings
    return {}


def infer_routing_config(family: str, routing: dict, origin: dict, num_layers: int, router_input: str | None,
                         **settings) -> RoutingConfig:
    """Routed units and dimensions from the router keys present; flags from the caller."""
    if family not in RESEARCH_FAMILIES:
        raise IrexportError(f"unknown research family {family!r} (expected one of {', '.join(RESEARCH_FAMILIES)})")
    units = {"attention": set(), "mlp": set()}
    for key, tensor in routing.items():
        if tensor.ndim == 0:
            raise IrexportError(f"{origin[key]}: key {key!r} is a scalar, not a weight matrix or bias vector")
        layer, unit, part = key.split(".")[1:4]
        if int(layer) >= num_layers:
            raise IrexportError(f"{origin[key]}: key {key!r} is for layer {layer}, but the base config has layers 0..{num_layers - 1}")
        if part == "lff" and family != "informed":
            raise IrexportError(f"{origin[key]}: key {key!r} is an LFF weight, but family {family} has no LFF (use --family informed)")
        if part == "router":
            units[unit].add(int(layer))
    if not any(units.values()):
        raise IrexportError(f"{', '.join(sorted(set(origin.values())))}: no router weights found (keys like "
                            "'model.layers.0.router_attention.weight_predictor.weight')")
    for key in routing:  # an LFF without its router
        layer, unit, part = key.split(".")[1:4]
        if part == "lff" and int(layer) not in units[unit]:
            raise IrexportError(f"{origin[key]}: key {key!r} has no router for layer {layer} {unit}")
    params = dict(settings)
    first = min((int(k.split(".")[1]), k.split(".")[2]) for k in routing if ".router." in k)
    prefix = f"layers.{first[0]}.{first[1]}"
    if family in ("informed", "skipgpt"):
        hidden = routing.get(f"{prefix}.router.hidden_layer.weight")
        params["router_hidden"] = int(hidden.shape[0]) if hidden is not None else 0
        default_input = "norm" if family == "informed" else "layer_residual"
    else:
        default_input = "layer_norm"
    if family == "informed":
        lff = routing.get(f"{prefix}.lff.linear1.weight")
        if lff is None:
            raise IrexportError(f"{origin[next(iter(routing))]}: missing key "
                                f"'model.layers.{first[0]}.lw_{'attn' if first[1] == 'attention' else 'mlp'}.linear1.weight' "
                                "(informed routing needs the LFF; pass the lw_* checkpoint too, or use --family skipgpt)")
        params["lff_rank"] = int(lff.shape[0])
    return RoutingConfig(family=family, num_layers=num_layers, units={u: sorted(v) for u, v in units.items()},
                         router_input=router_input or default_input, **params)


def load_research(paths: list[Path], family: str, base: Path, router_input: str | None = None):
    """A RoutedCausalLM from research checkpoint files overlaid on a transformers base directory.

    ``base`` holds config.json and, unless the checkpoint is a full dict, the base weights.
    """
    base = Path(base)
    if not base.is_dir():
        raise IrexportError(f"{base}: not a directory (--base takes the transformers model directory the routers were trained on)")
    hf_config = load_hf_config(base)
    base_state, routing, origin = read_research(paths, family)
    settings = _router_tuning_settings(paths) if family == "router_tuning" else {}
    rc = infer_routing_config(family, routing, origin, hf_config.num_hidden_layers, router_input, **settings)
    weights = read_base_weights(base, required=not base_state)[0]
    weights.update(base_state)  # the checkpoint's own base weights win over the base directory's
    files = " + ".join(sorted(set(origin.values())))
    base_where = f"{base} + {files}" if base_state else str(base)
    return assemble(hf_config, rc, weights, routing, base_where, files)
