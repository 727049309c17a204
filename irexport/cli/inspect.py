"""``irexport inspect``: architecture, routing, parameter counts, and routing statistics on a sample."""

from __future__ import annotations

import json
from pathlib import Path

from .common import BATCH, SEED, SEED_MAX, TOKENS


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="print a model's architecture, routing, parameters and executed fractions",
                       description="Print the architecture, the routing configuration, parameter counts and, on a seeded "
                                   "random sample, the executed fraction per layer and unit and the FLOPs saved against dense.")
    p.add_argument("model", type=Path, help="model directory in irexport's format")
    p.add_argument("--sample-batch", type=BATCH, default=2, help="sample batch size (default: 2)")
    p.add_argument("--sample-tokens", type=TOKENS, default=128, help="sample sequence length (default: 128)")
    p.add_argument("--seed", type=SEED, default=0, help=f"seed of the sample tokens, in [0, {SEED_MAX}] (default: 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=main)


def report(model, batch: int, tokens: int, seed: int) -> dict:
    import torch

    from ..models.stats import summary

    cfg, rc = model.config, model.routing_config
    ids = torch.randint(0, cfg.vocab_size, (batch, tokens), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = model(ids)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "architecture": {"model_type": cfg.model_type, "layers": cfg.num_hidden_layers, "hidden_size": cfg.hidden_size,
                         "intermediate_size": cfg.intermediate_size, "heads": cfg.num_attention_heads,
                         "kv_heads": cfg.num_key_value_heads, "vocab_size": cfg.vocab_size},
        "routing": rc.to_dict(),
        "parameters": {"base": count(model.base), "routing": count(model.routing), "total": count(model)},
        "sample": {"batch": batch, "tokens": tokens, "seed": seed},
        **summary(model, out),
    }


def main(args) -> int:
    from ..checkpoints import load_model

    r = report(load_model(args.model), args.sample_batch, args.sample_tokens, args.seed)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    a, rc, p = r["architecture"], r["routing"], r["parameters"]
    print(f"model        {args.model}")
    print("architecture " + ", ".join(f"{k}={v}" for k, v in a.items()))
    flags = {k: v for k, v in rc.items() if k not in ("format_version", "units", "num_layers")}
    print("routing      " + ", ".join(f"{k}={v}" for k, v in flags.items()))
    for unit, layers in rc["units"].items():
        print(f"  routed {unit:<9} layers {layers if layers else 'none'}")
    print(f"parameters   base {p['base']:,}  routing {p['routing']:,} ({p['routing'] / p['base']:.2%})  total {p['total']:,}")
    print(f"sample       {r['sample']['batch']} x {r['sample']['tokens']} random tokens (seed {r['sample']['seed']})")
    print("  layer  unit       executed")
    for u in r["units"]:
        print(f"  {u['layer']:>5}  {u['unit']:<9}  {u['executed_fraction']:>7.1%}")
    print(f"FLOPs        dense {r['dense_flops']:.3e}  routed {r['routed_flops']:.3e}  saved {r['saved_fraction']:.1%} "
          f"(ideal speedup {r['ideal_speedup']:.2f}x)")
    return 0
