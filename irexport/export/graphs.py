"""The two generation graphs, as thin wrappers over the reference's own forward.

  prefill  input_ids [batch, sequence], attention_mask [batch, sequence]
           -> logits, decisions, router_margin, present.{i}.key / present.{i}.value
  decode   input_ids [batch, 1], attention_mask [batch, past_sequence + 1],
           past_key_values.{i}.key / .value [batch, kv_heads, past_sequence, head_dim] -> the same outputs

Names follow Optimum. decisions [layers, 2, batch, seq] (units attention, mlp) and router_margin
(float32, >= 0 executes; +inf for unrouted units) are outputs so parity can compare routing.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.attention import head_dim

OUTPUT_HEAD = ("logits", "decisions", "router_margin")


def present_names(num_layers: int) -> list[str]:
    return [f"present.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]


def past_names(num_layers: int) -> list[str]:
    return [f"past_key_values.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]


class _Graph(nn.Module):
    def __init__(self, model, mode: str):
        super().__init__()
        self.model = model
        self.mode = mode

    def _outputs(self, out):
        flat = [t for kv in out.past_key_values for t in kv]
        return (out.logits, out.execute, out.margin, *flat)


class Prefill(_Graph):
    def forward(self, input_ids, attention_mask):
        return self._outputs(self.model(input_ids, attention_mask=attention_mask, mode=self.mode))


class Decode(_Graph):
    def forward(self, input_ids, attention_mask, *past):
        pairs = tuple((past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2))
        return self._outputs(self.model(input_ids, attention_mask=attention_mask, past_key_values=pairs, mode=self.mode))


def kv_shape(config, batch: int, length: int) -> tuple[int, int, int, int]:
    return batch, config.num_key_value_heads, length, head_dim(config)


def example_inputs(model, graph: str, dtype: torch.dtype, batch: int = 2, seq: int = 8, past: int = 5):
    """Tracing inputs; the routing decisions they produce do not matter (shapes stay dynamic)."""
    cfg = model.config
    gen = torch.Generator().manual_seed(0)
    if graph == "prefill":
        ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=gen)
        return ids, torch.ones(batch, seq, dtype=torch.long)
    ids = torch.randint(0, cfg.vocab_size, (batch, 1), generator=gen)
    pasts = [torch.randn(kv_shape(cfg, batch, past), generator=gen).to(dtype) for _ in range(2 * cfg.num_hidden_layers)]
    return (ids, torch.ones(batch, past + 1, dtype=torch.long), *pasts)


def dynamic_shapes(model, graph: str):
    batch = torch.export.Dim("batch", max=4096)
    if graph == "prefill":
        seq = torch.export.Dim("sequence", max=model.config.max_position_embeddings)
        return {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    past = torch.export.Dim("past_sequence", max=model.config.max_position_embeddings - 1)
    return {"input_ids": {0: batch}, "attention_mask": {0: batch, 1: past + 1},
            "past": tuple({0: batch, 2: past} for _ in range(2 * model.config.num_hidden_layers))}
