"""The routed decoder: a transformers causal LM whose attention and MLP units are routed per token.

Our own forward walks the transformers modules (embeddings, RMSNorms, attention projections, MLPs,
rotary embedding, LM head) so that the weights and their names stay transformers' own; the routing
modules live beside them under ``routing``. Two execution modes give the same result:

  masked   every unit runs for every token, then the per-token results are selected (research semantics)
  compact  the executed tokens of the whole batch are gathered (flat, [N, d]), the unit runs on those only,
           and the results are scattered back; informed routing's LFF likewise runs on the skipped ones only

For one layer and unit:  y = x + [execute] * gate * Unit(Norm(x)) + [approximate] * LFF(Norm(x))
with [approximate] = valid and not executed, LFF only for informed routing, gate = 1 except for
Mixture-of-Depths (the router weight). Padding tokens neither execute nor approximate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import IrexportError
from ..ops.torch_ops import route_gather, route_index, route_scatter_add, route_seq_index
from .attention import attention_bias, attention_compact, attention_masked, project_kv, sliding_window
from .config import UNITS, RoutingConfig
from .routers import LFF, make_router

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
MODES = ("masked", "compact")


@dataclass
class RoutedOutput:
    logits: torch.Tensor  # [B, T, vocab]
    past_key_values: tuple  # per layer (K, V), each [B, Hkv, S, hd]: the cache after this forward
    execute: torch.Tensor  # bool [L, 2, B, T], unit order as UNITS; unrouted units: True on valid tokens
    margin: torch.Tensor  # float32 [L, 2, B, T], router margin (>= 0 executes); +inf for unrouted units
    valid: torch.Tensor  # bool [B, T], the non-padding tokens of this forward


class UnitRouting(nn.Module):
    def __init__(self, cfg: RoutingConfig, hidden_size: int):
        super().__init__()
        self.router = make_router(cfg, hidden_size)
        self.lff = LFF(hidden_size, cfg.lff_rank) if cfg.has_lff else None


class RoutingModules(nn.Module):
    """``layers[i][unit]`` holds the router (and LFF) of a routed unit; state-dict keys are
    ``layers.{i}.{attention|mlp}.{router|lff}.*``."""

    def __init__(self, cfg: RoutingConfig, hidden_size: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleDict({u: UnitRouting(cfg, hidden_size) for u in UNITS if cfg.is_routed(i, u)})
            for i in range(cfg.num_layers)
        )


class RoutedCausalLM(nn.Module):
    def __init__(self, base: nn.Module, routing_config: RoutingConfig):
        super().__init__()
        config = base.config
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise IrexportError(
                f"model_type {config.model_type!r} is not supported (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
            )
        if routing_config.num_layers != config.num_hidden_layers:
            raise IrexportError(
                f"routing config has {routing_config.num_layers} layers, the model config {config.num_hidden_layers}"
            )
        self.base = base
        self.routing_config = routing_config
        self.routing = RoutingModules(routing_config, config.hidden_size)
        self.eval()

    @property
    def config(self):
        return self.base.config

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, mode="masked",
                force_execute=None):
        """Prefill (no cache) or extend a cache by T tokens.

        attention_mask [B, past + T] (1 = real token) covers the cache too; position_ids default to the
        count of real tokens before each one, which is right for left padding. ``force_execute``
        [L, 2, B, T] overrides the routers' decisions (parity uses it to replay a backend's decisions).
        """
        if mode not in MODES:
            raise IrexportError(f"unknown execution mode {mode!r} (expected one of {', '.join(MODES)})")
        inner = self.base.model
        B, T = input_ids.shape
        past_len = past_key_values[0][0].shape[2] if past_key_values else 0
        # a tensor, not a Python bool: the exported graph takes an empty cache (prefill) or a full one
        cached = torch.scalar_tensor(past_len, dtype=torch.int64) > 0
        if attention_mask is None:
            attention_mask = torch.ones(B, past_len + T, dtype=torch.long, device=input_ids.device)
        key_ok = attention_mask.bool()
        valid = key_ok[:, past_len:]
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(1) - 1).clamp(min=0)[:, past_len:]

        x = inner.embed_tokens(input_ids)
        cos, sin = inner.rotary_emb(x, position_ids)
        layers = inner.layers[: self.config.num_hidden_layers]
        windows = [sliding_window(self.config, i) for i in range(len(layers))]
        # the queries' attention mask, once per sliding window for every layer (not rebuilt per layer), built in
        # layer order (dict.fromkeys) so that every trace of the forward names its nodes alike
        biases = {w: attention_bias(key_ok, past_len, T, w) for w in dict.fromkeys(windows)}
        presents, executes, margins = [], [], []
        for i, layer in enumerate(layers):
            x, present, execute, margin = self._layer(
                i, layer, x, valid, biases[windows[i]], cos, sin,
                past_key_values[i] if past_key_values else None, cached, mode, None if force_execute is None else force_execute[i],
            )
            presents.append(present)
            executes.append(execute)
            margins.append(margin)
        logits = self.base.lm_head(inner.norm(x))
        return RoutedOutput(logits, tuple(presents), torch.stack(executes), torch.stack(margins), valid)

    def _layer(self, i, layer, x, valid, bias, cos, sin, past, cached, mode, force):
        attn = layer.self_attn
        layer_in = x
        present = None
        executes, margins = [], []

        for unit, norm in (("attention", layer.input_layernorm), ("mlp", layer.post_attention_layernorm)):
            h = norm(x)
            if unit == "attention":
                present = project_kv(attn, h, cos, sin, past)  # every token writes K/V
            routing = self.routing.layers[i][unit] if unit in self.routing.layers[i] else None
            if routing is None:
                execute, gate, margin = valid, None, torch.full(valid.shape, float("inf"), device=x.device)
                unit_mode = "masked"  # an unrouted unit is dense: it runs for every token
            else:
                router_in = self._router_input(h, x, layer_in, layer)
                execute, gate, margin = routing.router(router_in, valid, cached)
                if force is not None:
                    execute = force[UNITS.index(unit)] & valid
                unit_mode = mode

            if unit_mode == "compact":
                # only the executed tokens go through the unit; their outputs are added back in place
                index, _ = route_index(execute.int())
                if unit == "attention":
                    slots, _ = route_seq_index(execute.int())
                    out = attention_compact(attn, h, index, slots, cos, sin, *present, bias)
                else:
                    out = layer.mlp(route_gather(h, index))
                if gate is not None:
                    out = out * route_gather(gate.unsqueeze(-1), index).to(out.dtype)
                x = route_scatter_add(self._approximate_compact(x, h, execute, valid, routing), out, index)
            else:
                if unit == "attention":
                    out = attention_masked(attn, h, cos, sin, *present, bias)
                else:
                    out = layer.mlp(h)
                if routing is None:
                    x = x + out
                else:
                    if gate is not None:
                        out = out * gate.unsqueeze(-1).to(out.dtype)
                    x = x + torch.where(execute.unsqueeze(-1), out, torch.zeros((), dtype=out.dtype))
                    x = self._approximate(x, h, execute, valid, routing)
            executes.append(execute)
            margins.append(margin)
        return x, present, torch.stack(executes), torch.stack(margins)

    def _router_input(self, h, x, layer_in, layer):
        kind = self.routing_config.router_input
        if kind == "norm":
            return h
        if kind == "residual":
            return x
        if kind == "layer_residual":
            return layer_in
        return layer.input_layernorm(layer_in)

    @staticmethod
    def _approximate(x, h, execute, valid, routing):
        """Add the LFF estimate for the valid tokens that skip the unit (informed routing only)."""
        if routing.lff is None:
            return x
        approx = (valid & ~execute).unsqueeze(-1)
        return x + torch.where(approx, routing.lff(h), torch.zeros((), dtype=h.dtype))

    @staticmethod
    def _approximate_compact(x, h, execute, valid, routing):
        """``_approximate`` on the skipped tokens only: the LFF runs on their rows [M, d], so a step whose
        tokens all execute reads no LFF weight, and a batch computes the LFF for its skipped tokens alone.
        Each row gets x + LFF as in masked mode (the two index sets are disjoint), up to the rounding of a
        matrix product over fewer rows."""
        if routing.lff is None:
            return x
        skipped, _ = route_index((valid & ~execute).int())
        return route_scatter_add(x, routing.lff(route_gather(h, skipped)), skipped)
