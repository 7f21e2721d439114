"""Write docs/bad_inputs.md: every case of the bad-input suite (tests/integration/test_bad_inputs_*.py
and tests/e2e/test_bad_inputs_*.py), with the command, the exit status and the message it must give.

    python -m benchmarks.bad_inputs_table > docs/bad_inputs.md

tests/unit/test_bad_inputs_doc.py checks that the page lists every case.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADER = """# The bad-input suite

Inputs a user can type that pairgan must answer with one clear line (exit status 2) or handle
without an error (exit status 0), and never lose a file over. Each area keeps its table in a test
file; `tests/badinput.py` runs a case and checks the exit status, the single `error:` line, that no
traceback reached the user, and that every file the case guards is byte-for-byte unchanged.
Regenerate this page with `python -m benchmarks.bad_inputs_table > docs/bad_inputs.md`.
"""


def case_modules() -> list[str]:
    """The test modules holding a CASES table, in a stable order."""
    files = sorted((REPO / "tests").glob("*/test_bad_inputs_*.py"))
    return [".".join(f.relative_to(REPO).with_suffix("").parts) for f in files]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


TABLES = ("CASES", "CLI_CASES", "REQUESTS")


def _unwrap(entry: object) -> object:
    # A case wrapped in pytest.param (to carry marks such as a skip) holds it as its only value.
    values = getattr(entry, "values", None)
    return values[0] if isinstance(values, tuple) and values else entry


def _shown(case: object) -> str:
    argv = getattr(case, "argv", None)
    if argv is not None:
        return "pairgan " + " ".join(argv)
    return f"{getattr(case, 'method', '')} {getattr(case, 'path', '')}".strip()


def all_cases() -> list[tuple[str, list[object]]]:
    """(module, its cases) for every table of the suite."""
    sys.path.insert(0, str(REPO))
    out = []
    for name in case_modules():
        module = importlib.import_module(name)
        cases = [_unwrap(c) for table in TABLES for c in getattr(module, table, [])]
        if cases:  # test modules beside the tables (the doc check) hold none
            out.append((name, cases))
    return out


def main() -> None:
    tables = all_cases()
    out = [HEADER, f"\n{sum(len(c) for _, c in tables)} cases in all.\n"]
    for name, cases in tables:
        out.append(f"\n## {name.split('.')[-1].removeprefix('test_bad_inputs_')} ({len(cases)} cases, `{name}`)\n")
        out.append("| case | input | status | expected |\n| --- | --- | --- | --- |")
        for c in cases:
            out.append(f"| `{c.id}` | `{_cell(_shown(c))}` | {getattr(c, 'status', '')} | "
                       f"`{_cell(getattr(c, 'message', ''))}` |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
