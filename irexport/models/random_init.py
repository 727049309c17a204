"""Tiny random routed models, seeded and deterministic: the embedded default of the demo and the tests.

Random router weights would route (nearly) every token the same way, so each routed unit is
calibrated on a fixed sample, layer by layer in forward order: its decision boundary is moved to the
median of the sample's scores, so about half of the tokens execute and decisions are mixed (the
benchmarks calibrate to other fractions).
"""

from __future__ import annotations

import contextlib
import math

import torch

from ..errors import IrexportError
from .config import FAMILIES, UNITS, RoutingConfig
from .routed import SUPPORTED_MODEL_TYPES, RoutedCausalLM

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2)
BYTE_VOCAB = 257  # byte_tokenizer's ids: 256 bytes and <|endoftext|>
MOD_BIAS = 1.0  # Mixture-of-Depths router weights centre on 1, so the scaled unit output keeps its size


def byte_tokenizer():
    """A byte-level tokenizer (256 byte tokens + <|endoftext|>): any text round-trips, nothing to download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def hf_config(model_type: str, vocab_size: int, **sizes):
    from transformers import CONFIG_MAPPING

    if model_type not in SUPPORTED_MODEL_TYPES:
        raise IrexportError(f"unknown architecture {model_type!r} (expected one of {', '.join(SUPPORTED_MODEL_TYPES)})")
    dims = {**TINY, **{k: v for k, v in sizes.items() if v is not None}}
    extra = {"head_dim": dims["hidden_size"] // dims["num_attention_heads"], "max_position_embeddings": 4096}
    if model_type == "mistral":
        extra["sliding_window"] = 16  # small enough that tests cross it
    special = min(vocab_size, BYTE_VOCAB) - 1  # byte_tokenizer's <|endoftext|> where the vocabulary holds it
    cfg = CONFIG_MAPPING[model_type](vocab_size=vocab_size, tie_word_embeddings=False, eos_token_id=special,
                                     bos_token_id=special, **dims, **extra)
    cfg._attn_implementation = "eager"
    from ..checkpoints.native import check_hf_config

    check_hf_config(cfg.to_dict(), "model sizes")  # the bounds a config.json on disk is held to
    return cfg


def check_fits_in_memory(cfg, rc: RoutingConfig, dtype: torch.dtype = torch.float32) -> None:
    """Refuse sizes whose weights in ``dtype`` exceed this machine's memory, before allocating any of them."""
    import os

    from ..checkpoints.assemble import build_model

    with torch.device("meta"):
        shapes = build_model(cfg, rc)
    need = dtype.itemsize * sum(p.numel() for p in shapes.parameters())
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise IrexportError(f"a model of these sizes holds {need / 2**30:.1f} GiB of {str(dtype).removeprefix('torch.')} "
                            f"weights, more than this machine's {have / 2**30:.1f} GiB of memory")


def routing_config(family: str, num_layers: int, hidden_size: int, units=("attention", "mlp"), **overrides) -> RoutingConfig:
    if family not in FAMILIES:
        raise IrexportError(f"unknown routing family {family!r} (expected one of {', '.join(FAMILIES)})")
    params = {}
    if family in ("informed", "skipgpt"):
        params["router_hidden"] = max(8, hidden_size // 4)
    if family == "informed":
        params["lff_rank"] = max(4, hidden_size // 8)
    if family == "mod":
        params["decode_threshold"] = round(1 / (1 + math.exp(-MOD_BIAS)), 6)
    params.update({k: v for k, v in overrides.items() if v is not None})
    layers = list(range(num_layers))
    return RoutingConfig(family=family, num_layers=num_layers, units={u: layers if u in units else [] for u in UNITS}, **params)


def calibration_ids(vocab_size: int, seed: int, batch: int = 4, seq: int = 32) -> torch.Tensor:
    return torch.randint(0, vocab_size, (batch, seq), generator=torch.Generator().manual_seed(seed + 1))


@torch.no_grad()
def calibrate(model: RoutedCausalLM, input_ids: torch.Tensor, fraction: float = 0.5) -> None:
    """Move every routed unit's decision boundary so that ``fraction`` of the tokens of ``input_ids``
    execute (the median for 0.5; Mixture-of-Depths at 0.5 keeps its router bias, the mean, so that the
    default models stay as they were), in one forward: each router is calibrated on its input just before it
    runs, so the units after it see the calibrated decisions (a forward per unit gives the same result at
    a cost quadratic in depth). Mixture-of-Depths prefill executes its capacity; this sets its decode rule."""
    rc = model.routing_config
    routers = [model.routing.layers[i][u].router for i in range(rc.num_layers) for u in UNITS if rc.is_routed(i, u)]
    hooks = [r.register_forward_pre_hook(lambda mod, args: _centre_in_float32(mod, rc, args[0], fraction))
             for r in routers]
    try:
        model(input_ids)
    finally:
        for hook in hooks:
            hook.remove()


def _midpoint(scores: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """A boundary halfway between two neighbouring distinct scores, with ``fraction`` of them above it.
    Not a score itself: tokens that repeat a sample token's state (same id, no attention yet) would tie on it."""
    u = scores.unique()  # sorted
    k = min(max(1, int(len(u) * (1 - fraction))), len(u) - 1) if len(u) > 1 else 0
    return (u[max(k - 1, 0)] + u[k]) / 2


def _centre_in_float32(router, rc: RoutingConfig, x: torch.Tensor, fraction: float) -> None:
    """Calibrate in float32 whatever the model's dtype (the router is small), then return to that dtype."""
    dtype = x.dtype
    _centre(router.float(), rc, x.float(), fraction)
    router.to(dtype)


def _centre(router, rc: RoutingConfig, x: torch.Tensor, fraction: float) -> None:
    """x: the router's inputs on the sample, [B, T, d]."""
    if rc.family in ("informed", "skipgpt"):
        h = x.flatten(0, 1)
        if router.hidden_layer is not None:
            # keep every ReLU unit alive on ~90% of tokens: a token whose units are all dead gets the
            # constant margin b0 - b1, and many of those would sit exactly on the boundary
            router.hidden_layer.bias -= router.hidden_layer(h).quantile(0.1, dim=0)
        hidden = torch.relu(router.hidden_layer(h)) if router.hidden_layer is not None else h
        logits = router.weight_predictor(hidden)
        m = _midpoint(logits[:, 0] - logits[:, 1], fraction)
        router.weight_predictor.bias += torch.stack([-m / 2, m / 2])
        return
    # Linear routers: the inputs share a large mean direction that pushes every token the same way;
    # remove it from the weight, so scores centre on 0, and scale the scores to a useful spread.
    pooled = rc.family == "router_tuning" and rc.pooling == "sequence"
    samples = x.mean(1) if pooled else x.flatten(0, 1)
    mu = samples.mean(0)
    w = router.proj.weight[0]
    w -= (w @ mu) / (mu @ mu).clamp(min=1e-12) * mu
    w *= (0.5 if rc.family == "mod" else 2.0) / (samples @ w).std().clamp(min=1e-6)
    if rc.family == "mod":
        # r = 1 +- 0.5: the gate stays positive; decode executes where r >= MOD_BIAS (sigmoid vs decode_threshold)
        router.proj.bias.fill_(MOD_BIAS if fraction == 0.5 else MOD_BIAS - _midpoint(samples @ w, fraction))
        return
    # router-tuning has no bias: move the boundary w.x = logit(threshold) onto the median along the mean
    target = math.log(rc.threshold / (1 - rc.threshold)) if 0 < rc.threshold < 1 else 0.0
    shift = _midpoint(samples @ w, fraction) - target
    w -= shift * mu / (mu @ mu).clamp(min=1e-12)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    """Modules built inside allocate and initialize their weights in ``dtype`` (as transformers' from_config
    does for its dtype argument)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def make_random_model(family: str = "informed", model_type: str = "llama", seed: int = 0, units=("attention", "mlp"),
                      vocab_size: int = BYTE_VOCAB, calibrate_routers: bool = True, dtype: torch.dtype = torch.float32,
                      **sizes) -> RoutedCausalLM:
    """A seeded random routed model, built, initialized and calibrated in ``dtype`` (an 8B-class model in
    bfloat16 never holds float32 weights). ``sizes`` override TINY's transformers dimensions; routing
    parameters (router_hidden, lff_rank, threshold, pooling, capacity, router_input) go to the routing config."""
    from ..checkpoints.assemble import build_model

    routing_keys = {"router_hidden", "lff_rank", "threshold", "pooling", "capacity", "router_input", "decode_threshold"}
    overrides = {k: sizes.pop(k) for k in list(sizes) if k in routing_keys}
    cfg = hf_config(model_type, vocab_size, **sizes)
    rc = routing_config(family, cfg.num_hidden_layers, cfg.hidden_size, units, **overrides)
    check_fits_in_memory(cfg, rc, dtype)
    with torch.random.fork_rng(), _default_dtype(dtype):
        torch.manual_seed(seed)
        model = build_model(cfg, rc).to(dtype).eval()
        with torch.no_grad():
            for p in model.routing.parameters():  # torch's default init depends on nothing but the seed
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))
    if calibrate_routers:
        calibrate(model, calibration_ids(vocab_size, seed))
    return model
