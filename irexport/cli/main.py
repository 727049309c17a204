"""``irexport`` entry point: parses arguments and turns bad input into one line and exit code 2.

Exit codes: 0 success, 1 a check failed (parity and the like), 2 bad input or usage (out of memory on inputs too
large for the machine included), 3 TensorRT failed on input irexport accepted, 70 internal error
(a bug in irexport: one line, the traceback with --debug or IREXPORT_DEBUG=1), 130 interrupted (SIGINT or
SIGTERM; nothing half-written is kept). CI can tell a crash from a failed check.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .. import __version__
from ..errors import BackendError, IrexportError, one_line
from . import build, convert, demo, export, generate, init, inspect, parity, parity_matrix, plugins, run

COMMANDS = (init, convert, run, inspect, export, build, parity, parity_matrix, generate, plugins, demo)
EXIT_BAD_INPUT = 2
EXIT_BACKEND = 3  # TensorRT failed on input irexport accepted (irexport-run: the same)
EXIT_INTERNAL = 70  # sysexits' EX_SOFTWARE
EXIT_INTERRUPTED = 130
OPTIONAL = {"onnx": "onnx", "onnxscript": "onnx", "onnxruntime": "onnx"}


class _Parser(argparse.ArgumentParser):
    """A usage error is one line too (argparse prints the whole usage first); --help shows the usage."""

    def error(self, message):
        command = self.prog.removeprefix("irexport").strip()
        self.exit(EXIT_BAD_INPUT, f"irexport: error: {command + ': ' if command else ''}{message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="irexport",
        description="Deploy token-routed LLMs: PyTorch reference, checkpoints, ONNX export with routing custom ops, "
                    "TensorRT engines with CUDA plugins, parity, and generation.",
    )
    parser.add_argument("--version", action="version", version=f"irexport {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an internal error (also: IREXPORT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _terminate(signum, frame):
    """SIGTERM (CI timeouts, container stops) unwinds like Ctrl-C: outputs in progress are removed."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # usage errors (2), --help and --version (0): a code, for in-process callers too
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    debug = args.debug or os.environ.get("IREXPORT_DEBUG", "") not in ("", "0")
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        return _run(args, debug)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args, debug)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args, debug: bool) -> int:
    try:
        return args.func(args) or 0
    except BackendError as e:
        print(f"irexport: error: {e}", file=sys.stderr)
        return EXIT_BACKEND
    except IrexportError as e:
        print(f"irexport: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("irexport: interrupted (no partial output was kept)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if e.filename is None:  # not about a path the user gave
            return _internal(args, e, debug)
        print(f"irexport: error: {e.filename}: {e.strerror or e}", file=sys.stderr)  # a name too long, a loop, ...
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - a missing optional package is bad input; anything else is a bug
        if _out_of_memory(e):
            print(f"irexport: error: out of memory in '{args.command}' ({one_line(e, 160)}): use smaller inputs (batch, "
                  "sequence length, model) or a machine with more memory", file=sys.stderr)
            return EXIT_BAD_INPUT
        top = (e.name or "").split(".")[0] if isinstance(e, ModuleNotFoundError) else None
        if top in OPTIONAL:
            print(f"irexport: error: '{args.command}' needs the {top} package, which is not installed "
                  f"(pip install 'irexport[{OPTIONAL[top]}]')", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _internal(args, e, debug)


def _internal(args, e: Exception, debug: bool) -> int:
    if debug:
        raise e
    detail = str(e).splitlines()[0] if str(e) else ""
    print(f"irexport: internal error in '{args.command}' ({type(e).__name__}{': ' + detail if detail else ''}); "
          "this is a bug in irexport: rerun with --debug for the traceback", file=sys.stderr)
    return EXIT_INTERNAL


def _out_of_memory(e: Exception) -> bool:
    """Python's MemoryError, torch's (CPU allocator failures, CUDA's OutOfMemoryError) and ONNX Runtime's."""
    return (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
            or any(s in str(e) for s in ("can't allocate memory", "bad allocation", "Failed to allocate memory")))


if __name__ == "__main__":
    sys.exit(main())
