"""The bad-input suite's machinery (issue 14): a table of cases, each a ``pairgan`` command line a
user could type, the exit status and the one-line message it must give, and what must be left
exactly as it was ("nothing lost").

Each area keeps its table in its own test file (``tests/integration/test_bad_inputs_*.py``) and runs
it through :func:`check_case`; ``docs/bad_inputs.md`` lists them all.

A case's ``argv`` and ``unchanged`` may name paths as ``{key}``: the test fills them from a dict of
prepared files (a trained run, a checkpoint, input images, ...).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from typer.testing import CliRunner

from pairgan.cli import app

__all__ = ["Case", "check_case", "tree_digest"]


@dataclass(frozen=True)
class Case:
    """One bad input and what pairgan must answer."""

    #: A short, unique name (the test id).
    id: str
    #: The command line after ``pairgan`` (``{key}`` placeholders allowed).
    argv: Sequence[str]
    #: The expected exit status (2: a user error; 0: handled without an error).
    status: int
    #: A regular expression the ``error:`` line (or, for status 0, the output) must match.
    message: str
    #: Paths (``{key}`` placeholders allowed) whose files must be byte-for-byte unchanged.
    unchanged: Sequence[str] = ()
    #: Environment variables for the run.
    env: Mapping[str, str] = field(default_factory=dict)
    #: Optional extra check, called with (result, paths) after the standard ones.
    then: Callable[[Any, Mapping[str, Path]], None] | None = None


def tree_digest(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (or of ``path`` itself), by relative name."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path) if p != path else p.name): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


def _fill(text: str, paths: Mapping[str, Path]) -> str:
    return text.format(**{k: str(v) for k, v in paths.items()})


def check_case(case: Case, paths: Mapping[str, Path]) -> Any:
    """Run ``case`` in process and check its exit status, its message (one ``error:`` line and no
    traceback for a user error) and that every ``unchanged`` path kept its bytes. Returns the
    click result."""
    argv = [_fill(a, paths) for a in case.argv]
    guarded = [Path(_fill(p, paths)) for p in case.unchanged]
    before = {p: tree_digest(p) for p in guarded}
    result = CliRunner().invoke(app, argv, env=dict(case.env))
    out, err = result.stdout, result.stderr
    shown = f"pairgan {' '.join(argv)}\n--- exit {result.exit_code}\n--- stdout\n{out}\n--- stderr\n{err}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{case.id}: raised {type(result.exception).__name__}: {result.exception}\n{shown}") \
            from result.exception
    assert result.exit_code == case.status, f"{case.id}: exit {result.exit_code}, expected {case.status}\n{shown}"
    assert "Traceback" not in out + err, f"{case.id}: a traceback reached the user\n{shown}"
    if case.status == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error: ")]
        assert len(errors) == 1, f"{case.id}: expected one 'error:' line\n{shown}"
        assert re.search(case.message, errors[0]), f"{case.id}: {errors[0]!r} does not match {case.message!r}\n{shown}"
    else:
        assert re.search(case.message, out + err), f"{case.id}: output does not match {case.message!r}\n{shown}"
    for p in guarded:
        assert tree_digest(p) == before[p], f"{case.id}: {p} changed\n{shown}"
    if case.then is not None:
        case.then(result, paths)
    return result
