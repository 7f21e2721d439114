"""Experiment trackers behind ``train.loggers``: TensorBoard (the default), Weights & Biases, MLflow.

Every tracker gets the same things from a training run (rank 0 only): the logged scalars at their
step, the sample grids, the resolved config (as W&B config / MLflow parameters, flattened
``section.key``), the final checkpoint folder as an artifact at the end, and — from ``pairgan
evaluate`` on a checkpoint of the run — the evaluation's scores and its card or metrics file.

``wandb`` and ``mlflow`` are optional extras (``pip install 'pairgan[wandb]'``, ``[mlflow]``);
:func:`check_available` names the missing one before training starts. The W&B and MLflow run ids
are kept in the run folder (:data:`STATE_FILE`), so a resumed run continues the same W&B/MLflow run
and an evaluation reaches it. Where they log is theirs to say: W&B follows its own settings
(``WANDB_MODE=offline``, ``WANDB_DIR``, ``wandb login``; ``train.wandb_project``/``wandb_entity``);
MLflow logs to ``train.mlflow_tracking_uri`` (default: ``MLFLOW_TRACKING_URI``, else MLflow's own
default, ``./mlruns``), experiment ``train.mlflow_experiment``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from pairgan.errors import ConfigError
from pairgan.fsutil import atomic_write_text

__all__ = ["STATE_FILE", "TRACKERS", "Tracker", "check_available", "flatten", "log_evaluation", "open_trackers"]

log = logging.getLogger(__name__)

#: What ``train.loggers`` accepts.
TRACKERS = ("tensorboard", "wandb", "mlflow")
#: The run folder's record of the trackers in use and their run ids.
STATE_FILE = "trackers.json"
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def check_available(names: Sequence[str]) -> None:
    """Raise :class:`ConfigError` for an unknown tracker or one whose package is not installed
    (naming the pip extra)."""
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"train.loggers: unknown logger {name!r}; expected some of {', '.join(TRACKERS)}")
        try:
            __import__(_PACKAGES[name])
        except ImportError:
            extra = "" if name == "tensorboard" else f" (pip install 'pairgan[{name}]')"
            raise ConfigError(f"train.loggers: {name} is not installed{extra}") from None


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"ngf": 64}}`` -> ``{"model.ngf": 64}`` (lists and None as JSON text)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
    return out


def _image(grid: Any) -> np.ndarray:
    """A CHW float grid in [0, 1] (tensor or array) -> HWC uint8."""
    arr = grid.detach().cpu().numpy() if hasattr(grid, "detach") else np.asarray(grid)
    return (np.clip(arr, 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)


class Tracker:
    """One experiment tracker of a run (the base does nothing)."""

    name = ""

    def scalars(self, step: int, values: Mapping[str, float]) -> None: ...

    def image(self, tag: str, step: int, grid: Any) -> None: ...

    def artifact(self, folder: Path, name: str) -> None: ...

    def evaluation(self, scores: Mapping[str, float], file: Path, name: str) -> None: ...

    def state(self) -> dict[str, Any]:
        """What a later process needs to continue this tracker's run."""
        return {}

    def close(self) -> None: ...


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, run_dir: Path, resume_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # deferred: imports tensorboard

        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def image(self, tag: str, step: int, grid: Any) -> None:
        self.writer.add_image(tag, _image(grid), step, dataformats="HWC")

    def evaluation(self, scores: Mapping[str, float], file: Path, name: str) -> None:
        for k, v in scores.items():
            self.writer.add_scalar(f"{name}/{k}", v, 0)

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, run_dir: Path, config: Mapping[str, Any] | None, settings: Mapping[str, Any],
                 run_id: str | None) -> None:
        import wandb  # deferred: an optional dependency (the wandb extra)

        self.wandb = wandb
        self.run = wandb.init(project=settings.get("wandb_project") or "pairgan",
                              entity=settings.get("wandb_entity") or None, name=run_dir.name,
                              dir=os.environ.get("WANDB_DIR") or str(run_dir), id=run_id,
                              resume="allow" if run_id else None,
                              config=dict(config) if config is not None else None)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log(dict(values), step=step)

    def image(self, tag: str, step: int, grid: Any) -> None:
        self.run.log({tag: self.wandb.Image(_image(grid))}, step=step)

    def artifact(self, folder: Path, name: str) -> None:
        art = self.wandb.Artifact(name, type="model")
        art.add_dir(str(folder))
        self.run.log_artifact(art)

    def evaluation(self, scores: Mapping[str, float], file: Path, name: str) -> None:
        self.run.summary.update({f"{name}/{k}": v for k, v in scores.items()})
        art = self.wandb.Artifact(f"{name}-{self.run.id}", type="evaluation")
        art.add_file(str(file))
        self.run.log_artifact(art)

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run.id, "wandb_project": self.run.project, "wandb_entity": self.run.entity or ""}

    def close(self) -> None:
        self.run.finish()


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, run_dir: Path, config: Mapping[str, Any] | None, settings: Mapping[str, Any],
                 run_id: str | None, tracking_uri: str | None) -> None:
        from mlflow.tracking import MlflowClient  # deferred: an optional dependency (the mlflow extra)

        uri = tracking_uri or settings.get("mlflow_tracking_uri") or None
        self.client = MlflowClient(tracking_uri=uri)
        self.tracking_uri = self.client.tracking_uri
        if run_id is None:
            name = settings.get("mlflow_experiment") or "pairgan"
            exp = self.client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
            run_id = self.client.create_run(exp_id, run_name=run_dir.name).info.run_id
            if config is not None:
                from mlflow.entities import Param

                params = [Param(k, str(v)[:6000]) for k, v in flatten(config).items()]
                for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
                    self.client.log_batch(run_id, params=params[i : i + 100])
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(_metric_key(k), float(v), now, step)
                                                    for k, v in values.items()])

    def image(self, tag: str, step: int, grid: Any) -> None:
        self.client.log_image(self.run_id, _image(grid), artifact_file=f"{tag}/step_{step:08d}.png")

    def artifact(self, folder: Path, name: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path=name)

    def evaluation(self, scores: Mapping[str, float], file: Path, name: str) -> None:
        self.scalars(0, {f"{name}/{k}": v for k, v in scores.items()})
        self.client.log_artifact(self.run_id, str(file), artifact_path=name)

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "tracking_uri": self.tracking_uri}

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def _metric_key(key: str) -> str:
    """MLflow keys allow letters, digits and ``_-. /``; anything else becomes ``_``."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in key)


def open_trackers(names: Sequence[str], run_dir: Path, *, config: Mapping[str, Any] | None,
                  settings: Mapping[str, Any], resume_step: int | None) -> list[Tracker]:
    """The trackers ``names`` for ``run_dir``; with ``resume_step`` (a resumed run) W&B and MLflow
    continue the runs recorded in :data:`STATE_FILE`. Their ids are recorded there."""
    check_available(names)
    run_dir = Path(run_dir)
    saved = _read_state(run_dir) if resume_step is not None else {}
    out: list[Tracker] = []
    for name in names:
        prior = saved.get(name, {})
        if name == "tensorboard":
            out.append(TensorBoardTracker(run_dir, resume_step))
        elif name == "wandb":
            out.append(WandbTracker(run_dir, config, settings, prior.get("run_id")))
        else:
            out.append(MlflowTracker(run_dir, config, settings, prior.get("run_id"), prior.get("tracking_uri")))
    state = {t.name: t.state() for t in out if t.state()}
    if state:
        atomic_write_text(run_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")
    return out


def _read_state(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / STATE_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        log.warning("warning: %s: unreadable (%s); trackers start new runs", path, exc)
        return {}


def log_evaluation(run_dir: Path | None, scores: Mapping[str, Any], file: Path, name: str) -> list[str]:
    """Send an evaluation's numeric ``scores`` and its card or metrics ``file`` to the W&B and
    MLflow runs recorded in ``run_dir`` (nothing when the run used neither); returns the trackers
    that got it. A tracker that cannot be reached is logged as a warning, never an error."""
    if run_dir is None:
        return []
    state = _read_state(Path(run_dir))
    numeric = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    done = []
    for kind, prior in state.items():
        try:
            if kind == "wandb":
                tracker: Tracker = WandbTracker(Path(run_dir), None, prior, prior.get("run_id"))
            elif kind == "mlflow":
                tracker = MlflowTracker(Path(run_dir), None, {}, prior.get("run_id"), prior.get("tracking_uri"))
            else:
                continue
            tracker.evaluation(numeric, Path(file), name=name)
            tracker.close()
            done.append(kind)
        except Exception as exc:  # noqa: BLE001 - the evaluation itself is done and written
            log.warning("warning: could not log the evaluation to %s (%s: %s)", kind, type(exc).__name__, exc)
    return done
