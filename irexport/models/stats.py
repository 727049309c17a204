"""Routing statistics of a forward: executed fraction per layer and unit, and FLOPs against dense.

FLOPs count 2 per multiply-add of the matrix products (projections, attention scores and values,
MLP, router, LFF, LM head); norms, rotary and softmax are left out, as is usual. The routed count
includes the overhead routing adds (routers for every token, the LFF for approximated tokens) and
keeps K/V projections for every token, since skipped tokens still write the cache.
"""

from __future__ import annotations

import torch

from .attention import head_dim
from .config import UNITS
from .routed import RoutedCausalLM, RoutedOutput


def executed_fraction(out: RoutedOutput) -> torch.Tensor:
    """[L, 2] fraction of the valid tokens that executed each unit (unit order as UNITS)."""
    n = out.valid.sum().clamp(min=1)
    return (out.execute & out.valid).sum(dim=(2, 3)).double() / n


def _router_flops(unit_routing) -> int:
    return 2 * sum(m.in_features * m.out_features for m in unit_routing.router.modules() if isinstance(m, torch.nn.Linear))


def _lff_flops(unit_routing) -> int:
    lff = unit_routing.lff
    return 0 if lff is None else 2 * sum(m.in_features * m.out_features for m in (lff.linear1, lff.linear2))


def flops(model: RoutedCausalLM, out: RoutedOutput) -> dict:
    """Dense and routed FLOPs of the forward (without a cache) that produced ``out``."""
    cfg = model.config
    d, inter = cfg.hidden_size, cfg.intermediate_size
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = head_dim(cfg)
    valid = out.valid
    n_tokens = int(valid.sum())
    # keys each query attends to: the valid keys up to its own slot (ignoring sliding windows)
    context = valid.long().cumsum(1) * valid
    q_path_token = 2 * (d * heads * hd * 2)  # Q and O projections
    kv_flops = 2 * d * kv_heads * hd * 2 * n_tokens
    mlp_token = 2 * 3 * d * inter

    dense = routed = 0
    for i in range(cfg.num_hidden_layers):
        for u, unit in enumerate(UNITS):
            execute = out.execute[i, u] & valid
            n_exec = int(execute.sum())
            if unit == "attention":
                scores = 2 * 2 * heads * hd  # QK^T and PV per (query, key)
                dense_unit = kv_flops + q_path_token * n_tokens + scores * int(context.sum())
                routed_unit = kv_flops + q_path_token * n_exec + scores * int((context * execute).sum())
            else:
                dense_unit = mlp_token * n_tokens
                routed_unit = mlp_token * n_exec
            dense += dense_unit
            routing = model.routing.layers[i][unit] if unit in model.routing.layers[i] else None
            if routing is not None:
                routed_unit += _router_flops(routing) * n_tokens + _lff_flops(routing) * (n_tokens - n_exec)
            routed += routed_unit
    head = 2 * d * cfg.vocab_size * n_tokens
    dense += head
    routed += head
    return {
        "tokens": n_tokens,
        "dense_flops": dense,
        "routed_flops": routed,
        "saved_fraction": 1 - routed / dense if dense else 0.0,
        "ideal_speedup": dense / routed if routed else float("inf"),
    }


def summary(model: RoutedCausalLM, out: RoutedOutput) -> dict:
    """JSON-ready statistics: executed fraction per routed layer and unit, and FLOPs."""
    frac = executed_fraction(out)
    rc = model.routing_config
    per_unit = [
        {"layer": i, "unit": unit, "executed_fraction": round(float(frac[i, u]), 6)}
        for i in range(rc.num_layers)
        for u, unit in enumerate(UNITS)
        if rc.is_routed(i, unit)
    ]
    return {"units": per_unit, **flops(model, out)}
