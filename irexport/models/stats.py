"""Routing statistics of a forward: executed fraction per layer and unit, and what routing saves
against dense: FLOPs (the ideal where compute bounds the work: prefill, large batches) and bytes read
(the ideal where memory bounds it: decode at small batches).

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


def flops(model: RoutedCausalLM, out: RoutedOutput, past_tokens: torch.Tensor | None = None,
          as_exported: bool = False, rows: torch.Tensor | None = None) -> dict:
    """Dense and routed FLOPs of the forward that produced ``out``; ``past_tokens`` [B]: the valid
    tokens of the cache it extended (none: a prefill).

    ``as_exported`` counts what the exported graphs compute instead of the ideal (the LFF as the compact graph
    runs it; a masked graph runs it on every token): the attention core of
    every query over every key of the cache (masked, not skipped), on the [B, T] layout (dense) or the
    [B, Tq] layout of RouteSeqIndex (compact: Tq = the most tokens any sequence executes), and unrouted
    units on every token (they run masked). The gap between the two is what the graph's layout, not the
    runtime, leaves on the table. ``rows`` [B, T] are the rows counted (default ``out.valid``): pass all ones
    to count padding rows, which the graphs run too; the LFF runs on the valid skipped tokens alone, in both
    counts. The cache's length is taken as the largest of
    ``past_tokens`` (exact when its rows are full, as in the benchmark's decode steps)."""
    cfg = model.config
    d, inter = cfg.hidden_size, cfg.intermediate_size
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = head_dim(cfg)
    valid = out.valid if rows is None else rows
    n_tokens = int(valid.sum())
    # keys each query attends to: the valid keys up to its own slot (ignoring sliding windows)
    context = valid.long().cumsum(1) * valid
    if past_tokens is not None:
        context = context + past_tokens[:, None] * valid
    B, T = valid.shape
    keys = T + (int(past_tokens.max()) if past_tokens is not None else 0)  # every key, as exported
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
                if as_exported:
                    tq = int(execute.sum(1).max()) if n_exec else 0
                    dense_core, routed_core = B * T * keys, B * tq * keys
                else:
                    dense_core, routed_core = int(context.sum()), int((context * execute).sum())
                dense_unit = kv_flops + q_path_token * n_tokens + scores * dense_core
                routed_unit = kv_flops + q_path_token * n_exec + scores * routed_core
            else:
                dense_unit = mlp_token * n_tokens
                routed_unit = mlp_token * n_exec
            dense += dense_unit
            routing = model.routing.layers[i][unit] if unit in model.routing.layers[i] else None
            if routing is None and as_exported:
                routed_unit = dense_unit
            elif routing is not None:
                approximated = int((out.valid & ~execute).sum())
                routed_unit += _router_flops(routing) * n_tokens + _lff_flops(routing) * approximated
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


def _bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def decode_bytes(model: RoutedCausalLM, out: RoutedOutput, past_tokens: int, as_exported: bool = False) -> dict:
    """Bytes a decode step (one token per sequence) reads, dense and routed: every weight it uses once (the
    embedding rows, not the table) and, per sequence, the cache its attention core reads. A unit's weights
    are read when any sequence executes it; a sequence that skips attention reads no cache; routers are
    read, and LFFs when some sequence is approximated. Writing the new K/V is left out, as is the copy of
    the cache from past to present an exported decode graph makes: dense and routed both pay them. This is
    the ideal where reading memory bounds the step (small batches).

    ``as_exported`` counts what the exported compact graph moves instead: the cache copy from past to present
    (read and written, both sides), the attention core over every sequence's cache once any sequence
    executes attention (RouteSeqIndex gives Tq = 1 for the whole batch)."""
    cfg = model.config
    inner = model.base.model
    execute = out.execute[:, :, :, 0]  # [L, 2, B]
    batch = execute.shape[-1]
    kv_token = 2 * cfg.num_key_value_heads * head_dim(cfg) * next(model.parameters()).element_size()
    embed = batch * cfg.hidden_size * inner.embed_tokens.weight.element_size()
    dense = routed = _bytes(model.base.lm_head) + _bytes(inner.norm) + embed
    cache = kv_token * (past_tokens + 1)  # per sequence whose query runs
    copy = 2 * batch * kv_token * past_tokens if as_exported else 0  # past -> present, read and written
    for i, layer in enumerate(inner.layers[: cfg.num_hidden_layers]):
        attn = layer.self_attn
        kv = _bytes(attn.k_proj) + _bytes(attn.v_proj) + _bytes(layer.input_layernorm) + _bytes(layer.post_attention_layernorm)
        kv += sum(_bytes(getattr(attn, n)) for n in ("q_norm", "k_norm") if hasattr(attn, n))
        weights = {"attention": _bytes(attn.q_proj) + _bytes(attn.o_proj), "mlp": _bytes(layer.mlp)}
        dense += kv + sum(weights.values()) + batch * cache + copy
        routed += kv + copy
        for u, unit in enumerate(UNITS):
            runs = int(execute[i, u].sum())
            readers = (batch if runs else 0) if as_exported else runs  # sequences whose core reads the cache
            routed += (weights[unit] if runs else 0) + (readers * cache if unit == "attention" else 0)
            routing = model.routing.layers[i][unit] if unit in model.routing.layers[i] else None
            if routing is not None:
                lff = routing.lff is not None and runs < batch
                routed += _bytes(routing.router) + (_bytes(routing.lff) if lff else 0)
    return {"dense_bytes": dense, "routed_bytes": routed, "ideal_speedup": dense / routed}


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
