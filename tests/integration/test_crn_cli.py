"""CRN end to end through the command line, in process: synth -> train -> translate --variant."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pairgan.cli import app
from pairgan.data.io import read_image
from tests.helpers import set_args, tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")


def test_end_to_end_cli_synth_train_translate(tmp_path: Path):
    runner = CliRunner()
    data, run, out = tmp_path / "scenes", tmp_path / "run", tmp_path / "out"
    r = runner.invoke(app, ["data", "synth", "scenes", str(data), "--n", "8", "--size", "32"])
    assert r.exit_code == 0, r.output
    sets = tiny_overrides("crn-demo", max_steps=2) + ["data.load_size=36"]
    r = runner.invoke(app, ["train", "--preset", "crn-demo", "--data", str(data), "--out", str(run)] + set_args(sets))
    assert r.exit_code == 0, r.output
    labels = sorted((data / "test_label").glob("*.png"))
    r = runner.invoke(app, ["translate", str(run), str(labels[0]), "--out", str(out), "--variant", "1"])
    assert r.exit_code == 0, r.output
    img = read_image(out / f"{labels[0].stem}.png")
    assert img.shape == (32, 32, 3)
    r = runner.invoke(app, ["translate", str(run), str(labels[0]), "--out", str(out), "--variant", "7", "--overwrite"])
    assert r.exit_code != 0 and "k = 3" in r.output
