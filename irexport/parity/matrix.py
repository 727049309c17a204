"""The parity matrix for CI: every export under some roots × every backend, one summary, regressions.

An entry fails when parity fails, when the backend cannot run (an error, with its message), or, given
a baseline summary from an earlier run, when an error metric grew more than ``growth`` times.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import IrexportError
from ..export.manifest import MANIFEST
from ..jsonrecord import read_json_record
from ..schema import Bool, List, Num, Obj, Str

_METRIC = Num(0, finite=False)
# what a baseline needs of an earlier summary: the rows, each with its metrics (rows that could not run have none)
BASELINE_SCHEMA = Obj({"entries": List(Obj({"export": Str(), "backend": Str(), "passed": Bool(),
                                            "logits_max_abs": _METRIC, "kv_max_abs": _METRIC},
                                           optional=("logits_max_abs", "kv_max_abs")))})


def read_baseline(path: Path) -> list[dict]:
    return read_json_record(Path(path), f"{path}: baseline not found", BASELINE_SCHEMA,
                            "expected a summary written by irexport parity-matrix")["entries"]


def find_exports(roots) -> list[Path]:
    """Export directories: each root itself, or the directories below it holding a manifest.json."""
    found = []
    for root in map(Path, roots):
        if (root / MANIFEST).is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p.parent for p in root.rglob(MANIFEST) if "engines" not in p.parts)
        else:
            raise IrexportError(f"{root}: not found")
    if not found:
        raise IrexportError(f"no export directories (with {MANIFEST}) under {', '.join(map(str, roots))}")
    return found


def summarize(export_dir: Path, report: dict) -> list[dict]:
    """One row per backend of a parity report: what CI tracks from run to run."""
    rows = []
    for backend, result in report["results"].items():
        rows.append({
            "export": str(export_dir), "dtype": report["dtype"], "strategy": report["strategy"], "backend": backend,
            "passed": result["passed"],
            "logits_max_abs": max(result[g]["numerics"]["logits"]["max_abs"] for g in ("prefill", "decode")),
            "kv_max_abs": max(result[g]["numerics"]["kv_cache"]["max_abs"] for g in ("prefill", "decode")),
            "flips": sum(result[g]["routing"]["flips"] for g in ("prefill", "decode")),
            "near_tie_flips": sum(result[g]["routing"]["near_tie_flips"] for g in ("prefill", "decode")),
            "generation_passed": result["generation"]["passed"],
            **({"routing_ops": result["routing_ops"]} if "routing_ops" in result else {}),
        })
    return rows


def regressions(rows: list[dict], baseline: list[dict], growth: float) -> list[str]:
    """What got worse against the baseline: a pass turned into a failure, or an error grew > growth×."""
    before = {(r["export"], r["backend"]): r for r in baseline}
    found = []
    for row in rows:
        old = before.get((row["export"], row["backend"]))
        if old is None:
            continue
        if old["passed"] and not row["passed"]:
            found.append(f"{row['export']} [{row['backend']}]: passed in the baseline, fails now")
        for metric in ("logits_max_abs", "kv_max_abs"):
            if old.get(metric) is not None and row.get(metric) is not None and row[metric] > growth * old[metric] + 1e-7:
                found.append(f"{row['export']} [{row['backend']}]: {metric} {row[metric]:.3g} > {growth}x the baseline's "
                             f"{old[metric]:.3g}")
    return found
