"""The one generation graph, a thin wrapper over the reference's own forward: flat past K/V in, the
outputs of ``graph_io`` out (the contract of its inputs and outputs lives there)."""

from __future__ import annotations

from torch import nn


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
