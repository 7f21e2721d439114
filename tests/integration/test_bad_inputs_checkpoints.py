"""The bad-input suite, checkpoints and runs (issue 14, items 2, 3 and 6): damaged checkpoint files,
a full disk while a run saves, leftovers of a killed save, and ``--resume`` / ``--out`` given the
wrong kind of folder. Each case is a ``pairgan`` command line with its exit status and message
(:mod:`tests.badinput`); the complete older checkpoint must never change.

A full disk is simulated in process: the case's entry in ``DISK_FULL`` makes the checkpoint writers
raise what they raise on a full disk.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest
import torch

from pairgan import checkpoint as ckpt
from pairgan.train import trainer
from tests.badinput import Case, check_case
from tests.helpers import tiny_overrides, train_tiny

pytestmark = pytest.mark.usefixtures("one_thread")

STEP1, STEP2 = "checkpoints/step_00000001", "checkpoints/step_00000002"
SETS = [a for s in tiny_overrides("pix2pix") + ["train.max_steps=2", "train.save_every=1"] for a in ("--set", s)]
MORE = ["--set", "train.max_steps=3"]


class Payload:
    """A pickled object that leaves a file behind if anything ever unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# --------------------------------------------------------------------------- how each case's files are prepared


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _only_checkpoint(run: Path) -> None:
    shutil.rmtree(run / STEP1)


def _failed_first_checkpoint(run: Path) -> None:
    """What a run whose first checkpoint hit a full disk leaves: config, history, an empty checkpoints/."""
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()


PREPARE: dict[str, Callable[[Path, Path], None]] = {
    "resume-truncated-state": lambda run, tmp: _truncate(run / STEP2 / "state.pt"),
    "resume-pickled-state": lambda run, tmp: torch.save({"step": Payload(tmp / "PWNED")}, run / STEP2 / "state.pt"),
    "resume-truncated-weights": lambda run, tmp: _truncate(run / STEP2 / "G.safetensors"),
    "resume-garbled-weights": lambda run, tmp: (run / STEP2 / "D.safetensors").write_bytes(b"\x93garbage" * 64),
    "resume-empty-weights": lambda run, tmp: (run / STEP2 / "G.safetensors").write_bytes(b""),
    "resume-damaged-only-checkpoint": lambda run, tmp: (_only_checkpoint(run), _truncate(run / STEP2 / "state.pt")),
    "translate-truncated-weights": lambda run, tmp: _truncate(run / STEP2 / "G.safetensors"),
    "translate-garbled-weights-in-folder": lambda run, tmp: (run / STEP2 / "G.safetensors").write_bytes(b"x" * 99),
    "resume-garbled-config": lambda run, tmp: (run / STEP2 / "config.yaml").write_text("model: [unclosed\n"),
    "translate-empty-config": lambda run, tmp: (run / STEP2 / "config.yaml").write_text(""),
    "translate-other-networks": lambda run, tmp: (run / STEP2 / "config.yaml").write_text(
        (run / STEP2 / "config.yaml").read_text().replace("ngf: 8", "ngf: 16")),
    "train-disk-full-first-checkpoint": lambda run, tmp: shutil.rmtree(run),
    "train-out-after-failed-first-checkpoint": lambda run, tmp: _failed_first_checkpoint(run),
    "resume-after-failed-first-checkpoint": lambda run, tmp: _failed_first_checkpoint(run),
    "resume-removes-leftovers": lambda run, tmp: (
        (run / "checkpoints" / ".tmp-step_00000003-4242").mkdir(),
        (run / "checkpoints" / ".tmp-step_00000003-4242" / "G.safetensors").write_bytes(b"half"),
        (run / "checkpoints" / ".latest.0123456789ab.tmp").write_text("step_0000"),
    ),
    "resume-puts-back-moved-aside": lambda run, tmp: (run / STEP2).rename(
        run / "checkpoints" / ".old-step_00000002-4242"),
    "resume-latest-names-missing": lambda run, tmp: (run / "checkpoints" / "latest").write_text("step_00000009\n"),
    "resume-latest-missing-no-other": lambda run, tmp: (
        _only_checkpoint(run), shutil.rmtree(run / STEP2),
        (run / "checkpoints" / "latest").write_text("step_00000009\n")),
    "resume-empty-folder": lambda run, tmp: (tmp / "empty").mkdir(),
    "resume-loose-checkpoint": lambda run, tmp: shutil.copytree(run / STEP2, tmp / "loose"),
}


def _disk_full_oserror(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full)


def _torch_zip_writer_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save on a full disk: its zip writer stops short, and says only 'unexpected pos'."""
    def short(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4608 vs 4503")

    class Usage:
        free = 0

    monkeypatch.setattr(ckpt.torch, "save", short)
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda path: Usage())


def _torch_save_enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", full)


def _samples_enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path, write: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(trainer, "atomic_write", full)


DISK_FULL: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "train-disk-full-first-checkpoint": _disk_full_oserror,
    "resume-disk-full-weights": _disk_full_oserror,
    "resume-disk-full-state": _torch_save_enospc,
    "resume-disk-full-unexpected-pos": _torch_zip_writer_short,
    "resume-disk-full-samples": _samples_enospc,
}


# --------------------------------------------------------------------------- what must hold afterwards


def _history_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "history.jsonl").read_text().splitlines()]


def _continued_to_step_3(result: Any, paths: Mapping[str, Path]) -> None:
    run = paths["run"]
    assert ckpt.resolve_checkpoint(run).name == "step_00000003"
    assert _history_steps(run) == [1, 2, 3]


def _never_unpickled(result: Any, paths: Mapping[str, Path]) -> None:
    assert not (paths["tmp"] / "PWNED").exists()
    assert "weights_only=False" not in result.stdout + result.stderr
    _continued_to_step_3(result, paths)


def _no_leftovers(result: Any, paths: Mapping[str, Path]) -> None:
    assert not [p.name for p in (paths["run"] / "checkpoints").iterdir() if p.name.startswith(".")]


def _leftovers_gone(result: Any, paths: Mapping[str, Path]) -> None:
    _no_leftovers(result, paths)
    _continued_to_step_3(result, paths)


def _fresh_run(result: Any, paths: Mapping[str, Path]) -> None:
    assert ckpt.resolve_checkpoint(paths["run"]).name == "step_00000002"
    assert _history_steps(paths["run"]) == [1, 2]


def _checkpoint_folder_untouched(result: Any, paths: Mapping[str, Path]) -> None:
    step1 = paths["run"] / STEP1
    assert sorted(p.name for p in step1.iterdir()) == ["D.safetensors", "G.safetensors", "config.yaml",
                                                      "input_profile.json", "state.pt"]
    _continued_to_step_3(result, paths)


FALLBACK = r"resuming from the newest complete older checkpoint, \S*step_00000001"

CASES = [
    # item 2: damaged checkpoint files (resume skips to the newest complete older checkpoint)
    Case("resume-truncated-state", ["train", "--resume", "{run}", *MORE], 0,
         r"state\.pt: truncated or damaged .*" + FALLBACK, unchanged=["{step1}"], then=_continued_to_step_3),
    Case("resume-pickled-state", ["train", "--resume", "{run}", *MORE], 0,
         r"state\.pt: not a plain-tensor checkpoint .*must not be loaded with pickle; " + FALLBACK,
         unchanged=["{step1}"], then=_never_unpickled),
    Case("resume-truncated-weights", ["train", "--resume", "{run}", *MORE], 0,
         r"G\.safetensors: not a readable safetensors file, truncated or garbled .*" + FALLBACK,
         unchanged=["{step1}"], then=_continued_to_step_3),
    Case("resume-garbled-weights", ["train", "--resume", "{run}", *MORE], 0,
         r"D\.safetensors: not a readable safetensors file.*" + FALLBACK, unchanged=["{step1}"],
         then=_continued_to_step_3),
    Case("resume-empty-weights", ["train", "--resume", "{run}", *MORE], 0,
         r"G\.safetensors: not a readable safetensors file.*" + FALLBACK, unchanged=["{step1}"]),
    Case("resume-damaged-only-checkpoint", ["train", "--resume", "{run}", *MORE], 2,
         r"step_00000002/state\.pt: truncated or damaged .*no complete older checkpoint", unchanged=["{run}"]),
    Case("resume-garbled-config", ["train", "--resume", "{run}", *MORE], 0,
         r"config\.yaml: not a readable YAML config, truncated or garbled .*newest complete older checkpoint is "
         r"\S*step_00000001; resuming from it", unchanged=["{step1}"], then=_continued_to_step_3),
    Case("translate-empty-config", ["translate", "{run}", "{images}", "--out", "{tmp}/out"], 2,
         r"step_00000002/config\.yaml: empty or not a mapping .*newest complete older checkpoint is "
         r"\S*step_00000001", unchanged=["{run}"]),
    Case("translate-other-networks", ["translate", "{run}", "{images}", "--out", "{tmp}/out"], 2,
         r"G\.safetensors: weights do not fit network 'G': \d+ tensor\(s\) of another shape \(first: .*saved with "
         r"another config\?", unchanged=["{run}"]),
    Case("translate-truncated-weights", ["translate", "{run}", "{images}", "--out", "{tmp}/out"], 2,
         r"step_00000002/G\.safetensors: not a readable safetensors file.*newest complete older checkpoint is "
         r"\S*step_00000001", unchanged=["{run}"]),
    Case("translate-garbled-weights-in-folder", ["translate", "{step2}", "{images}", "--out", "{tmp}/out"], 2,
         r"G\.safetensors: not a readable safetensors file.*step_00000001", unchanged=["{run}"]),
    # item 3: a full disk while saving
    Case("train-disk-full-first-checkpoint", ["train", "--data", "{data}", "--out", "{run}", *SETS], 2,
         r"step_00000001: could not write the checkpoint: no space left on device \(ENOSPC\).*no complete "
         r"checkpoint yet: start it over with pairgan train --out", then=_no_leftovers),
    Case("train-out-after-failed-first-checkpoint", ["train", "--data", "{data}", "--out", "{run}", *SETS], 0,
         r"holds no complete checkpoint .*starting it fresh", then=_fresh_run),
    Case("resume-after-failed-first-checkpoint", ["train", "--resume", "{run}"], 2,
         r"a run folder with no complete checkpoint .*nothing to resume: start it over with pairgan train --out"),
    Case("resume-disk-full-weights", ["train", "--resume", "{run}", *MORE], 2,
         r"step_00000003: could not write the checkpoint: no space left on device \(ENOSPC\).*kept "
         r"\S*step_00000002: continue with pairgan train --resume", unchanged=["{step1}", "{step2}"],
         then=_no_leftovers),
    Case("resume-disk-full-state", ["train", "--resume", "{run}", *MORE], 2,
         r"step_00000003: could not write the checkpoint: no space left on device \(ENOSPC\).*kept",
         unchanged=["{step2}"], then=_no_leftovers),
    Case("resume-disk-full-unexpected-pos", ["train", "--resume", "{run}", *MORE], 2,
         r"no space left on device \(ENOSPC\).*kept \S*step_00000002", unchanged=["{step2}"], then=_no_leftovers),
    Case("resume-disk-full-samples", ["train", "--resume", "{run}", *MORE, "--set", "train.sample_every=1"], 2,
         r"samples/step_00000003\.png: no space left on device \(ENOSPC\); kept \S*step_00000002: continue with "
         r"pairgan train --resume", unchanged=["{step2}"]),
    # item 3: leftovers of a killed save
    Case("resume-removes-leftovers", ["train", "--resume", "{run}", *MORE], 0,
         r"removed \.tmp-step_00000003-4242, left by an interrupted save", unchanged=["{step1}"],
         then=_leftovers_gone),
    Case("resume-puts-back-moved-aside", ["train", "--resume", "{run}", *MORE], 0,
         r"put back step_00000002 from \.old-step_00000002-4242", unchanged=["{step1}"], then=_leftovers_gone),
    # item 6: --resume and --out given the wrong kind of folder
    Case("resume-checkpoint-folder", ["train", "--resume", "{step1}", *MORE], 0,
         r"is a checkpoint of the run \S+; continuing that run from it", then=_checkpoint_folder_untouched),
    Case("resume-checkpoints-folder", ["train", "--resume", "{run}/checkpoints", *MORE], 0,
         r"is the checkpoints folder of the run", then=_continued_to_step_3),
    Case("resume-loose-checkpoint", ["train", "--resume", "{tmp}/loose"], 2,
         r"loose is a checkpoint folder, not a run folder: --resume continues a run", unchanged=["{tmp}/loose"]),
    Case("resume-latest-names-missing", ["train", "--resume", "{run}", *MORE], 0,
         r"names 'step_00000009', which is not a complete checkpoint; using the newest complete one, "
         r"\S*step_00000002", unchanged=["{step1}"], then=_continued_to_step_3),
    Case("resume-latest-missing-no-other", ["train", "--resume", "{run}"], 2,
         r"names 'step_00000009', which is not a complete checkpoint, and \S+ holds no other", unchanged=["{run}"]),
    Case("out-checkpoint-folder", ["train", "--data", "{data}", "--out", "{step1}", *SETS], 2,
         r"step_00000001 is a checkpoint folder; --out names a run folder", unchanged=["{run}"]),
    # already handled before issue 14: kept
    Case("out-existing-run", ["train", "--data", "{data}", "--out", "{run}", *SETS], 2,
         r"already holds a run; use --resume \S+ to continue it", unchanged=["{run}"]),
    Case("resume-missing-folder", ["train", "--resume", "{tmp}/nope"], 2, r"nope: no such checkpoint or run folder"),
    Case("resume-empty-folder", ["train", "--resume", "{tmp}/empty"], 2, r"empty: not a checkpoint \(expected"),
    Case("resume-no-data-no-run", ["train", "--preset", "pix2pix"], 2, r"--data PATH is required"),
]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory, tiny_data: Callable[..., Path]) -> Path:
    """A tiny pix2pix run with two complete checkpoints, step_00000001 and step_00000002 (latest)."""
    out = tmp_path_factory.mktemp("ckpt-source") / "run"
    return train_tiny(out, "pix2pix", tiny_data("aligned"), steps=2, extra=["train.save_every=1"])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_checkpoint_input(case: Case, source_run: Path, tiny_data: Callable[..., Path], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    shutil.copytree(source_run, run)
    data = tiny_data("aligned")
    paths = {"run": run, "tmp": tmp_path, "data": data, "images": data / "test",
             "step1": run / STEP1, "step2": run / STEP2}
    if case.id in PREPARE:
        PREPARE[case.id](run, tmp_path)
    if case.id in DISK_FULL:
        DISK_FULL[case.id](monkeypatch)
    check_case(case, paths)


def test_ids_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
