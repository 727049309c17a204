"""Build a RoutedCausalLM from a transformers config, a routing config and two state dicts,
checking every key and shape so that a bad checkpoint fails with one line naming the file and key.

The model is built on the meta device (shapes, no memory) and checked against the state dicts before it
takes their tensors: a config that disagrees with its weights, or that claims absurd sizes, costs nothing."""

from __future__ import annotations

import torch

from ..errors import IrexportError, one_line
from ..models.config import RoutingConfig
from ..models.routed import RoutedCausalLM
from .tensors import cast


def build_model(hf_config, routing_config: RoutingConfig) -> RoutedCausalLM:
    from transformers import AutoModelForCausalLM

    hf_config._attn_implementation = "eager"  # our forward does its own attention; keep the base plain
    try:
        base = AutoModelForCausalLM.from_config(hf_config)
    except ImportError:
        raise
    except Exception as e:  # noqa: BLE001 - what transformers raises on a config it cannot build from
        raise IrexportError(f"cannot build a {hf_config.model_type} model from this config: {one_line(e)}") from None
    return RoutedCausalLM(base, routing_config)


def check_state(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str, optional=()) -> None:
    """Every key ``module`` expects present (but ``optional``), none unexpected, every shape equal."""
    expected = module.state_dict()
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise IrexportError(f"{where}: unexpected key {unexpected[0]!r}")
    missing = sorted(k for k in expected if k not in state and k not in optional)
    if missing:
        raise IrexportError(f"{where}: missing key {missing[0]!r}")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise IrexportError(
                f"{where}: key {key!r} has shape {list(tensor.shape)}, the config implies {list(expected[key].shape)}"
            )
        if not (tensor.is_floating_point() or tensor.dtype == expected[key].dtype):
            raise IrexportError(f"{where}: key {key!r} has dtype {tensor.dtype}, expected floating point")


def tied_keys(hf_config) -> tuple[str, ...]:
    return ("lm_head.weight",) if getattr(hf_config, "tie_word_embeddings", False) else ()


def assemble(hf_config, routing_config, base_state, routing_state, base_where, routing_where,
             dtype: torch.dtype = torch.float32) -> RoutedCausalLM:
    """The model holding the state dicts' own tensors, in ``dtype``: built on the meta device, the weights
    assigned rather than copied into randomly initialized ones, and each tensor cast in its dict (the
    original released before the next is cast), so loading peaks at one copy of the weights, not two.
    The dicts are changed: they hold the model's tensors afterwards."""
    with torch.device("meta"):
        model = build_model(hf_config, routing_config)
    check_state(model.base, base_state, base_where, optional=tied_keys(hf_config))
    check_state(model.routing, routing_state, routing_where)
    model.base.load_state_dict(_owned(base_state, dtype), strict=False, assign=True)
    if tied_keys(hf_config):
        model.base.tie_weights()
    model.routing.load_state_dict(_owned(routing_state, dtype), assign=True)
    _rebuild_rotary(model)
    return model.to(dtype).eval()


def _owned(state: dict, dtype: torch.dtype) -> dict:
    """``state`` itself, its tensors replaced by contiguous ones in ``dtype`` that share no memory with each
    other (a torch.save'd dict may hold views of one storage): safe to become parameters, and to save again."""
    seen = set()
    for key in list(state):
        tensor = cast(state[key], dtype).contiguous()
        ptr = tensor.untyped_storage().data_ptr()
        state[key] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    return state


def _rebuild_rotary(model: RoutedCausalLM) -> None:
    """The rotary embedding's inverse frequencies are not in a checkpoint (non-persistent buffers): the
    module is rebuilt on the CPU from the config, as transformers builds it."""
    inner = model.base.model
    rotary = inner.rotary_emb
    inner.rotary_emb = type(rotary)(config=rotary.config)
    meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if meta:
        raise IrexportError(f"internal: {meta[0]} has no value after loading the checkpoint")
