"""Errors the user can act on.

Every error raised for bad input is a :class:`GraphblocksError`: its message is one
line that names the problem and, after ``: ``, the fix. The CLI prints exactly that
line (no traceback unless ``--debug``) and exits with :attr:`GraphblocksError.exit_code`.
"""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc``'s message, at most ``limit`` characters."""
    return (str(exc).strip().splitlines() or [""])[0][:limit]


class GraphblocksError(Exception):
    """A problem with the user's input, reported as one actionable line."""

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}; {fix}")


class UnknownModelError(GraphblocksError):
    """The model name matches no timm, torchvision or Python source."""


class ModelBuildError(GraphblocksError):
    """The model source was found but building the module failed."""


class CaptureError(GraphblocksError):
    """No frontend could capture the model's graph."""

    exit_code = 3


class PartitionError(GraphblocksError):
    """A partition is invalid, or does not match the model it is used with."""


class SchemaError(PartitionError):
    """A partition JSON document does not follow the shipped JSON Schema."""


class PortError(GraphblocksError):
    """A checkpoint that cannot be ported onto the target model."""
