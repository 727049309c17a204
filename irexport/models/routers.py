"""Routers and the Lightweight Feature Forecaster, one router class per family.

Every router maps the router input [B, T, d], the valid-token mask [B, T] and ``cached`` (a 0-d bool
tensor: this forward extends a non-empty KV cache) to a ``Route``:
  execute  bool [B, T]   run the unit for this token (padding never executes)
  gate     [B, T]|None   scale of the executed unit output (Mixture-of-Depths' router weight)
  margin   float [B, T]  signed distance of the decision from its boundary (>= 0 executes); the parity
                         checks use it to tell a near-tie flip from a real disagreement
Inference is deterministic: no Gumbel noise, no sampling.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..ops.torch_ops import route_argmax, route_threshold, route_topk


class Route(NamedTuple):
    execute: torch.Tensor
    gate: torch.Tensor | None
    margin: torch.Tensor


def decide(margin, valid, gate=None) -> Route:
    """Margins come from the Route* decision ops, so each decision is one custom node in the ONNX export."""
    return Route(execute=(margin >= 0) & valid, gate=gate, margin=margin)


class MLPRouter(nn.Module):
    """Informed routing and SkipGPT: Linear(d,h) -> ReLU -> Linear(h,2); argmax, class 0 = execute.

    ``router_hidden=0`` is the single Linear(d,2) of the released SkipGPT routers. Attribute names follow
    the published code (``hidden_layer``, ``weight_predictor``) so research state dicts map key for key.
    """

    def __init__(self, hidden_size: int, router_hidden: int):
        super().__init__()
        self.hidden_layer = nn.Linear(hidden_size, router_hidden) if router_hidden else None
        self.weight_predictor = nn.Linear(router_hidden or hidden_size, 2)

    def forward(self, x: torch.Tensor, valid: torch.Tensor, cached: torch.Tensor) -> Route:
        if self.hidden_layer is not None:
            x = torch.relu(self.hidden_layer(x))
        return decide(route_argmax(self.weight_predictor(x)), valid)


class LinearRouter(nn.Module):
    """Router-tuning (MindSkip): sigmoid(Linear(d,1,bias=False)) >= threshold executes.

    ``pooling="sequence"`` routes a whole sequence at once on the mean of its valid tokens' router
    inputs (the mean over the tokens of this forward call).
    """

    def __init__(self, hidden_size: int, threshold: float, pooling: str):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1, bias=False)
        self.threshold = threshold
        self.pooling = pooling

    def forward(self, x: torch.Tensor, valid: torch.Tensor, cached: torch.Tensor) -> Route:
        if self.pooling == "sequence":
            w = valid.float().unsqueeze(-1)  # pooled in float32: a float16 sum over a long sequence overflows
            pooled = (x.float() * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1)
            scores = self.proj(pooled.to(x.dtype)).expand(-1, valid.shape[1], -1)
        else:
            scores = self.proj(x)
        return decide(route_threshold(scores, float(self.threshold)), valid)


class TopKRouter(nn.Module):
    """Mixture-of-Depths: router weight r = Linear(d,1)(x); per sequence the top ceil(capacity * n_valid)
    tokens execute and their unit output is multiplied by r.

    Top-k over a sequence is not causal, so a forward that extends a KV cache (decode) decides per token
    instead: execute where sigmoid(r) >= decode_threshold, the causal predictor the MoD paper trains
    next to the router. Prefill + decode therefore differs from one full-sequence forward by design.
    """

    def __init__(self, hidden_size: int, capacity: float, decode_threshold: float):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        self.capacity = capacity
        self.decode_threshold = decode_threshold

    def forward(self, x: torch.Tensor, valid: torch.Tensor, cached: torch.Tensor) -> Route:
        r = self.proj(x)
        # both rules, selected per call: one exported graph serves prefill (empty cache) and decode
        causal = route_threshold(r, float(self.decode_threshold))
        topk = route_topk(r, valid.int(), float(self.capacity))
        return decide(torch.where(cached, causal, topk), valid, gate=r[..., 0])


class LFF(nn.Module):
    """Lightweight Feature Forecaster: Linear(d,r) -> SiLU -> Linear(r,d), approximating a unit's output."""

    def __init__(self, hidden_size: int, rank: int):
        super().__init__()
        self.linear1 = nn.Linear(hidden_size, rank)
        self.linear2 = nn.Linear(rank, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(nn.functional.silu(self.linear1(x)))


def make_router(cfg, hidden_size: int) -> nn.Module:
    if cfg.family in ("informed", "skipgpt"):
        return MLPRouter(hidden_size, cfg.router_hidden)
    if cfg.family == "router_tuning":
        return LinearRouter(hidden_size, cfg.threshold, cfg.pooling)
    return TopKRouter(hidden_size, cfg.capacity, cfg.decode_threshold)
