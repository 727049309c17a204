"""Helpers shared by subcommands: progress lines, shared flags, and checked flag types."""

from __future__ import annotations

import argparse
import sys

from ..onnxrt_kernels import ROUTING_OPS

SEED_MAX = 2**32 - 1  # numpy's and torch's generators both take any seed in [0, 2**32)


def log(message: str) -> None:
    """Progress goes to stderr, so stdout stays clean for reports."""
    print(f"irexport: {message}", file=sys.stderr, flush=True)


def int_in(lo: int, hi: int):
    """An argparse type: an integer in [lo, hi] (argparse names the flag in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in [{lo}, {hi}], got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def number_in(lo: float, hi: float, open_lo: bool = False):
    """An argparse type: a finite number in [lo, hi] ((lo, hi] with ``open_lo``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (lo < value if open_lo else lo <= value) or not value <= hi:
            raise argparse.ArgumentTypeError(f"expected a number in {'(' if open_lo else '['}{lo}, {hi}], got {text}")
        return value

    parse.__name__ = "number"
    return parse


SEED = int_in(0, SEED_MAX)
BATCH = int_in(1, 1024)
TOKENS = int_in(1, 1 << 16)          # a sequence length
NEW_TOKENS = int_in(0, 1 << 16)      # greedy tokens to generate (0: none)
SIZE = int_in(1, 1 << 20)            # a model dimension (the config's schema bounds each one further)


def add_no_verify(parser) -> None:
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the sha256 checks of the export's weights.data and model.onnx against its manifest "
                             "(the weights' size is still checked); a verified file is remembered until it changes "
                             "(docs/verified-weights.md)")


def add_routing_ops(parser) -> None:
    parser.add_argument("--routing-ops", choices=ROUTING_OPS, default="auto",
                        help="what runs ONNX Runtime's routing nodes: irexport's native kernels (libirexport_onnxrt.so, "
                             "from irexport plugins build) or the nodes' function bodies; auto: the kernels when built "
                             "and the session is on the CPU (default: auto)")


def add_dtype_mode(parser) -> None:
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                        help="precision of the reference forward (default: float32)")
    parser.add_argument("--mode", default="masked", choices=("masked", "compact"),
                        help="execution mode of the reference: masked computes every unit and selects (research "
                             "semantics), compact runs units on executed tokens only; both agree (default: masked)")
