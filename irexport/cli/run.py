"""``irexport run``: the reference forward on given tokens, saved as golden outputs."""

from __future__ import annotations

from pathlib import Path

from .common import add_dtype_mode, log


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the PyTorch reference and save logits and routing decisions",
                       description="Run the PyTorch reference and write OUT/outputs.npz (logits, decisions [layers, 2, "
                                   "batch, seq] with units attention, mlp; router_margin), OUT/outputs.polygraphy.json and "
                                   "OUT/inputs.polygraphy.json (for polygraphy run --load-outputs / --load-inputs) and "
                                   "OUT/run.json (settings and routing statistics).")
    p.add_argument("model", type=Path, help="model directory in irexport's format")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input-ids", type=Path, help=".npy of integer token ids, shape [batch, seq]")
    src.add_argument("--text", action="append", help="text through the model's tokenizer (repeat for a batch; left padded)")
    p.add_argument("--attention-mask", type=Path, help=".npy 0/1 mask of shape [batch, seq] for --input-ids (default: all 1)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output directory to create")
    add_dtype_mode(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output directory")
    p.set_defaults(func=main)


def main(args) -> int:
    import numpy as np

    from .. import reference
    from ..atomic import atomic_dir
    from ..checkpoints import load_model
    from ..errors import IrexportError
    from ..models.stats import summary

    if args.attention_mask is not None and args.input_ids is None:
        raise IrexportError("--attention-mask goes with --input-ids (text is padded by the tokenizer)")
    model = load_model(args.model, reference.DTYPES[args.dtype])
    if args.input_ids is not None:
        ids = reference.load_input_ids(args.input_ids, model.config.vocab_size)
        mask = reference.load_attention_mask(args.attention_mask, ids.shape) if args.attention_mask else None
    else:
        ids, mask = reference.tokenize(args.model, args.text, model.config.vocab_size)
    log(f"running {args.model} on {ids.shape[0]}x{ids.shape[1]} tokens ({args.dtype}, {args.mode})")
    out, outputs = reference.run(model, ids, mask, args.dtype, args.mode)
    feed = {"input_ids": ids, "attention_mask": mask if mask is not None else np.ones_like(ids)}
    meta = {"model": str(args.model), "dtype": args.dtype, "mode": args.mode, "runner": reference.RUNNER_NAME,
            "shapes": {k: list(v.shape) for k, v in {**feed, **outputs}.items()},
            "routing": model.routing_config.to_dict(), "stats": summary(model, out)}
    inputs = [p for p in (args.model, args.input_ids, args.attention_mask) if p is not None]
    with atomic_dir(args.output, overwrite=args.overwrite, inputs=inputs) as tmp:
        reference.save(tmp, outputs, feed, meta)
    log(f"wrote {args.output} (executed {1 - meta['stats']['saved_fraction']:.0%} of dense FLOPs)")
    return 0
