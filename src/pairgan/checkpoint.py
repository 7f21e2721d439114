"""Checkpoints that a crash, a kill or a full disk cannot corrupt.

A checkpoint is a folder::

    checkpoints/step_00001000/
        config.yaml          the resolved config (rebuilds the networks with no flags)
        G.safetensors        one file of weights per network
        D.safetensors
        state.pt             optimisers, grad scaler, step, epoch, RNG states, data position

It is written into a hidden temporary folder beside its final place, every file fsync'ed, and
renamed into place only when complete; ``checkpoints/latest`` (a one-line pointer file) is then
replaced atomically. A kill at any moment leaves the previous checkpoint and pointer intact.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pairgan.config import Config, load_config, save_config
from pairgan.errors import CheckpointError
from pairgan.fsutil import atomic_folder, atomic_write_text

LATEST = "latest"
STATE_FILE = "state.pt"
#: Checkpoints are built in a hidden folder of this prefix beside their final name (pairgan.fsutil).
TEMP_PREFIX = ".tmp-"
CONFIG_FILE = "config.yaml"


def _unwrap(net: nn.Module) -> nn.Module:
    # DistributedDataParallel / torch.compile wrappers keep the real module inside.
    while hasattr(net, "module") and isinstance(net.module, nn.Module):
        net = net.module
    while hasattr(net, "_orig_mod"):
        net = net._orig_mod
    return net


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    directory: str | os.PathLike,
    cfg: Config,
    nets: dict[str, nn.Module],
    state: dict[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint folder at ``directory`` atomically; returns its path."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(final, temp_prefix=TEMP_PREFIX) as tmp:
        save_config(cfg, tmp / CONFIG_FILE)
        for name, net in nets.items():
            tensors = {k: v.detach().contiguous().cpu().clone() for k, v in _unwrap(net).state_dict().items()}
            save_file(tensors, str(tmp / f"{name}.safetensors"), metadata={"format": "pt", "net": name})
        if state is not None:
            with open(tmp / STATE_FILE, "wb") as f:
                torch.save(state, f)
    return final


def point_latest(checkpoints_dir: Path, name: str) -> None:
    """Make ``checkpoints/latest`` name the checkpoint folder ``name`` (atomic replace)."""
    atomic_write_text(checkpoints_dir / LATEST, name + "\n")


def is_checkpoint(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and any(path.glob("*.safetensors"))


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder from a checkpoint folder, a ``checkpoints/`` folder or a run folder."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint or run folder")
    if p.is_dir() and is_checkpoint(p):
        return p
    for base in (p, p / "checkpoints"):
        pointer = base / LATEST
        if pointer.is_file():
            target = base / pointer.read_text().strip()
            if is_checkpoint(target):
                return target
            raise CheckpointError(f"{pointer} names {target.name!r}, which is not a complete checkpoint")
    raise CheckpointError(
        f"{p}: not a checkpoint (expected a folder with {CONFIG_FILE} and *.safetensors, "
        f"or a run folder with checkpoints/{LATEST})"
    )


def weights_path(ckpt: Path, name: str) -> Path:
    """The file holding network ``name``'s weights in checkpoint folder ``ckpt``."""
    return ckpt / f"{name}.safetensors"


def read_weights(ckpt: Path, name: str) -> dict[str, torch.Tensor]:
    """Network ``name``'s tensors as saved in checkpoint folder ``ckpt`` (on the CPU), for loading
    into a network or copying the matching ones into another (``model.init_from``)."""
    path = weights_path(ckpt, name)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing weights for network {name!r}")
    return load_file(str(path))


def load_weights(ckpt: Path, nets: dict[str, nn.Module], names: tuple[str, ...] | None = None) -> None:
    """Load ``NAME.safetensors`` into each network (strict: every key must match)."""
    for name in names or tuple(nets):
        path = weights_path(ckpt, name)
        tensors = read_weights(ckpt, name)
        net = _unwrap(nets[name])
        try:
            net.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit network {name!r}: {exc}") from None


def load_state(ckpt: Path) -> dict[str, Any]:
    """The training state saved with a checkpoint."""
    path = ckpt / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no training state (was this checkpoint exported for inference only?)")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_checkpoint_config(ckpt: Path) -> Config:
    return load_config(ckpt / CONFIG_FILE)


_STEP_RE = re.compile(r"^step_(\d+)$")


def prune_step_checkpoints(checkpoints_dir: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` rolling ``step_*`` checkpoints (never ``latest``'s)."""
    pointer = checkpoints_dir / LATEST
    protected = pointer.read_text().strip() if pointer.is_file() else None
    steps = sorted(
        (int(m.group(1)), p) for p in checkpoints_dir.iterdir() if p.is_dir() and (m := _STEP_RE.match(p.name))
    )
    for _, p in steps[:-keep_last] if keep_last > 0 else steps:
        if p.name != protected:
            shutil.rmtree(p, ignore_errors=True)
