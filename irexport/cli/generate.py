"""``irexport generate``: greedy generation with ONNX Runtime on an export, or with its TensorRT engines."""

from __future__ import annotations

from pathlib import Path

from .common import add_no_verify, add_routing_ops, int_in


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="greedy generation with ONNX Runtime or TensorRT engines",
                       description="Greedy generation with the exported graph in ONNX Runtime (one session for prefill "
                                   "and decode), or with its TensorRT engine (--engine, irexport.runtime). One JSON line "
                                   "per sequence.")
    p.add_argument("export_dir", type=Path, help="directory written by irexport export")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", action="append", help="text (needs the source model's tokenizer); repeat for a batch")
    src.add_argument("--input-ids", type=Path, help=".npy of token ids [batch, seq]")
    p.add_argument("--max-new-tokens", type=int_in(1, 1 << 16), default=16, help="default: 16")
    p.add_argument("--engine", type=Path, help="engine directory from irexport build: generate with TensorRT")
    p.add_argument("--plugins", type=Path, help="with --engine: plugin library (default: the one the engine was built with)")
    add_routing_ops(p)
    add_no_verify(p)
    p.set_defaults(func=main)


def main(args) -> int:
    import json

    import numpy as np

    from .. import reference
    from ..export.manifest import load_manifest, source_model
    from ..parity.backends import onnxrt_errors
    from ..runtime.onnxrt import OnnxGenerator

    manifest = load_manifest(args.export_dir, verify=not args.no_verify)
    if args.input_ids is not None:
        ids = reference.load_input_ids(args.input_ids, manifest["model"]["vocab_size"])
        mask = np.ones_like(ids)
    else:
        source = source_model(manifest, args.export_dir, "its tokenizer is needed for --prompt: use --input-ids")
        ids, mask = reference.tokenize(source, args.prompt, manifest["model"]["vocab_size"])
    if args.engine is not None:
        from ..runtime.tensorrt import EngineGenerator

        tokens = EngineGenerator(args.engine, args.plugins, manifest).greedy(ids, mask, args.max_new_tokens)
    else:
        with onnxrt_errors(args.export_dir):
            tokens = OnnxGenerator(args.export_dir, manifest=manifest, routing_ops=args.routing_ops).greedy(
                ids, mask, args.max_new_tokens)
    if args.prompt:
        tok = reference.load_tokenizer(source)
        for prompt, row in zip(args.prompt, tokens, strict=False):
            print(json.dumps({"prompt": prompt, "completion": tok.decode(row.tolist()), "tokens": row.tolist()}))
    else:
        for row in tokens:
            print(json.dumps({"tokens": row.tolist()}))
    return 0
