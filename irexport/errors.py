"""The errors users see: a clear one-line message, printed by the CLI with an exit code that says whose it is."""


class IrexportError(Exception):
    """Bad input (a file, key, flag or config): exit 2. The message names the file and the key where known."""


class BackendError(IrexportError):
    """TensorRT failed on input irexport accepted (a build, a deserialization, a run): exit 3, neither the user's
    bad input (2) nor a bug in irexport (70), as irexport-run's TensorRT failures. Its own messages precede it."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (third-party messages span several), shortened to ``limit``."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
