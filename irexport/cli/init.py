"""``irexport init``: write a small seeded random routed model in our format."""

from __future__ import annotations

from pathlib import Path

from ..ops.spec import OPS
from .common import SEED, SEED_MAX, SIZE, int_in, log, number_in

FAMILY_CHOICES = ("informed", "skipgpt", "router_tuning", "mod")
ARCH_CHOICES = ("llama", "mistral", "qwen2", "qwen3")


def add_parser(sub) -> None:
    p = sub.add_parser("init", help="write a small random routed model (seeded, deterministic, no downloads)",
                       description="Write a small random routed model in irexport's format. Router weights are calibrated "
                                   "on a fixed sample so that decisions are mixed (about half the tokens execute).")
    p.add_argument("output", type=Path, help="model directory to create")
    p.add_argument("--family", default="informed", choices=FAMILY_CHOICES, help="routing family (default: informed)")
    p.add_argument("--arch", default="llama", choices=ARCH_CHOICES, help="decoder architecture (default: llama)")
    p.add_argument("--seed", type=SEED, default=0, help=f"random seed in [0, {SEED_MAX}] (default: 0)")
    p.add_argument("--layers", type=SIZE, default=None, help="decoder layers (default: 4)")
    p.add_argument("--hidden-size", type=SIZE, default=None, help="hidden size (default: 64)")
    p.add_argument("--intermediate-size", type=SIZE, default=None, help="MLP size (default: 128)")
    p.add_argument("--heads", type=SIZE, default=None, help="attention heads (default: 4)")
    p.add_argument("--kv-heads", type=SIZE, default=None, help="key/value heads (default: 2)")
    p.add_argument("--vocab-size", type=int_in(257, 1 << 24), default=257,
                   help="vocabulary (default: 257, the byte tokenizer's; a larger one sizes the embedding and LM head "
                        "as a real model's, e.g. 128256 for Llama 3, with ids the tokenizer never produces)")
    p.add_argument("--units", default="attention,mlp", help="routed units, comma separated (default: attention,mlp)")
    p.add_argument("--pooling", choices=("token", "sequence"), default=None, help="router_tuning: per token or per sequence")
    capacity = OPS["RouteTopK"].attribute("capacity")  # the op's range, as the routing config and kernels take it
    p.add_argument("--capacity", type=number_in(capacity.low, capacity.high, open_lo=capacity.low_exclusive), default=None,
                   help="mod: executed fraction per sequence (default: 0.5)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                   help="the checkpoint's dtype; the model is built and calibrated in it, never in float32 first "
                        "(default: float32)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output directory")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..checkpoints import save_model
    from ..errors import IrexportError
    from ..models.random_init import TINY, byte_tokenizer, make_random_model
    from ..reference import DTYPES

    units = tuple(u.strip() for u in args.units.split(",") if u.strip())
    if not units or set(units) - {"attention", "mlp"}:
        raise IrexportError(f"--units: expected a comma-separated subset of attention,mlp, got {args.units!r}")
    sizes = {"num_hidden_layers": args.layers, "hidden_size": args.hidden_size, "intermediate_size": args.intermediate_size,
             "num_attention_heads": args.heads, "num_key_value_heads": args.kv_heads}
    hidden = args.hidden_size or TINY["hidden_size"]
    heads, kv = args.heads or TINY["num_attention_heads"], args.kv_heads or TINY["num_key_value_heads"]
    if heads % kv or hidden % heads or (hidden // heads) % 2:
        raise IrexportError("--heads must divide --hidden-size into an even head size and be a multiple of --kv-heads")
    log(f"building a random {args.arch} model with {args.family} routing (seed {args.seed})")
    model = make_random_model(args.family, args.arch, seed=args.seed, units=units, pooling=args.pooling,
                              capacity=args.capacity, dtype=DTYPES[args.dtype],
                              vocab_size=args.vocab_size, **sizes)
    save_model(model, args.output, overwrite=args.overwrite, tokenizer=byte_tokenizer())
    log(f"wrote {args.output}")
    return 0
