"""What an export costs: time and peak memory of ``irexport init`` and ``irexport export``, bytes on disk,
the time to verify ``weights.data`` against the manifest (first use, then remembered), the peak memory of
``irexport generate`` and ``irexport parity`` (ONNX Runtime, one session for both phases; for bfloat16,
which ONNX Runtime's CPU provider cannot run, the reference half of parity), for a generated model of a
given size. Each step runs as its own process (its peak RSS is its own, from wait4).

    python benchmarks/export_footprint.py                                   # ~120M parameters (fp32), a few minutes
    python benchmarks/export_footprint.py --hidden 2048 --intermediate 5632 --layers 22 --heads 32 --kv-heads 4 \\
        --name 1b                                                           # ~1B parameters (TinyLlama's shapes)
    python benchmarks/export_footprint.py --hidden 3072 --intermediate 8192 --layers 28 --heads 24 --kv-heads 8 \\
        --init-dtype float32 --dtype bfloat16 --name 3b                     # ~3B parameters (Llama-3.2-3B's layers)
    python benchmarks/export_footprint.py --hidden 4096 --intermediate 14336 --layers 32 --heads 32 --kv-heads 8 \\
        --vocab 128256 --dtype bfloat16 --name 8b                           # 8.6B parameters (Llama-3-8B's + routing)

The checkpoint is written in the export's dtype (``irexport init --dtype``) unless ``--init-dtype`` says
otherwise. Verification runs with a cache directory of its own: the first use hashes, the second finds it
remembered.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from irexport.filehash import SETTLED_NS

ROOT = Path(__file__).resolve().parents[1]
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}


# the reference half of `irexport parity`: the model in the export's dtype, run in it and in float32
PARITY_REFERENCE = """
import sys
from irexport.checkpoints import load_model
from irexport.export.manifest import load_manifest
from irexport.export.graph_io import GraphIO
from irexport.parity.check import sample_inputs
from irexport.reference import DTYPES, run_graph
manifest = load_manifest(sys.argv[1])
model = load_model(sys.argv[2], DTYPES[manifest["dtype"]])
feed = GraphIO.of_manifest(manifest).prefill_feed(**sample_inputs(model.config.vocab_size))
run_graph(model, feed, manifest["strategy"])
run_graph(model, feed, manifest["strategy"], float32=True)
"""
VERIFY = "import sys; from irexport.export.manifest import load_manifest; load_manifest(sys.argv[1])"


def measured(argv: list[str], python=("-m", "irexport.cli.main"), env=None, label=None) -> dict:
    """Run ``python PYTHON ARGV`` (by default the irexport CLI) as a child; its wall time and peak resident
    memory. ``label`` names the step in the progress line (default: the subcommand)."""
    print(f"[{time.strftime('%H:%M:%S')}] {label or argv[0]} ...", file=sys.stderr, flush=True)
    env = {**os.environ, **(env or {}), "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: a chatty child cannot block on it
        start = time.monotonic()
        child = subprocess.Popen([sys.executable, *python, *map(str, argv)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - start
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            sys.exit(f"python {' '.join(map(str, (*python, *argv)))} failed:\n{stderr.read()}")
    return {"seconds": round(seconds, 1), "peak_rss_bytes": usage.ru_maxrss * 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--intermediate", type=int, default=4096)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=257, help="vocabulary (default: 257, the byte tokenizer's)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"), help="the export's")
    p.add_argument("--init-dtype", choices=("float32", "float16", "bfloat16"), help="the checkpoint's (default: --dtype)")
    p.add_argument("--name", default="120m")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "export_footprint.json")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        model, export = Path(tmp) / "model", Path(tmp) / "export"
        sizes = ["--hidden-size", args.hidden, "--intermediate-size", args.intermediate, "--layers", args.layers,
                 "--heads", args.heads, "--kv-heads", args.kv_heads, "--vocab-size", args.vocab]
        init_dtype = args.init_dtype or args.dtype
        init = measured(["init", model, *sizes, "--dtype", init_dtype])
        weights = sum(f.stat().st_size for f in model.glob("*.safetensors"))
        exported = measured(["export", model, "-o", export, "--dtype", args.dtype])
        files = {f.name: f.stat().st_size for f in sorted(export.iterdir())}
        time.sleep(SETTLED_NS / 1e9)  # a file changed as recently is not remembered
        cache = {"IREXPORT_CACHE_DIR": str(Path(tmp) / "cache")}
        verify = {"first": measured([export], python=("-c", VERIFY), env=cache, label="verify (first use)"),
                  "remembered": measured([export], python=("-c", VERIFY), env=cache, label="verify (remembered)")}
        ids = Path(tmp) / "ids.npy"
        np.save(ids, np.random.default_rng(0).integers(0, 257, (4, 64)))
        if args.dtype == "bfloat16":
            generate = {"skipped": "ONNX Runtime's CPU provider has no bfloat16 kernels"}
            parity = {"skipped": "ONNX Runtime's CPU provider has no bfloat16 kernels",
                      "reference_only": measured([export, model], python=("-c", PARITY_REFERENCE),
                                                 label="parity (reference half)")}
        else:
            generate = measured(["generate", export, "--input-ids", ids, "--max-new-tokens", "8"])
            parity = measured(["parity", export, "--new-tokens", "4", "--report", Path(tmp) / "parity.json"])
    # what every export process holds before any weight: the interpreter with the export's modules imported
    interpreter = measured([], python=("-c", "import irexport.export.onnx_export, irexport.checkpoints, onnxscript"),
                           label="interpreter")
    exported_weights = files["weights.data"]

    row = {
        "name": args.name, "dtype": args.dtype,
        "sizes": {"hidden": args.hidden, "intermediate": args.intermediate, "layers": args.layers, "heads": args.heads,
                  "kv_heads": args.kv_heads, "vocab": args.vocab},
        "checkpoint_dtype": init_dtype, "checkpoint_bytes": weights,
        "init": init,
        "interpreter_rss_bytes": interpreter["peak_rss_bytes"],
        "export": {**exported, "peak_rss_over_checkpoint": round(exported["peak_rss_bytes"] / weights, 2),
                   # the target: peak RSS <= 1.25x the exported weights plus the interpreter
                   "peak_rss_beyond_interpreter_over_weights": round(
                       (exported["peak_rss_bytes"] - interpreter["peak_rss_bytes"]) / exported_weights, 2)},
        "export_files": files,
        # on disk over the model's parameters in the export's dtype (the checkpoint's bytes, rescaled)
        "export_bytes_over_weights": round(sum(files.values()) / (weights * ITEMSIZE[args.dtype] / ITEMSIZE[init_dtype]), 3),
        "weights_bytes": exported_weights,
        "verify_weights": {**verify, "gb_per_second_first": round(exported_weights / 1e9 / verify["first"]["seconds"], 2)},
        "generate_onnxruntime_cpu": {**generate, "batch": 4, "prompt": 64, "new_tokens": 8},
        "parity_onnxruntime_cpu": {**parity, "batch": 2, "sequence": 16, "new_tokens": 4},
    }
    record = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    record["runs"] = [r for r in record["runs"] if (r["name"], r["dtype"]) != (args.name, args.dtype)] + [row]
    record.update({"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
                   "date": datetime.date.today().isoformat()})
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
