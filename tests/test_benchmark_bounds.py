"""The routing benchmark's attribution of a missed target, decided from a row's own numbers."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import onnxrt_routing as bench  # noqa: E402


def row(phase, batch, compact, ideal_flops, graph, ideal_bytes=None):
    r = {"regime": f"{phase} b{batch}", "phase": phase, "batch": batch, "family": "informed",
         "executed_fraction": 0.5, "units_run": 1.0, "dense_ms": 10.0, "masked_speedup": 0.9,
         "compact_speedup": compact, "ideal_flops": ideal_flops}
    if phase == "decode":
        r.update(ideal_bytes=ideal_bytes, graph_bytes=graph, graph_flops=ideal_flops)
    else:
        r["graph_flops"] = graph
    return bench.verdict(r)


@pytest.mark.parametrize("r, expected", [
    (row("prefill", 1, 1.5, 1.6, 1.6), None),  # 0.94 of the FLOP ideal: met
    (row("decode", 1, 0.78, 0.96, 0.93, ideal_bytes=0.96), "ideal"),  # every unit runs: the routers cost, nothing is skipped
    (row("decode", 32, 1.23, 2.46, 0.97, ideal_bytes=1.37), "mixed"),  # neither memory nor compute alone
    (row("decode", 64, 0.98, 1.21, 0.99, ideal_bytes=1.14), "mixed"),  # below dense, still no single ideal
    (row("decode", 64, 1.1, 1.3, 0.99, ideal_bytes=1.2), None),  # 0.85 of the FLOP ideal and above dense: met
    (row("decode", 8, 0.9, 1.23, 0.95, ideal_bytes=0.96), "ideal"),  # memory-bound, and the bytes ideal < 1
    (row("decode", 8, 0.93, 1.17, 0.97, ideal_bytes=1.09), "layout"),  # the graph allows 0.97 and gets 0.93
    (row("decode", 1, 1.84, 4.0, 3.5, ideal_bytes=3.99), "runtime"),  # the graph allows 3.5, the runtime gets 1.84
    (row("prefill", 1, 1.97, 2.31, 2.29), "runtime"),  # the graph allows the target
])
def test_a_missed_target_is_put_down_to_what_its_numbers_show(r, expected):
    assert r["bound"] == expected


def test_the_tables_give_every_row_its_verdict():
    rows = [row("prefill", 1, 1.5, 1.6, 1.6), row("decode", 8, 0.93, 1.17, 0.97, ideal_bytes=1.09)]
    text = bench.tables({"rows": rows})
    assert "| prefill b1 | 1.50 – 1.50 |" in text and "1 / 1 | – |" in text
    assert "| decode b8 | 0.93 – 0.93 |" in text and "0 / 1 | layout 1 |" in text
    assert text.count("missed: layout") == 1 and text.count("| met |") == 1


def test_the_kernels_variant_is_held_to_the_targets():
    """Compact with irexport's ONNX Runtime kernels is the variant the targets judge; results recorded before
    the kernels are judged on compact with its function bodies."""
    r = {"regime": "prefill b1", "phase": "prefill", "batch": 1, "compact_speedup": 0.9, "kernels_speedup": 1.55,
         "ideal_flops": 1.6, "graph_flops": 1.6}
    assert bench.verdict(dict(r))["meets_target"]
    del r["kernels_speedup"]
    assert bench.verdict(r)["bound"] == "runtime"
