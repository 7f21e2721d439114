"""Experiment tracking (``train.loggers``): a tiny run logged to MLflow (a file store in a temporary
folder, read back through MLflow's own client) and to W&B in offline mode (its run file read back),
resumed into the same tracker runs, and an evaluation reaching them; a missing extra is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pairgan import trackers
from pairgan.cli import app
from pairgan.errors import ConfigError
from pairgan.train.trainer import Trainer
from tests.helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(run: Path, data: Path, *extra: str, steps: int = 4, until: int | None = None, resume: bool = False) -> None:
    cfg = tiny_config("pix2pix", data, f"train.max_steps={steps}", "train.sample_every=2", *extra)
    Trainer(cfg, run, progress=False, resume=resume).fit(until_step=until)


def test_mlflow_gets_params_metrics_samples_checkpoint_and_the_evaluation(aligned_data: Path, tmp_path: Path,
                                                                          monkeypatch):
    mlflow_tracking = pytest.importorskip("mlflow.tracking")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store behind this switch
    uri = (tmp_path / "mlruns").as_uri()
    run = tmp_path / "run"
    opts = ("train.loggers=[tensorboard,mlflow]", f"train.mlflow_tracking_uri={uri}", "train.mlflow_experiment=tiny")
    _train(run, aligned_data, *opts, until=2)
    state = json.loads((run / trackers.STATE_FILE).read_text())
    run_id = state["mlflow"]["run_id"]
    _train(run, aligned_data, *opts, resume=True)  # continues the same MLflow run
    assert json.loads((run / trackers.STATE_FILE).read_text())["mlflow"]["run_id"] == run_id
    client = mlflow_tracking.MlflowClient(tracking_uri=uri)
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED" and client.get_experiment(got.info.experiment_id).name == "tiny"
    assert got.data.params["method"] == "pix2pix" and got.data.params["train.max_steps"] == "4"
    steps = [m.step for m in client.get_metric_history(run_id, "G_L1")]
    assert steps == [1, 2, 3, 4]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"checkpoint", "samples"} <= artifacts
    files = {a.path for a in client.list_artifacts(run_id, "checkpoint")}
    assert "checkpoint/config.yaml" in files and "checkpoint/G.safetensors" in files
    assert len(client.list_artifacts(run_id, "samples")) == 2  # steps 2 and 4
    assert (run / "tensorboard").is_dir()  # TensorBoard as well
    # An evaluation of the run's checkpoint reaches the same MLflow run.
    r = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(aligned_data), "--split", "test", "--metrics",
                                 "l1,psnr", "--out", str(tmp_path / "eval")])
    assert r.exit_code == 0, r.output
    got = client.get_run(run_id)
    assert "eval_test/l1" in got.data.metrics
    assert "eval_test/metrics.json" in {a.path for a in client.list_artifacts(run_id, "eval_test")}


def _wandb_records(run_file: Path) -> list:
    """The protobuf records of a W&B run file (``run-ID.wandb``): W&B's own record schema in a
    LevelDB-style log (7-byte file header, 32 KiB blocks, records of CRC, length, type, payload)."""
    pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")
    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, pending, block = [], 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer: padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
        elif kind == 0 and length == 0:
            break
    return records


def test_wandb_offline_logs_config_history_samples_and_resumes_the_same_run(aligned_data: Path, tmp_path: Path,
                                                                            monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    run = tmp_path / "run"
    _train(run, aligned_data, "train.loggers=[wandb]", until=2)
    run_id = json.loads((run / trackers.STATE_FILE).read_text())["wandb"]["run_id"]
    _train(run, aligned_data, "train.loggers=[wandb]", resume=True)
    assert json.loads((run / trackers.STATE_FILE).read_text())["wandb"]["run_id"] == run_id
    files = sorted((tmp_path / "wandb-dir" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert files, "no offline W&B run file"
    history: dict[int, set[str]] = {}
    config_keys: set[str] = set()
    for f in files:
        for rec in _wandb_records(f):
            kind = rec.WhichOneof("record_type")
            if kind == "history":
                items = {i.key or "/".join(i.nested_key): i.value_json for i in rec.history.item}
                history.setdefault(int(json.loads(items["_step"])), set()).update(items)
            elif kind == "config":
                config_keys.update(i.key for i in rec.config.update)
            elif kind == "run":  # the run record carries the config it was started with
                config_keys.update(i.key for i in rec.run.config.update)
    assert {1, 2, 3, 4} <= set(history) and all("G_L1" in history[s] for s in (1, 2, 3, 4))
    assert "samples/_type" in history[2] and "samples/path" in history[4]  # the grids, as W&B images
    assert {"method", "model", "train", "data"} <= config_keys
    assert not (run / "tensorboard").exists()  # only the loggers asked for


def test_a_missing_tracker_package_is_one_line_naming_the_extra(aligned_data: Path, tmp_path: Path, monkeypatch):
    real_import = __import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb" or name.startswith("wandb."):
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", no_wandb)
    with pytest.raises(ConfigError, match=r"train.loggers: wandb is not installed \(pip install 'pairgan\[wandb\]'\)"):
        trackers.check_available(["tensorboard", "wandb"])
    r = CliRunner().invoke(app, ["train", "--preset", "pix2pix", "--data", str(aligned_data), "--out",
                                 str(tmp_path / "run"), "--set", "train.loggers=[wandb]", "--set", "train.max_steps=1"])
    assert r.exit_code == 2 and "pairgan[wandb]" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unknown_or_repeated_loggers_are_refused():
    with pytest.raises(ConfigError, match="train.loggers"):
        tiny_config("pix2pix", None, "train.loggers=[tensorboard,comet]")
    with pytest.raises(ConfigError, match="train.loggers"):
        tiny_config("pix2pix", None, "train.loggers=[mlflow,mlflow]")
    assert trackers.flatten({"model": {"ngf": 64, "widths": [8, 8]}, "seed": 0}) == {
        "model.ngf": 64, "model.widths": "[8, 8]", "seed": 0}
