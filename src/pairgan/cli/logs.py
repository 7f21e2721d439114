"""Logging for the ``pairgan`` command: the library logs (``logging.getLogger(__name__)``), the
command shows those records on stderr as bare lines, just as the library's messages always read."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

__all__ = ["pairgan_logging"]


class _CurrentStderrHandler(logging.StreamHandler):
    """A stream handler that writes to ``sys.stderr`` as it is when a record comes, not as it was
    when the handler was made: typer's ``CliRunner`` and pytest swap ``sys.stderr`` per call."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


@contextlib.contextmanager
def pairgan_logging(level: int = logging.INFO) -> Iterator[None]:
    """While the block runs, records of the ``pairgan`` loggers at ``level`` and above go to stderr
    as the message alone (texts such as ``warning: ...`` carry their own prefix). Other libraries'
    loggers keep Python's default (WARNING and above on stderr). Restores the ``pairgan`` logger on
    exit, so that an in-process call (tests) leaves no handler behind. Records still propagate to
    the root logger (pytest's ``caplog`` reads them there)."""
    logger = logging.getLogger("pairgan")
    handler = _CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
