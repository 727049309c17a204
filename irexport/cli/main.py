"""``irexport`` entry point: parses arguments and turns bad input into one line and exit code 2.

Exit codes: 0 success, 1 a check failed (parity and the like), 2 bad input or usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import IrexportError
from . import build, convert, demo, export, generate, init, inspect, parity, parity_matrix, plugins, run

COMMANDS = (init, convert, run, inspect, export, build, parity, parity_matrix, generate, plugins, demo)
EXIT_BAD_INPUT = 2
OPTIONAL = {"onnx": "onnx", "onnxscript": "onnx", "onnxruntime": "onnx"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irexport",
        description="Deploy token-routed LLMs: PyTorch reference, checkpoints, ONNX export with routing custom ops, "
                    "TensorRT engines with CUDA plugins, parity, and generation.",
    )
    parser.add_argument("--version", action="version", version=f"irexport {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except IrexportError as e:
        print(f"irexport: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in OPTIONAL:
            raise
        print(f"irexport: error: '{args.command}' needs the {top} package, which is not installed "
              f"(pip install 'irexport[{OPTIONAL[top]}]')", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("irexport: interrupted (no partial output was kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
