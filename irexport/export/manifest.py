"""An export directory's manifest.json: its schema, and reading it with one-line errors."""

from __future__ import annotations

from pathlib import Path

from ..errors import IrexportError
from ..filehash import sha256
from ..jsonrecord import read_json_record
from ..schema import FILE_NAME, SHA256, Int, List, Obj, OneOf, Opt, Str, Tuple
from .graph_io import GraphIO

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: one graph for prefill and decode (1 had a graph per phase)
DTYPES = ("float32", "float16", "bfloat16")
STRATEGIES = ("compact", "masked")
TENSOR_DTYPES = ("float32", "float16", "bfloat16", "int64", "int32", "bool")
# input dimensions are what engine profiles are derived from: a number, an axis, or a sum of axes
# ("past_sequence + sequence"); output dimensions may be any expression of them
INPUT_DIM = OneOf(Int(0, 1 << 31), Str(pattern=r"[a-z_]+( \+ [a-z_]+)*", what="a dimension name"))
OUTPUT_DIM = OneOf(Int(0, 1 << 31), Str())


def _tensor(dim):
    return Obj({"name": Str(pattern=r"[A-Za-z0-9_.]+", what="a tensor name"), "dtype": Str(choices=TENSOR_DTYPES),
                "shape": List(dim, max_len=8)})


GRAPH = Obj({"file": FILE_NAME, "sha256": SHA256, "inputs": List(_tensor(INPUT_DIM), min_len=1),
             "outputs": List(_tensor(OUTPUT_DIM), min_len=1), "custom_ops": List(Str())},
            optional=("sha256",))  # absent: an export from before graphs were hashed
# what irexport reads of a manifest (other keys are for people and other tools)
SCHEMA = Obj({
    "format_version": Int(FORMAT_VERSION, FORMAT_VERSION),
    "source": Obj({"path": Opt(Str()), "sha256": Opt(SHA256)}),
    "dtype": Str(choices=DTYPES),
    "strategy": Str(choices=STRATEGIES),
    "model": Obj({"num_layers": Int(1, 4096), "vocab_size": Int(1, (1 << 31) - 1),
                  "kv_shape": Tuple(Str(choices=("batch",)), Int(1, 4096), Str(choices=("sequence",)), Int(1, 1 << 16))}),
    "graph": GRAPH,
    "weights": Obj({"file": FILE_NAME, "bytes": Int(0), "sha256": SHA256}),  # absent: the graph holds its weights
}, optional=("weights",))


def load_manifest(export_dir, verify: bool = True) -> dict:
    """The export's manifest, checked; its files checked against it (the weights' size always, the graph's and
    the weights' sha256 unless ``verify`` is False), so that no reader runs a graph or weights other than the
    ones the export wrote."""
    path = Path(export_dir) / MANIFEST
    manifest = read_json_record(path, f"{export_dir}: no {MANIFEST} (not an irexport export directory)", SCHEMA,
                                "re-export with this irexport version")
    if [t["name"] for t in manifest["graph"]["inputs"]] != GraphIO.of_manifest(manifest).input_names:
        raise IrexportError(f"{path}: graph.inputs disagree with model.num_layers ({manifest['model']['num_layers']}); "
                            "re-export")
    if "weights" in manifest:
        check_file(Path(export_dir), manifest["weights"], "weights", verify)
    if "sha256" in manifest["graph"] and verify:
        check_file(Path(export_dir), manifest["graph"], "graph")
    return manifest


def check_file(export_dir: Path, record: dict, what: str, verify: bool = True) -> None:
    """A file of the export is the one it wrote: present, its size (where recorded), and (``verify``) its
    sha256. Readers call this before ONNX Runtime or TensorRT's parser opens the file."""
    path = export_dir / record["file"]
    if not path.is_file():
        raise IrexportError(f"{path}: not found (the export's {what}; re-export)")
    size = path.stat().st_size
    if "bytes" in record and size != record["bytes"]:
        raise IrexportError(f"{path}: {size} bytes, the export wrote {record['bytes']} (truncated, extended or "
                            "replaced; re-export)")
    if verify:
        try:
            digest = sha256(path)
        except OSError as e:
            raise IrexportError(f"{path}: cannot read ({e.strerror})") from None
        if digest != record["sha256"]:
            raise IrexportError(f"{path}: sha256 {digest[:12]}..., the export wrote {record['sha256'][:12]}... (other "
                                f"or corrupted {what}; re-export)")


def source_model(manifest: dict, export_dir, what: str = "pass --model") -> Path:
    """The model directory the export came from (a relative path is relative to the export directory)."""
    path = manifest["source"]["path"]
    if path is None:
        raise IrexportError(f"{Path(export_dir) / MANIFEST}: records no source model; {what}")
    return Path(export_dir) / path


def check_model_matches(manifest: dict, model, where: str) -> None:
    """The reference model must be the one the export came from (same shapes)."""
    cfg = model.config
    ours = {"num_layers": cfg.num_hidden_layers, "vocab_size": cfg.vocab_size, "kv_heads": cfg.num_key_value_heads}
    theirs = {"num_layers": manifest["model"]["num_layers"], "vocab_size": manifest["model"]["vocab_size"],
              "kv_heads": manifest["model"]["kv_shape"][1]}
    for key in ours:
        if ours[key] != theirs[key]:
            raise IrexportError(f"{where}: {key} is {ours[key]}, the export's manifest says {theirs[key]} (wrong --model?)")
