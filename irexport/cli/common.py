"""Helpers shared by subcommands."""

from __future__ import annotations

import sys


def log(message: str) -> None:
    """Progress goes to stderr, so stdout stays clean for reports."""
    print(f"irexport: {message}", file=sys.stderr, flush=True)


def add_dtype_mode(parser) -> None:
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                        help="precision of the reference forward (default: float32)")
    parser.add_argument("--mode", default="masked", choices=("masked", "compact"),
                        help="execution mode of the reference: masked computes every unit and selects (research "
                             "semantics), compact runs units on executed tokens only; both agree (default: masked)")
