"""The one error type users see: a clear one-line message, printed by the CLI with exit code 2."""


class IrexportError(Exception):
    """Bad input (a file, key, flag or config). The message names the file and the key where known."""
