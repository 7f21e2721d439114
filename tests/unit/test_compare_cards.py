"""`pairgan compare` on result cards (refusal, --force, --markdown) and the card's HTML section;
evaluations are hand-written metrics.json + card.json files (no training, no network)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pairgan.cli import app
from pairgan.metrics.card import MetricValue, ResultCard, save_card
from pairgan.metrics.report import render_card_markdown, write_report

runner = CliRunner()


def _card(title: str, fingerprint: str | None, l1: float) -> ResultCard:
    return ResultCard(
        title=title, protocol=None if fingerprint is None else {"name": "toy-64", "version": 1,
                                                                 "fingerprint": fingerprint},
        metrics={"l1": MetricValue(l1, l1 - 0.01, l1 + 0.01, 0.005, "bootstrap 95% (1000 resamples of 4 images)"),
                 "seg_acc": MetricValue(0.5, 0.4, 0.6, 0.05, "bootstrap 95% (1000 resamples of 4 images)")},
        oracle={"seg_acc": MetricValue(0.8, 0.7, 0.9, 0.05, "bootstrap")},
        per_class={"road": {"acc": 0.91, "iou": 0.77}}, n_images=4,
        source={"kind": "checkpoint", "path": f"runs/{title}", "checkpoint_sha256": "ab" * 32, "method": "pix2pix",
                "config": {}, "train_steps": 10, "train_wall_s": 2.0},
        environment={"cpu": "toy cpu", "device": "cpu"})


def _evaluation(folder: Path, card: ResultCard | None, l1: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({
        "metrics": {"l1": l1, "count": 4}, "protocol_version": "pairgan-eval/1", "checkpoint": "x", "samples": []}))
    if card is not None:
        save_card(card, folder)
    return folder


def test_compare_refuses_different_fingerprints_and_force_overrides(tmp_path: Path) -> None:
    a = _evaluation(tmp_path / "a", _card("a", "1" * 64, 0.2), 0.2)
    b = _evaluation(tmp_path / "b", _card("b", "2" * 64, 0.3), 0.3)
    res = runner.invoke(app, ["compare", str(a), str(b), "--label", "A", "--label", "B", "--out", str(tmp_path / "c.html")])
    assert res.exit_code == 2
    assert "different protocol fingerprints" in res.output and "A (" in res.output and "B (" in res.output
    assert "--force" in res.output and not (tmp_path / "c.html").exists()
    md = tmp_path / "c.md"
    res = runner.invoke(app, ["compare", str(a), str(b), "--label", "A", "--label", "B", "--force",
                              "--out", str(tmp_path / "c.html"), "--markdown", str(md)])
    assert res.exit_code == 0, res.output
    text = md.read_text()
    assert "0.2000 [0.1900, 0.2100]" in text and "not comparable" in text and "1111111111111111" in text
    assert "**" not in text.split("- **not comparable**")[0]  # cards that may not be ranked get no best mark
    page = (tmp_path / "c.html").read_text()
    assert "Result cards" in page and "0.3000 [0.2900, 0.3100]" in page and "not comparable" in page


def test_compare_ranks_cards_with_one_fingerprint(tmp_path: Path) -> None:
    a = _evaluation(tmp_path / "a", _card("a", "1" * 64, 0.2), 0.2)
    b = _evaluation(tmp_path / "b", _card("b", "1" * 64, 0.3), 0.3)
    md = tmp_path / "c.md"
    res = runner.invoke(app, ["compare", str(a), str(b), "--out", str(tmp_path / "c.html"), "--markdown", str(md)])
    assert res.exit_code == 0, res.output
    text = md.read_text()
    assert "**0.2000 [0.1900, 0.2100]**" in text  # lower l1 is better: A is bold
    assert "oracle seg_acc" in text and "not comparable" not in text


def test_compare_refuses_a_mix_with_an_evaluation_without_card(tmp_path: Path) -> None:
    a = _evaluation(tmp_path / "a", _card("a", "1" * 64, 0.2), 0.2)
    b = _evaluation(tmp_path / "b", None, 0.3)
    res = runner.invoke(app, ["compare", str(a), str(b), "--label", "A", "--label", "B", "--out", str(tmp_path / "c.html")])
    assert res.exit_code == 2 and "B has no card.json" in res.output


def test_compare_without_cards_keeps_the_plain_table(tmp_path: Path) -> None:
    a = _evaluation(tmp_path / "a", None, 0.2)
    b = _evaluation(tmp_path / "b", None, 0.3)
    res = runner.invoke(app, ["compare", str(a), str(b), "--out", str(tmp_path / "c.html")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "c.html").read_text()
    assert "Result cards" not in page and "0.2000" in page


def test_report_renders_the_card_section(tmp_path: Path) -> None:
    card = _card("a", "f" * 64, 0.2)
    result = {"metrics": {"l1": 0.2, "count": 4}, "split": "test", "card": card.to_dict()}
    page = write_report(tmp_path, result, []).read_text()
    assert "Result card" in page and "f" * 64 in page and "toy-64 v1" in page
    assert "[0.1900, 0.2100]" in page and "0.8000 [0.7000, 0.9000]" in page  # interval and oracle
    assert "road" in page and "toy cpu" in page
    assert "Result card" not in write_report(tmp_path, {"metrics": {"l1": 0.2}}, [], name="plain.html").read_text()


def test_markdown_escapes_pipes() -> None:
    md = render_card_markdown([_card("a", "1" * 64, 0.2)], ["a|b"])
    assert "a\\|b" in md.splitlines()[0]
