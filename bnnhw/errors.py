"""User-facing errors: what was wrong and what to do about it."""
from __future__ import annotations


class BnnhwError(Exception):
    """An error caused by user input or environment, shown without a traceback.

    ``message`` says what was wrong, ``hint`` what to do.  The CLI prints both
    (or ``{"ok": false, "error", "hint"}`` under ``--json``) and exits 1."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


class DatasetError(BnnhwError):
    """A dataset is missing, malformed or unknown."""


class ExportError(BnnhwError):
    """A model that cannot be exported or imported exactly; the message names the layer."""


class FoldingError(BnnhwError):
    """An illegal folding or an impossible target/budget; the message names the layer."""


class ModelFileError(BnnhwError):
    """A checkpoint or IR file is missing, corrupted, unsafe or of the wrong version."""
