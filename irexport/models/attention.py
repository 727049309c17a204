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


def attention_bias(key_ok: torch.Tensor, past_len, T: int, window) -> torch.Tensor:
    """The additive mask of every new token's query [B, T, S], built once per forward and shared by the layers
    (per sliding window): 0 where the query at cache slot past_len + t sees a key (a valid one, at a slot <= its
    own, within the window), float32's minimum elsewhere. An additive mask, as transformers' eager attention
    uses: a broadcast Add is far cheaper in ONNX Runtime than a Where over every head's scores."""
    key_slot = torch.arange(key_ok.shape[1], device=key_ok.device)
    q_slot = past_len + torch.arange(T, device=key_ok.device)
    allowed = key_ok[:, None, :] & (key_slot[None, None, :] <= q_slot[None, :, None])
    if window:
        allowed &= (q_slot[None, :, None] - key_slot[None, None, :]) < window
    return torch.zeros(allowed.shape, device=key_ok.device).masked_fill(~allowed, torch.finfo(torch.float32).min)


def attend(attn, q, k, v, bias):
    """Softmax attention of queries q [B, H, Tq, hd] over k/v [B, Hkv, S, hd], with each query's additive mask
    bias [B, Tq, S] (``attention_bias``'s rows).

    Scores, mask and softmax run in float32 (in float16 the mask's minimum plus a negative score would round to
    -inf and turn fully masked padding rows into NaN); fully masked rows stay finite. The G query heads that
    share a KV head are stacked against it ([B, Hkv, G*Tq, hd]) instead of repeating K and V G times: the same
    products, without copying the cache.
    """
    B, H, Tq, hd = q.shape
    Hkv = k.shape[1]
    scores = torch.matmul(q.reshape(B, Hkv, -1, hd), k.transpose(2, 3)).float() * attn.scaling
    scores = scores.unflatten(2, (H // Hkv, Tq)) + bias[:, None, None]
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype).flatten(2, 3)
    return torch.matmul(probs, v).reshape(B, H, Tq, hd).transpose(1, 2).flatten(2)  # [B, Tq, H*hd]


def attention_masked(attn, h, cos, sin, k, v, bias):
    """Query path for every token: [B, T, d]."""
    q = rope(_project_q(attn, h).transpose(1, 2), cos.unsqueeze(1), sin.unsqueeze(1))
    return attn.o_proj(attend(attn, q, k, v, bias))


def attention_compact(attn, h, index, slots, cos, sin, k, v, bias):
    """Query path for the executed tokens only: [N, d] for the rows of ``index`` (RouteIndex).

    The projections run on the executed tokens of the whole batch; the core runs per sequence on the
    layout of ``slots`` (RouteSeqIndex). Each query takes its row of ``bias``; padding entries (-1) take a
    zero row (finite, and dropped when the rows go back to the flat layout).
    """
    q = _project_q(attn, route_gather(h, index))  # [N, H, hd]
    q = rope(q, route_gather(cos, index).unsqueeze(1), route_gather(sin, index).unsqueeze(1))
    q_seq = route_gather(q.flatten(1), slots).unflatten(-1, (-1, attn.head_dim)).transpose(1, 2)  # [B, H, Tq, hd]
    # each slot's mask row: the executed tokens' rows [N, S], laid out like the queries (two gathers are fewer
    # nodes than composing the two indices in the graph)
    out = attend(attn, q_seq, k, v, route_gather(route_gather(bias, index), slots))  # [B, Tq, H*hd]
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
