"""GraphIO, the graph's input/output contract and the one greedy loop every backend runs through: numpy feeds
(ONNX Runtime) and torch feeds (the reference, TensorRT) give the same tokens, fed the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny

from irexport.export.graph_io import GraphIO
from irexport.reference import greedy, run_graph


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("mode", ["masked", "compact"])
def test_numpy_and_torch_feeds_generate_the_same_tokens(dtype, mode):
    model = tiny("informed").to(getattr(torch, dtype))
    ids = np.random.default_rng(0).integers(0, model.config.vocab_size, (3, 7))
    mask = np.ones_like(ids)
    mask[1, :3] = 0  # left padding
    as_numpy = GraphIO.of_config(model.config, "float32").greedy(lambda _phase, feed: run_graph(model, feed, mode),
                                                                  ids, mask, 5)
    as_torch = greedy(model, ids, mask, 5, mode)
    assert as_numpy.dtype == as_torch.dtype == np.int64 and as_numpy.shape == (3, 5)
    np.testing.assert_array_equal(as_numpy, as_torch)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_loop_feeds_a_prefill_then_one_token_per_step(backend):
    io = GraphIO(layers=2, kv_heads=2, head_dim=4, dtype="bfloat16")
    ids, mask = np.array([[5, 6, 7], [0, 8, 9]]), np.array([[1, 1, 1], [0, 1, 1]])
    if backend == "torch":
        ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)
    seen = []

    def run(phase, feed):
        seen.append((phase, tuple(feed["input_ids"].shape), tuple(feed["attention_mask"].shape),
                     tuple(feed["past_key_values.1.value"].shape), str(feed["past_key_values.0.key"].dtype)))
        length = feed["attention_mask"].shape[1]
        logits = np.zeros((2, feed["input_ids"].shape[1], 11), np.float32)
        logits[:, -1, length % 11] = 1  # the next token: the mask's length, so each step's token is known
        cache = np.zeros(io.kv_shape(2, length), np.float32)
        if backend == "torch":
            logits, cache = torch.from_numpy(logits), torch.from_numpy(cache)
        return {"logits": logits, **dict.fromkeys(io.present_names, cache)}

    tokens = io.greedy(run, ids, mask, 3)
    assert tokens.tolist() == [[3, 4, 5], [3, 4, 5]] and isinstance(tokens, np.ndarray)
    empty = "float32" if backend == "numpy" else "torch.bfloat16"  # numpy has no bfloat16
    assert seen == [("prefill", (2, 3), (2, 3), (2, 2, 0, 4), empty),
                    ("decode", (2, 1), (2, 4), (2, 2, 3, 4), "float32" if backend == "numpy" else "torch.float32"),
                    ("decode", (2, 1), (2, 5), (2, 2, 4, 4), "float32" if backend == "numpy" else "torch.float32")]
    assert io.greedy(run, ids, mask, 0).shape == (2, 0)
