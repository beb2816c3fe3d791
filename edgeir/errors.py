"""Errors a user can cause. The CLI prints their message as one line and exits non-zero."""

import re


class EdgeirError(Exception):
    """Base of every user-facing error; the message must make sense on its own, on one line."""


class CheckpointError(EdgeirError):
    """A model folder or weights file is missing, corrupt, untrusted or inconsistent."""


class ImageError(EdgeirError):
    """An input image cannot be read or does not fit the model."""


class ConfigError(EdgeirError):
    """A recipe, manifest or model config is invalid."""


class QualityGateError(EdgeirError):
    """A compression stage fell below its recipe's quality gate."""


class BackendError(EdgeirError):
    """An inference backend (onnxruntime, TensorRT) is unavailable or failed."""


def validation_message(e: Exception) -> str:
    """The first problem of a pydantic ValidationError as ``field.path: message``."""
    errors = getattr(e, "errors", None)
    if not callable(errors):
        return str(e)
    err = errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "top level"
    return f"{where}: {err['msg']}"


def brief(e: BaseException | str, limit: int = 160, first_line: bool = False) -> str:
    """An error's message as one line that ends cleanly: cut at a word, with an ellipsis, and without the
    terminal escapes some libraries put in theirs; ``first_line`` for libraries whose later lines are a trace."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip() or type(e).__name__
    text = " ".join((text.splitlines()[0] if first_line else text).split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:(") + " ..."
