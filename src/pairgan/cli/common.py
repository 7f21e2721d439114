"""What every ``pairgan`` command shares: the one ``error:`` line, the user-error handler and the
``--set`` / ``--option`` parsing."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, NoReturn, Sequence

import typer

from pairgan.config import parse_override
from pairgan.errors import USER_ERRORS

__all__ = ["SET_HELP", "fail", "parse_options", "user_errors_reported"]

SET_HELP = "Override a config key, dotted: --set train.batch_size=4 (repeatable). `pairgan info keys` lists them."


def fail(msg: str, code: int = 2) -> NoReturn:
    """Print ``error: MSG`` (red, on stderr) and leave with exit status ``code`` (2: a user error)."""
    typer.secho(f"error: {msg}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors_reported(*also: type[BaseException]) -> Iterator[None]:
    """Report a user error raised in the block (:data:`pairgan.errors.USER_ERRORS`, plus ``also``,
    e.g. ``ValueError`` for a bad option value) as one ``error:`` line with exit status 2 instead of
    a traceback."""
    try:
        yield
    except (*USER_ERRORS, *also) as exc:
        fail(str(exc))


def parse_options(texts: Sequence[str]) -> dict[str, Any]:
    """``--option key=value`` texts -> ``{"key": value}`` (dotted keys kept dotted, values parsed as
    ``--set`` values are)."""
    options: dict[str, Any] = {}
    for text in texts:
        keys, value = parse_override(text)
        options[".".join(keys)] = value
    return options
