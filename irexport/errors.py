"""The one error type users see: a clear one-line message, printed by the CLI with exit code 2."""


class IrexportError(Exception):
    """Bad input (a file, key, flag or config). The message names the file and the key where known."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (third-party messages span several), shortened to ``limit``."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
