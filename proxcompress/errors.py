"""Exception types shared by every wing.

Each error message names the offending field and the accepted range, e.g.
``alpha = 1.5 is outside the accepted range (0, 1)``.
"""

from __future__ import annotations


class ProxcompressError(Exception):
    """Base class of the suite's own errors."""


class InvalidInputError(ProxcompressError, ValueError):
    """An input value, shape or file is invalid. The message names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.detail = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # pickled as (field, message): an error raised in a worker process reaches the parent
        # as itself, not as a broken process pool
        return (type(self), (self.field, self.detail))


class MissingInputError(InvalidInputError, FileNotFoundError):
    """An input file or folder does not exist (also a ``FileNotFoundError``)."""


class SolverError(ProxcompressError):
    """An external solver failed or is unavailable."""
