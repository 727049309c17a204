"""Reading an export directory's manifest.json, with one-line errors for missing or stale files."""

from __future__ import annotations

from pathlib import Path

from ..errors import IrexportError
from ..jsonrecord import read_json_record

MANIFEST = "manifest.json"
REQUIRED = (("dtype",), ("strategy",), ("source", "path"), ("model", "num_layers"), ("model", "vocab_size"),
            ("model", "kv_shape"), ("graphs", "prefill", "file"), ("graphs", "decode", "file"))


def load_manifest(export_dir) -> dict:
    return read_json_record(Path(export_dir) / MANIFEST, f"{export_dir}: no {MANIFEST} (not an irexport export directory)",
                            REQUIRED, "re-export with this irexport version")


def check_model_matches(manifest: dict, model, where: str) -> None:
    """The reference model must be the one the export came from (same shapes)."""
    cfg = model.config
    ours = {"num_layers": cfg.num_hidden_layers, "vocab_size": cfg.vocab_size, "kv_heads": cfg.num_key_value_heads}
    theirs = {"num_layers": manifest["model"]["num_layers"], "vocab_size": manifest["model"]["vocab_size"],
              "kv_heads": manifest["model"]["kv_shape"][1]}
    for key in ours:
        if ours[key] != theirs[key]:
            raise IrexportError(f"{where}: {key} is {ours[key]}, the export's manifest says {theirs[key]} (wrong --model?)")
