"""The one generation graph, a thin wrapper over the reference's own forward.

  model.onnx  input_ids [batch, sequence], attention_mask [batch, past_sequence + sequence],
              past_key_values.{i}.key / .value [batch, kv_heads, past_sequence, head_dim]
              -> logits, decisions, router_margin, present.{i}.key / present.{i}.value

One graph serves both phases, so the weights exist once in every runtime (one ONNX Runtime session,
one TensorRT engine with a profile per phase): prefill is the graph with an empty cache (past_sequence
= 0), decode the graph with sequence = 1. Names follow Optimum (manifest.input_names). decisions
[layers, 2, batch, seq] (units attention, mlp) and router_margin (float32, >= 0 executes; +inf for
unrouted units) are outputs so parity can compare routing.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.attention import head_dim

OUTPUT_HEAD = ("logits", "decisions", "router_margin")


class Graph(nn.Module):
    def __init__(self, model, mode: str):
        super().__init__()
        self.model = model
        self.mode = mode

    def forward(self, input_ids, attention_mask, *past):
        pairs = tuple((past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2))
        out = self.model(input_ids, attention_mask=attention_mask, past_key_values=pairs, mode=self.mode)
        flat = [t for kv in out.past_key_values for t in kv]
        return (out.logits, out.execute, out.margin, *flat)


def kv_shape(config, batch: int, length: int) -> tuple[int, int, int, int]:
    return batch, config.num_key_value_heads, length, head_dim(config)


def example_inputs(model, dtype: torch.dtype, batch: int = 2, seq: int = 8, past: int = 5):
    """Tracing inputs; the routing decisions they produce do not matter (shapes stay dynamic)."""
    cfg = model.config
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=gen)
    pasts = [torch.randn(kv_shape(cfg, batch, past), generator=gen).to(dtype) for _ in range(2 * cfg.num_hidden_layers)]
    return (ids, torch.ones(batch, past + seq, dtype=torch.long), *pasts)


def dynamic_shapes(model):
    """torch.export's dims. The mask's length gets a dim of its own: torch.export derives dims only from
    one other dim (past + 1), not from a sum of two; the graph's ops hold it to past + sequence, and
    the export renames it manifest.MASK_DIM."""
    max_len = model.config.max_position_embeddings
    batch = torch.export.Dim("batch", max=4096)
    seq = torch.export.Dim("sequence", max=max_len)
    past = torch.export.Dim("past_sequence", min=0, max=max_len - 1)
    total = torch.export.Dim("total_sequence", max=max_len)
    return {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: total},
            "past": tuple({0: batch, 2: past} for _ in range(2 * model.config.num_hidden_layers))}
