"""``irexport export``: a routed model to ONNX (one graph for prefill and decode + manifest)."""

from __future__ import annotations

from pathlib import Path

from .common import log


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a routed model to ONNX with the routing as custom ops",
                       description="Write OUT/model.onnx (one graph for prefill and decode: new tokens + past K/V, "
                                   "which a prefill passes empty), OUT/weights.data (its weights) and OUT/manifest.json. "
                                   "Routing ops are custom nodes (domain irexport) that carry "
                                   "plugin_namespace/plugin_version and a model-local function body in standard ONNX, so "
                                   "the files run in stock ONNX Runtime and TensorRT can swap in plugins.")
    p.add_argument("model", type=Path, help="model directory in irexport's format")
    p.add_argument("-o", "--output", type=Path, required=True, help="output directory to create")
    p.add_argument("--strategy", default="compact", choices=("compact", "masked"),
                   help="compact: only executed tokens go through the unit (data-dependent shapes); masked: dense "
                        "compute then select, the research semantics (default: compact)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"), help="default: float32")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output directory")
    p.add_argument("--keep-exporter-metadata", action="store_true",
                   help="keep torch.onnx's per-node debug metadata (module paths, stack traces; holds memory addresses, "
                        "so exports are no longer byte-identical across processes)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..checkpoints import load_model
    from ..export.onnx_export import export
    from ..reference import DTYPES

    model = load_model(args.model, DTYPES[args.dtype])  # cast tensor by tensor as read: one copy of the weights
    manifest = export(model, args.output, strategy=args.strategy, dtype=args.dtype, overwrite=args.overwrite,
                      source_dir=args.model, log=log, keep_exporter_metadata=args.keep_exporter_metadata)
    ops = ", ".join(op["name"] for op in manifest["custom_ops"])
    log(f"wrote {args.output} (custom ops: {ops})")
    return 0
