"""End to end through the command line: synth -> check -> train -> translate -> gallery."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from pairgan.cli import app
from tests.conftest import TINY

runner = CliRunner()


def _sets(overrides):
    out = []
    for o in overrides:
        out += ["--set", o]
    return out


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "pairgan.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "translate" in r.stdout and "train" in r.stdout


def test_synth_train_translate_gallery(tmp_path: Path):
    data = tmp_path / "scenes"
    r = runner.invoke(app, ["data", "synth", "scenes", str(data), "--n", "10", "--size", "32", "--seed", "3"])
    assert r.exit_code == 0, r.output
    aligned = data / "aligned"
    r = runner.invoke(app, ["data", "check", str(aligned), *_sets(TINY)])
    assert r.exit_code == 0, r.output
    assert "ok" in r.output

    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "--data", str(aligned), "--out", str(run),
                            *_sets(TINY + ["train.max_steps=3", "train.sample_every=3", "data.input_kind=label"])])
    assert r.exit_code == 0, r.output
    assert (run / "samples" / "index.html").exists()
    # A second train into the same folder refuses instead of overwriting the run.
    r = runner.invoke(app, ["train", "--data", str(aligned), "--out", str(run), *_sets(TINY)])
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


def test_unknown_key_and_missing_data_errors(tmp_path: Path, aligned_data: Path):
    r = runner.invoke(app, ["train", "--data", str(aligned_data), "--set", "train.batchsize=2"])
    assert r.exit_code == 2
    assert "train.batchsize" in r.output and "train.batch_size" in r.output
    r = runner.invoke(app, ["train", "--set", "train.max_steps=2"])
    assert r.exit_code == 2 and "--data" in r.output


def _bad_data(tmp_path: Path, aligned_data: Path, kind: str) -> tuple[Path, str]:
    """Turn the tiny folders data set into one with a single problem; returns (root, file name)."""
    root = tmp_path / f"bad_{kind}"
    for side in ("A", "B"):
        (root / "train" / side).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        for side in ("A", "B"):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "train" / side / f"{i}.png")
    if kind == "corrupt":
        bad = root / "train" / "A" / "1.png"
        bad.write_bytes(bad.read_bytes()[: 200])
        return root, "1.png"
    if kind == "partner":
        (root / "train" / "B" / "2.png").unlink()
        return root, "2.png"
    if kind == "channels":
        np.save(root / "train" / "A" / "0.npy", rng.random((40, 40, 5), dtype=np.float32))
        (root / "train" / "A" / "0.png").unlink()
        return root, "0.npy"
    raise ValueError(kind)


def test_bad_inputs_stop_training_with_named_file(tmp_path: Path, aligned_data: Path):
    for kind, words in (("corrupt", ("1.png",)), ("partner", ("2.png",)), ("channels", ("0.npy", "5"))):
        root, name = _bad_data(tmp_path, aligned_data, kind)
        r = runner.invoke(app, ["train", "--data", str(root), "--out", str(tmp_path / f"run_{kind}"),
                                *_sets(TINY + ["train.max_steps=1"])])
        assert r.exit_code == 2, (kind, r.output)
        for w in words:
            assert w in r.output, (kind, r.output)
        r = runner.invoke(app, ["data", "check", str(root), *_sets(TINY)])
        assert r.exit_code == 1 and name in r.output, (kind, r.output)


def test_info_lists_presets_keys_registry():
    r = runner.invoke(app, ["info"])
    assert r.exit_code == 0
    for word in ("pix2pix-paper", "demo", "model.num_downs", "unet", "patch", "aligned", "folders"):
        assert word in r.output


def test_library_log_records_reach_stderr_as_bare_lines(tmp_path: Path, monkeypatch):
    """The command shows the library's INFO records (logging, not print) as the message alone, in
    process too (CliRunner swaps stderr); --quiet keeps only warnings; nothing stays configured."""
    import logging

    import pairgan.cli.data as data_cli

    def fake_synth_scenes(out, **kwargs):
        log = logging.getLogger("pairgan.synth.scenes")
        log.info("made 1 scene")
        log.warning("warning: a made-up problem")
        return {}

    monkeypatch.setattr(data_cli, "synth_scenes", fake_synth_scenes)
    logger = logging.getLogger("pairgan")
    handlers, level = list(logger.handlers), logger.level
    r = runner.invoke(app, ["data", "synth", "scenes", str(tmp_path / "s"), "--n", "1"])
    assert r.exit_code == 0, r.output
    assert "made 1 scene\n" in r.output.splitlines(keepends=True)
    assert "warning: a made-up problem\n" in r.output.splitlines(keepends=True)
    r = runner.invoke(app, ["--quiet", "data", "synth", "scenes", str(tmp_path / "s"), "--n", "1"])
    assert r.exit_code == 0, r.output
    assert "made 1 scene" not in r.output and "warning: a made-up problem" in r.output
    assert logger.handlers == handlers and logger.level == level


def test_user_errors_are_one_line_with_status_2(tmp_path: Path):
    r = runner.invoke(app, ["translate", str(tmp_path / "no_run"), str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert r.output.startswith("error: ") and "Traceback" not in r.output
