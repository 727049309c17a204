"""Routed self-attention over a transformers attention module's own weights.

K and V are computed for every token (skipped tokens still write the KV cache, so it stays complete);
only the query path (Q projection, scores, O projection) runs for the executed tokens in compact mode:
the projections on the executed tokens of the whole batch [N, d], the attention core per sequence on
its executed queries [B, Tq]. Masked mode runs the query path for every token, as the research code does.
"""

from __future__ import annotations

import torch
from transformers.models.llama.modeling_llama import rotate_half

from ..ops.torch_ops import route_gather, route_scatter_add


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + rotate_half(x) * sin


def _project_q(attn, h: torch.Tensor) -> torch.Tensor:
    """[..., d] -> [..., H, hd], with Qwen3's per-head q_norm when the module has one."""
    q = attn.q_proj(h).unflatten(-1, (-1, attn.head_dim))
    return attn.q_norm(q) if hasattr(attn, "q_norm") else q


def project_kv(attn, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, past):
    """K/V of every token, appended to ``past``; returns the full (K, V), each [B, Hkv, S, hd]."""
    k = attn.k_proj(h).unflatten(-1, (-1, attn.head_dim))
    if hasattr(attn, "k_norm"):
        k = attn.k_norm(k)
    k = rope(k.transpose(1, 2), cos.unsqueeze(1), sin.unsqueeze(1))
    v = attn.v_proj(h).unflatten(-1, (-1, attn.head_dim)).transpose(1, 2)
    if past is not None:
        k = torch.cat([past[0], k], dim=2)
        v = torch.cat([past[1], v], dim=2)
    return k, v


def attend(attn, q, k, v, q_slot, key_ok, window):
    """Softmax attention of queries q [B, H, Tq, hd] at cache slots q_slot [B, Tq] over k/v [B, Hkv, S, hd].

    A query sees the valid keys (key_ok [B, S]) at slots <= its own (and within the sliding window).
    Scores, mask and softmax run in float32 (in float16 the mask's minimum plus a negative score would
    round to -inf and turn fully masked padding rows into NaN); fully masked rows stay finite.
    The G query heads that share a KV head are stacked against it ([B, Hkv, G*Tq, hd]) instead of
    repeating K and V G times: the same products, without copying the cache.
    """
    B, H, Tq, hd = q.shape
    Hkv = k.shape[1]
    key_slot = torch.arange(k.shape[2], device=k.device)
    allowed = key_ok[:, None, :] & (key_slot[None, None, :] <= q_slot[:, :, None])
    if window:
        allowed &= (q_slot[:, :, None] - key_slot[None, None, :]) < window
    # an additive mask built once per [B, 1, 1, Tq, S], as transformers' eager attention does: a broadcast
    # Add is far cheaper in ONNX Runtime than a Where over every head's scores
    bias = torch.zeros(allowed.shape, device=q.device).masked_fill(~allowed, torch.finfo(torch.float32).min)
    scores = torch.matmul(q.reshape(B, Hkv, -1, hd), k.transpose(2, 3)).float() * attn.scaling
    scores = scores.unflatten(2, (H // Hkv, Tq)) + bias[:, None, None]
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype).flatten(2, 3)
    return torch.matmul(probs, v).reshape(B, H, Tq, hd).transpose(1, 2).flatten(2)  # [B, Tq, H*hd]


def attention_masked(attn, h, cos, sin, k, v, past_len, key_ok, window):
    """Query path for every token: [B, T, d]."""
    B, T, _ = h.shape
    q = rope(_project_q(attn, h).transpose(1, 2), cos.unsqueeze(1), sin.unsqueeze(1))
    q_slot = (past_len + torch.arange(T, device=h.device)).expand(B, T)
    return attn.o_proj(attend(attn, q, k, v, q_slot, key_ok, window))


def attention_compact(attn, h, index, slots, cos, sin, k, v, past_len, key_ok, window):
    """Query path for the executed tokens only: [N, d] for the rows of ``index`` (RouteIndex).

    The projections run on the executed tokens of the whole batch; the core runs per sequence on the
    layout of ``slots`` (RouteSeqIndex), where padding entries (-1) get slot -1, see no key, and are
    dropped when the rows go back to the flat layout.
    """
    B, T, _ = h.shape
    q = _project_q(attn, route_gather(h, index))  # [N, H, hd]
    q = rope(q, route_gather(cos, index).unsqueeze(1), route_gather(sin, index).unsqueeze(1))
    q_seq = route_gather(q.flatten(1), slots).unflatten(-1, (-1, attn.head_dim)).transpose(1, 2)  # [B, H, Tq, hd]
    slot = (past_len + torch.arange(T, device=h.device)).expand(B, T).reshape(-1)[index]  # cache slot of each query
    q_slot = torch.where(slots >= 0, slot[slots.clamp(min=0)], -1)
    out = attend(attn, q_seq, k, v, q_slot, key_ok, window)  # [B, Tq, H*hd]
    return attn.o_proj(route_scatter_add(out.new_zeros(q.shape[0], out.shape[-1]), out, slots))


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def sliding_window(config, layer_idx: int) -> int | None:
    """The layer's sliding window, as transformers decides it for Mistral / Qwen2 / Qwen3."""
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return window if layer_types[layer_idx] == "sliding_attention" else None
    return window
