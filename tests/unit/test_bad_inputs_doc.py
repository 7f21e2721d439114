"""docs/bad_inputs.md lists every case of the bad-input suite (regenerate it with
`python -m benchmarks.bad_inputs_table > docs/bad_inputs.md`)."""

from benchmarks.bad_inputs_table import all_cases
from tests.helpers import REPO


def test_the_page_lists_every_case_once() -> None:
    page = (REPO / "docs" / "bad_inputs.md").read_text()
    tables = all_cases()
    ids = [c.id for _, cases in tables for c in cases]
    assert len(ids) >= 60 and len(ids) == len(set(ids))
    missing = [i for i in ids if f"| `{i}` |" not in page]
    assert not missing, f"docs/bad_inputs.md lacks {missing}: regenerate it"
    assert f"{len(ids)} cases in all." in page
