"""Command-line conventions shared by ``graphblocks`` and the tools built on it.

Bad input is reported as one line on stderr, ``error: <problem>; <fix>``, with the error's
exit code and no traceback; ``--debug`` shows the traceback instead. A click group gets
this by ``cls=OneLineErrors``, and each command by the :func:`debug_option` decorator.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import click

from graphblocks.errors import GraphblocksError, first_line

F = Callable[..., Any]
_DEBUG_KEY = "graphblocks.debug"


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class OneLineErrors(click.Group):
    """Turns errors into one line on stderr and a non-zero exit (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GraphblocksError as exc:
            if ctx.meta.get(_DEBUG_KEY):
                raise
            _fail(str(exc), exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:
            if ctx.meta.get(_DEBUG_KEY):
                raise
            first = first_line(exc)
            _fail(
                f"internal error: {type(exc).__name__}: {first}; rerun with --debug for the traceback",
                1,
            )


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_DEBUG_KEY] = True
    return value


def debug_option(fn: F) -> F:
    """The ``--debug`` flag: full tracebacks instead of one-line errors."""
    return click.option(
        "--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
        help="Show full tracebacks instead of one-line errors.",
    )(fn)  # fmt: skip


class RegistryChoice(click.Choice):
    """A ``click.Choice`` whose names are a registry's, read when first needed (``--help``
    of that command, or parsing its value): start-up imports no registry."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self._names = names
        self._loaded: tuple[str, ...] | None = None
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        if self._loaded is None:
            self._loaded = tuple(self._names())
        return self._loaded

    @choices.setter
    def choices(self, _given: Iterable[str]) -> None:
        """``click.Choice.__init__`` sets its choices; these come from the registry."""
