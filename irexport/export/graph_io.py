"""The graph's inputs and outputs: one object owns the contract every exporter, builder and runtime follows.

  model.onnx  input_ids [batch, sequence], attention_mask [batch, past_sequence + sequence],
              past_key_values.{i}.key / .value [batch, kv_heads, past_sequence, head_dim]
              -> logits, decisions, router_margin, present.{i}.key / present.{i}.value

One graph serves both phases (``PHASES``): prefill is the graph with an empty cache (past_sequence = 0),
decode the graph with sequence = 1 and the previous step's present as its past. Names follow Optimum
(its ``OnnxConfigWithPast`` is the model for this object). decisions [layers, 2, batch, seq] (units
attention, mlp) and router_margin (float32, >= 0 executes; +inf for unrouted units) are outputs so parity
can compare routing.

``GraphIO.greedy`` is the one generation loop: every backend (the PyTorch reference, ONNX Runtime,
TensorRT) hands it a ``run(phase, feed) -> outputs`` and gets the same tokens fed the same way (left
padding, one new token per sequence per step). Feeds and outputs are numpy arrays or torch tensors
alike; numpy has no bfloat16, so bfloat16 caches travel as float32 in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IrexportError

PHASES = ("prefill", "decode")  # the graph's two uses; an engine has one optimization profile per phase, in this order
OUTPUT_HEAD = ("logits", "decisions", "router_margin")
MASK_DIM = "past_sequence + sequence"  # attention_mask's length, as the manifest and engine profiles name it
NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": np.float32}


def check_phase(phase: str) -> str:
    if phase not in PHASES:
        raise IrexportError(f"unknown phase {phase!r} (expected one of {', '.join(PHASES)})")
    return phase


def past_names(layers: int) -> list[str]:
    return [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def present_names(layers: int) -> list[str]:
    return [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


@dataclass(frozen=True)
class GraphIO:
    layers: int
    kv_heads: int
    head_dim: int
    dtype: str  # the cache's: float32, float16 or bfloat16

    @classmethod
    def of_config(cls, config, dtype: str = "float32") -> GraphIO:
        from ..models.attention import head_dim

        return cls(config.num_hidden_layers, config.num_key_value_heads, head_dim(config), dtype)

    @classmethod
    def of_manifest(cls, manifest: dict) -> GraphIO:
        _, heads, _, head_dim = manifest["model"]["kv_shape"]
        return cls(manifest["model"]["num_layers"], heads, head_dim, manifest["dtype"])

    @classmethod
    def of_engine_inputs(cls, inputs: dict) -> GraphIO:
        """From an engine profile's inputs ({name: {dtype, min, opt, max}}, as the build record holds them)."""
        pasts = [n for n in inputs if n.startswith("past_key_values.")]
        first = inputs[pasts[0]]
        return cls(len(pasts) // 2, first["min"][1], first["min"][3], first["dtype"])

    @property
    def past_names(self) -> list[str]:
        return past_names(self.layers)

    @property
    def present_names(self) -> list[str]:
        return present_names(self.layers)

    @property
    def input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", *self.past_names]

    @property
    def output_names(self) -> list[str]:
        return [*OUTPUT_HEAD, *self.present_names]

    def kv_shape(self, batch: int, length: int) -> tuple[int, int, int, int]:
        return batch, self.kv_heads, length, self.head_dim

    def example_inputs(self, vocab_size: int, batch: int = 2, seq: int = 8, past: int = 5) -> tuple:
        """Tracing inputs (torch); the routing decisions they produce do not matter (shapes stay dynamic)."""
        import torch

        from ..reference import DTYPES

        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, vocab_size, (batch, seq), generator=gen)
        pasts = [torch.randn(self.kv_shape(batch, past), generator=gen).to(DTYPES[self.dtype]) for _ in self.past_names]
        return (ids, torch.ones(batch, past + seq, dtype=torch.long), *pasts)

    def dynamic_shapes(self, max_positions: int) -> dict:
        """torch.export's dims. The mask's length gets a dim of its own: torch.export derives dims only from
        one other dim (past + 1), not from a sum of two; the graph's ops hold it to past + sequence, and the
        export renames it MASK_DIM."""
        import torch

        batch = torch.export.Dim("batch", max=4096)
        seq = torch.export.Dim("sequence", max=max_positions)
        past = torch.export.Dim("past_sequence", min=0, max=max_positions - 1)
        total = torch.export.Dim("total_sequence", max=max_positions)
        return {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: total},
                "past": tuple({0: batch, 2: past} for _ in self.past_names)}

    def empty_cache(self, batch: int, like=None) -> dict:
        """The past_key_values feed of a prefill, every layer's cache holding no token: numpy arrays, or torch
        tensors on ``like``'s device when ``like`` is a torch tensor."""
        shape = self.kv_shape(batch, 0)
        if like is None or isinstance(like, np.ndarray):
            empty = np.zeros(shape, dtype=NUMPY_DTYPES[self.dtype])
        else:
            import torch

            from ..reference import DTYPES

            empty = torch.empty(shape, dtype=DTYPES[self.dtype], device=like.device)
        return dict.fromkeys(self.past_names, empty)

    def prefill_feed(self, input_ids, attention_mask) -> dict:
        """input_ids / attention_mask with an empty cache: the graph's prefill."""
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                **self.empty_cache(input_ids.shape[0], like=input_ids)}

    def cache_feed(self, outputs: dict) -> dict:
        """A step's present K/V as the next step's past_key_values."""
        return {past: outputs[present] for past, present in zip(self.past_names, self.present_names, strict=True)}

    def next_step(self, feed: dict, outputs: dict) -> dict:
        """The decode step after ``outputs`` of ``feed``: each sequence's greedy next token, the mask grown by
        it, and the outputs' cache."""
        last = outputs["logits"][:, -1]
        if isinstance(last, np.ndarray):
            token = last.argmax(-1).astype(np.int64)[:, None]
            mask = np.concatenate([feed["attention_mask"], np.ones_like(token)], 1)
        else:
            import torch

            token = last.float().argmax(-1, keepdim=True)
            mask = torch.cat([feed["attention_mask"], torch.ones_like(token)], 1)
        return {"input_ids": token, "attention_mask": mask, **self.cache_feed(outputs)}

    def greedy(self, run, input_ids, attention_mask, new_tokens: int) -> np.ndarray:
        """The generation loop of every backend: ``run(phase, feed) -> outputs`` runs the graph once; returns
        the new tokens [batch, new_tokens] (numpy)."""
        if new_tokens == 0:
            return np.zeros((input_ids.shape[0], 0), dtype=np.int64)
        feed = self.prefill_feed(input_ids, attention_mask)
        outputs, generated = run("prefill", feed), []
        for step in range(new_tokens):
            if step:  # a decode step per token after the first; the last token needs no step of its own
                outputs = run("decode", feed)
            feed = self.next_step(feed, outputs)
            generated.append(feed["input_ids"])
        if isinstance(generated[0], np.ndarray):
            return np.concatenate(generated, 1)
        import torch

        return torch.cat(generated, 1).cpu().numpy()
