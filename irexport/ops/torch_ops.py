"""The routing ops as torch custom ops (``torch.ops.irexport.*``), with fake implementations so
that torch.export traces through them. The reference calls these in both execution modes, and the
ONNX export turns each call into one custom node, so reference and export share one code path."""

from __future__ import annotations

import math

import torch


@torch.library.custom_op("irexport::route_argmax", mutates_args=())
def route_argmax(scores: torch.Tensor) -> torch.Tensor:
    s = scores.float()
    return s[..., 0] - s[..., 1]


@torch.library.custom_op("irexport::route_threshold", mutates_args=())
def route_threshold(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    return torch.sigmoid(scores[..., 0].float()) - threshold


@torch.library.custom_op("irexport::route_topk", mutates_args=())
def route_topk(scores: torch.Tensor, valid: torch.Tensor, capacity: float) -> torch.Tensor:
    valid = valid != 0  # int32 across the op boundary (TensorRT plugins take no bool)
    r = scores[..., 0].float()
    n = valid.sum(1, keepdim=True)
    k = torch.ceil(n.float() * torch.tensor(capacity, dtype=torch.float32)).long()  # float32, as in the ONNX body
    ranked = r.masked_fill(~valid, -math.inf).sort(dim=1, descending=True).values
    kth = ranked.gather(1, (k - 1).clamp(min=0))
    nxt = ranked.gather(1, k.clamp(max=r.shape[1] - 1))
    nxt = torch.where(k < n, nxt, kth - 1.0)
    return r - (kth + nxt) / 2  # the boundary lies halfway between the last kept and the first dropped


@route_argmax.register_fake
def _(scores):
    return scores.new_empty(scores.shape[:-1], dtype=torch.float32)


@route_threshold.register_fake
def _(scores, threshold):
    return scores.new_empty(scores.shape[:-1], dtype=torch.float32)


@route_topk.register_fake
def _(scores, valid, capacity):
    return scores.new_empty(scores.shape[:-1], dtype=torch.float32)


@torch.library.custom_op("irexport::route_index", mutates_args=())
def route_index(execute: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    execute = execute != 0  # int32 across the op boundary (TensorRT plugins take no bool)
    B, T = execute.shape
    counts = execute.sum(1)
    tq = int(counts.max()) if B else 0
    rank = execute.long().cumsum(1) - 1
    dest = torch.where(execute, rank, tq)  # tokens that do not execute land in a spare column
    index = torch.full((B, tq + 1), -1, dtype=torch.long, device=execute.device)
    index.scatter_(1, dest, torch.arange(T, device=execute.device).expand(B, T).contiguous())
    return index[:, :tq].contiguous(), torch.tensor(tq, dtype=torch.int32, device=execute.device)


@route_index.register_fake
def _(execute):
    tq = torch.library.get_ctx().new_dynamic_size()
    return execute.new_empty(execute.shape[0], tq, dtype=torch.long), execute.new_empty((), dtype=torch.int32)


@torch.library.custom_op("irexport::route_gather", mutates_args=())
def route_gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    rows = torch.gather(x, 1, index.clamp(min=0).unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return torch.where((index >= 0).unsqueeze(-1), rows, torch.zeros((), dtype=x.dtype))


@route_gather.register_fake
def _(x, index):
    return x.new_empty(index.shape[0], index.shape[1], x.shape[2])


@torch.library.custom_op("irexport::route_scatter_add", mutates_args=())
def route_scatter_add(x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    B, T, D = x.shape
    dest = torch.where(index >= 0, index, T).unsqueeze(-1).expand(-1, -1, D)  # padding rows go to a spare row
    out = torch.cat([x, x.new_zeros(B, 1, D)], 1).scatter_add(1, dest, y.to(x.dtype))
    return out[:, :T].contiguous()


@route_scatter_add.register_fake
def _(x, y, index):
    return torch.empty_like(x)
