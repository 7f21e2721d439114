"""The command line in process: unknown keys, bad data named by file, `info`, how library log records
and user errors reach the terminal. (A training through the CLI: tests/integration/test_cli_pipeline.py;
the installed console script: tests/e2e/test_cli_console_script.py.)"""

import logging
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

import pairgan.cli
import pairgan.cli.data as data_cli
from pairgan.cli import app
from pairgan.cli.common import user_error_line
from pairgan.errors import DataError
from tests.helpers import set_args, tiny_overrides

runner = CliRunner()
TINY = tiny_overrides("pix2pix")


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
                                *set_args(TINY + ["train.max_steps=1"])])
        assert r.exit_code == 2, (kind, r.output)
        for w in words:
            assert w in r.output, (kind, r.output)
        r = runner.invoke(app, ["data", "check", str(root), *set_args(TINY)])
        assert r.exit_code == 1 and name in r.output, (kind, r.output)


def test_info_lists_presets_keys_registry():
    r = runner.invoke(app, ["info"])
    assert r.exit_code == 0
    for word in ("pix2pix-paper", "demo", "model.num_downs", "unet", "patch", "aligned", "folders"):
        assert word in r.output


def test_library_log_records_reach_stderr_as_bare_lines(tmp_path: Path, monkeypatch):
    """The command shows the library's INFO records (logging, not print) as the message alone, in
    process too (CliRunner swaps stderr); --quiet keeps only warnings; nothing stays configured."""
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


def test_info_keys_of_an_unknown_preset_is_one_error_line():
    r = runner.invoke(app, ["info", "keys", "--preset", "nosuch"])
    assert r.exit_code == 2 and r.stderr.startswith("error: unknown preset 'nosuch'") and "Traceback" not in r.output
    r = runner.invoke(app, ["info", "nosuch"])
    assert r.exit_code == 2 and "expected presets, keys, registry or all" in r.stderr


def test_an_error_from_a_data_loader_worker_shows_the_original_message():
    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                        '  File "x.py", line 1, in f\n    raise DataError(...)\n'
                        "pairgan.errors.DataError: /d/train/002.png: not a readable image\n")
    assert user_error_line(wrapped) == "/d/train/002.png: not a readable image"
    assert user_error_line(DataError("/d/a.png: odd width")) == "/d/a.png: odd width"


def test_every_command_module_reports_user_errors_through_the_handler():
    for path in sorted(Path(pairgan.cli.__file__).parent.glob("*.py")):
        if path.stem in ("__init__", "__main__", "common", "logs"):
            continue
        text = path.read_text()
        assert "user_errors_reported" in text, f"{path.name} has no user-error handler"
