"""``irexport convert``: research checkpoints to irexport's format."""

from __future__ import annotations

from pathlib import Path

from .common import log


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert", help="convert research checkpoints (informed routing, SkipGPT, router-tuning) to irexport's format",
        description="Convert research checkpoints to irexport's format. Several files are overlaid in order (a full or "
                    "base model, then partial dicts such as the router-only and lw-only dicts of the informed-routing code). "
                    "The research formats do not store the family or the router input, so they are flags here.")
    p.add_argument("checkpoints", nargs="+", type=Path,
                   help="torch.save state dicts (.pt/.bin), .safetensors files, or directories holding them")
    p.add_argument("-o", "--output", type=Path, required=True, help="model directory to create")
    p.add_argument("--family", required=True, choices=("informed", "skipgpt", "router_tuning"), help="routing family")
    p.add_argument("--base", type=Path, required=True,
                   help="transformers model directory the routers were trained on (config.json, and the base weights "
                        "unless the checkpoint holds them)")
    p.add_argument("--router-input", choices=("norm", "residual", "layer_residual", "layer_norm"), default=None,
                   help="what the routers read (defaults: informed norm = post-norm, skipgpt layer_residual, "
                        "router_tuning layer_norm)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output directory")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..checkpoints import save_model
    from ..checkpoints.research import load_research
    from ..reference import has_tokenizer, load_tokenizer

    log(f"reading {len(args.checkpoints)} checkpoint(s) as {args.family} over {args.base}")
    model = load_research(args.checkpoints, args.family, args.base, args.router_input)
    tokenizer = load_tokenizer(args.base) if has_tokenizer(args.base) else None
    save_model(model, args.output, overwrite=args.overwrite, tokenizer=tokenizer, inputs=[*args.checkpoints, args.base])
    rc = model.routing_config
    log(f"wrote {args.output} ({rc.family}: {len(rc.units['attention'])} routed attention, {len(rc.units['mlp'])} routed MLP units)")
    return 0
