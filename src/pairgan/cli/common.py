"""What every ``pairgan`` command shares: the one ``error:`` line, the user-error handler and the
``--set`` / ``--option`` parsing."""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator, NoReturn, Sequence

import typer

from pairgan.config import parse_override
from pairgan.errors import USER_ERRORS, ConfigError

__all__ = ["SET_HELP", "fail", "parse_options", "user_error_line", "user_errors_reported"]

SET_HELP = "Override a config key, dotted: --set train.batch_size=4 (repeatable). `pairgan info keys` lists them."


def fail(msg: str, code: int = 2) -> NoReturn:
    """Print ``error: MSG`` (red, on stderr) and leave with exit status ``code`` (2: a user error)."""
    typer.secho(f"error: {msg}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


#: How PyTorch's DataLoader re-raises an error from a worker process: the same type, with a message
#: that wraps the worker's whole traceback; its last line is ``TypeName: the original message``.
_WORKER_WRAPPED = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.?\s*\nOriginal Traceback")


def user_error_line(exc: BaseException) -> str:
    """The one line to show for a user error: its message, or, for an error a DataLoader worker
    raised (re-raised with the worker's traceback), the original error's message."""
    text = str(exc)
    if _WORKER_WRAPPED.match(text):
        last = [ln for ln in text.splitlines() if ln.strip()][-1].strip()
        return re.sub(rf"^(?:[\w.]+\.)?{type(exc).__name__}: ", "", last)
    if isinstance(exc, KeyError) and exc.args:  # str(KeyError) quotes its message
        return str(exc.args[0])
    return text


@contextlib.contextmanager
def user_errors_reported(*also: type[BaseException]) -> Iterator[None]:
    """Report a user error raised in the block (:data:`pairgan.errors.USER_ERRORS`, plus ``also``,
    e.g. ``ValueError`` for a bad option value) as one ``error:`` line with exit status 2 instead of
    a traceback."""
    try:
        yield
    except (*USER_ERRORS, *also) as exc:
        fail(user_error_line(exc))


def parse_options(texts: Sequence[str]) -> dict[str, Any]:
    """``--option key=value`` texts -> ``{"key": value}`` (dotted keys kept dotted, values parsed as
    ``--set`` values are)."""
    options: dict[str, Any] = {}
    for text in texts:
        try:
            keys, value = parse_override(text)
        except ConfigError:  # commands may parse options before their user-error block
            fail(f"--option {text!r}: expected key=value with a non-empty key, e.g. --option variant=0")
        options[".".join(keys)] = value
    return options
