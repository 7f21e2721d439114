"""End to end through the command line, in process: synth -> check -> train -> translate -> gallery -> resume."""

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from pairgan.cli import app
from tests.helpers import set_args, tiny_overrides

runner = CliRunner()
TINY = tiny_overrides("pix2pix")


def test_synth_train_translate_gallery(tmp_path: Path):
    data = tmp_path / "scenes"
    r = runner.invoke(app, ["data", "synth", "scenes", str(data), "--n", "10", "--size", "32", "--seed", "3"])
    assert r.exit_code == 0, r.output
    aligned = data / "aligned"
    r = runner.invoke(app, ["data", "check", str(aligned), *set_args(TINY)])
    assert r.exit_code == 0, r.output
    assert "ok" in r.output

    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "--data", str(aligned), "--out", str(run),
                            *set_args(TINY + ["train.max_steps=3", "train.sample_every=3", "data.input_kind=label"])])
    assert r.exit_code == 0, r.output
    assert (run / "samples" / "index.html").exists()
    # A second train into the same folder refuses instead of overwriting the run.
    r = runner.invoke(app, ["train", "--data", str(aligned), "--out", str(run), *set_args(TINY)])
    assert r.exit_code == 2 and "--resume" in r.output

    out = tmp_path / "translated"
    r = runner.invoke(app, ["translate", str(run), str(aligned / "test"), "--out", str(out), "--aligned"])
    assert r.exit_code == 0, r.output
    outputs = sorted(out.glob("*.png"))
    assert len(outputs) == len(list((aligned / "test").iterdir())) >= 1
    assert Image.open(outputs[0]).size == (32, 32)
    assert "targets/" in (out / "index.html").read_text()

    # Resume with an extended budget continues the same run.
    r = runner.invoke(app, ["train", "--resume", str(run), "--set", "train.max_steps=5"])
    assert r.exit_code == 0, r.output
    hist = [json.loads(x)["step"] for x in (run / "history.jsonl").read_text().splitlines()]
    assert hist == [1, 2, 3, 4, 5]
