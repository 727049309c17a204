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
    index = (execute != 0).flatten().nonzero().squeeze(1)  # int32 mask across the op boundary (no bool in TensorRT)
    return index, torch.tensor(index.numel(), dtype=torch.int32, device=execute.device)


@route_index.register_fake
def _(execute):
    n = torch.library.get_ctx().new_dynamic_size()
    return execute.new_empty(n, dtype=torch.long), execute.new_empty((), dtype=torch.int32)


@torch.library.custom_op("irexport::route_seq_index", mutates_args=())
def route_seq_index(execute: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    counts = (execute != 0).sum(1)
    tq = int(counts.max()) if counts.numel() else 0
    first = counts.cumsum(0) - counts  # where each sequence's tokens start in RouteIndex's list
    j = torch.arange(tq, device=execute.device)
    slots = torch.where(j < counts[:, None], first[:, None] + j, -1)
    return slots, torch.tensor(tq, dtype=torch.int32, device=execute.device)


@route_seq_index.register_fake
def _(execute):
    tq = torch.library.get_ctx().new_dynamic_size()
    return execute.new_empty(execute.shape[0], tq, dtype=torch.long), execute.new_empty((), dtype=torch.int32)


@torch.library.custom_op("irexport::route_gather", mutates_args=())
def route_gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    rows = x.reshape(-1, x.shape[-1])[index.clamp(min=0)]
    return torch.where((index >= 0).unsqueeze(-1), rows, torch.zeros((), dtype=x.dtype))


@route_gather.register_fake
def _(x, index):
    return x.new_empty(*index.shape, x.shape[-1])


@torch.library.custom_op("irexport::route_scatter_add", mutates_args=())
def route_scatter_add(x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    rows = x.reshape(-1, x.shape[-1])
    dest = torch.where(index >= 0, index, rows.shape[0]).flatten()  # -1 entries go to a spare row, dropped
    out = torch.cat([rows, rows.new_zeros(1, rows.shape[1])]).index_add(0, dest, y.reshape(-1, rows.shape[1]).to(x.dtype))
    return out[: rows.shape[0]].reshape(x.shape)


@route_scatter_add.register_fake
def _(x, y, index):
    return torch.empty_like(x)
