"""GGB through the Trainer: the CLI end to end on synthetic poses (synth -> check -> train ->
translate with a pose -> evaluate), and exact resume with every optimiser."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pairgan import checkpoint as ckpt
from pairgan.cli import app
from pairgan.config import build_config
from pairgan.data.datasets import build_dataset
from pairgan.data.poses import format_annotation, read_annotations
from pairgan.evaluate import score_pose_split
from pairgan.infer import Translator
from tests.helpers import checkpoint_tensors, set_args, tiny_overrides, train_whole_and_resumed

TINY_GGB = tiny_overrides("ggb", batch_size=4)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cli_synth_train_translate_with_pose(tmp_path: Path):
    runner = CliRunner()
    data = tmp_path / "poses"
    r = runner.invoke(app, ["data", "synth", "poses", str(data), "--n", "10", "--poses", "3", "--size", "32"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["data", "check", str(data), "--preset", "ggb-demo", *set_args(TINY_GGB)])
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "--preset", "ggb-demo", "--data", str(data), "--out", str(run),
                            *set_args(TINY_GGB + ["train.max_steps=3", "train.sample_every=3"])])
    assert r.exit_code == 0, r.output
    grids = sorted((run / "samples").glob("step_*.png"))
    assert grids and "source | target pose | output | target" in (run / "samples" / "index.html").read_text()

    src = data / "images" / "id0009_0front.png"
    ann = read_annotations(data / "annotations.csv")
    # (1) an annotation NAME from the training data set: its image becomes the target
    out = tmp_path / "t1"
    r = runner.invoke(app, ["translate", str(run), str(src), "--out", str(out), "--pose", "id0009_1back.png"])
    assert r.exit_code == 0, r.output
    assert Image.open(out / "id0009_0front.png").size == (32, 32)
    assert (out / "targets" / "id0009_0front.png").exists() and (out / "inputs" / "id0009_0front.png").exists()
    # (2) a one-line keypoint file; (3) another image, whose annotation is looked up
    kp_file = tmp_path / "pose.csv"
    kp_file.write_text(format_annotation("wanted", ann["id0009_2back.png" if "id0009_2back.png" in ann else
                                                        sorted(ann)[-1]]) + "\n")
    for pose, name in ((str(kp_file), "t2"), (str(data / "images" / "id0009_1back.png"), "t3")):
        r = runner.invoke(app, ["translate", str(run), str(src), "--out", str(tmp_path / name), "--pose", pose])
        assert r.exit_code == 0, r.output
        assert (tmp_path / name / "id0009_0front.png").exists()
    same = [np.asarray(Image.open(tmp_path / d / "id0009_0front.png")) for d in ("t1", "t3")]
    assert np.array_equal(same[0], same[1])  # the same pose by name or by image
    # no pose: a clear error
    r = runner.invoke(app, ["translate", str(run), str(src), "--out", str(tmp_path / "t4")])
    assert r.exit_code == 2 and "--pose" in r.output
    r = runner.invoke(app, ["translate", str(run), str(src), "--out", str(tmp_path / "t5"), "--pose", "nobody"])
    assert r.exit_code == 2 and "nobody" in r.output

    # Python API and evaluation on the held-out people
    tr = Translator.from_checkpoint(run)
    ds = build_dataset(tr.cfg.data, "test", train=False, size_multiple=tr.method.size_multiple)
    it = ds[0]
    y = tr.translate_batch({"source": it["source"][None], "target_pose": it["target_pose"][None]})
    assert y.shape == (1, 3, 32, 32)
    scores = score_pose_split(tr, data, "test")
    assert scores["count"] == 6 and -1 <= scores["ssim"] <= 1 and scores["ssim"] <= scores["mask_ssim"] <= 1


def test_exact_resume_with_all_optimisers(tiny_data: Callable[..., Path], tmp_path: Path):
    """4 steps in one go == 2 steps, stop, resume, 2 steps: the guiding blocks' optimisers and the
    separate G_GGB moments are checkpointed like G's and D's."""
    cfg = build_config("ggb", TINY_GGB + ["train.max_steps=4", "train.deterministic=true", "data.max_items=12"],
                       data_path=str(tiny_data("poses")))
    one, two = train_whole_and_resumed(cfg, tmp_path, stop_at=2)
    a, b = checkpoint_tensors(one), checkpoint_tensors(two)
    assert a.keys() == b.keys() and any(k.startswith("GGB2.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = (ckpt.load_state(ckpt.resolve_checkpoint(tmp_path / r)) for r in ("one", "two"))
    assert set(sa["optimizers"]) == {"G", "D", "G_GGB", "GGB8", "GGB4", "GGB2"}
    assert (tmp_path / "one" / "history.jsonl").read_text() == (tmp_path / "two" / "history.jsonl").read_text()
