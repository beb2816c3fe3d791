"""Errors a user can cause. The CLI prints their message as one line and exits non-zero."""


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
