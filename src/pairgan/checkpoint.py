"""Checkpoints that a crash, a kill or a full disk cannot corrupt.

A checkpoint is a folder::

    checkpoints/step_00001000/
        config.yaml          the resolved config (rebuilds the networks with no flags)
        input_profile.json   what the training inputs looked like (pairgan.data.profile; optional,
                             older checkpoints lack it)
        G.safetensors        one file of weights per network
        D.safetensors
        state.pt             optimisers, grad scaler, step, epoch, RNG states, data position
        ema/G.safetensors    with train.ema: the moving average of each generator-side inference
                             network (same names and tensors as G.safetensors); inference loads it

It is written into a hidden temporary folder beside its final place, every file fsync'ed, and
renamed into place only when complete; ``checkpoints/latest`` (a one-line pointer file) is then
replaced atomically. A kill at any moment leaves the previous checkpoint and pointer intact; the
hidden leftovers of a killed save are removed (or, for a folder moved aside, put back) by
:func:`clean_leftovers` when the run starts again. A damaged file (truncated, garbled, or a
``state.pt`` that is not plain tensors) raises :class:`CorruptCheckpoint`, naming the file and the
newest complete older checkpoint of the same run; a full disk raises :class:`CheckpointError`
naming ENOSPC.

A *packaged model* (``pairgan package``, what ``pairgan push`` uploads to the Hub) is a checkpoint
folder for inference only: ``config.yaml``, the inference networks' ``NAME.safetensors`` (the weights
it was packaged with, the moving average or the trained ones), ``package.json`` (which, and where they
came from), ``extra_state.json`` (what inference needs beyond the weights: classes and palette,
pix2pixHD's feature clusters), ``input_profile.json`` and the model card ``README.md``; no
``state.pt``. ``hf://OWNER/NAME[@REVISION]`` resolves to such a folder (:mod:`pairgan.hub`).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from pairgan.config import Config, load_config, save_config
from pairgan.data.profile import InputProfile
from pairgan.errors import CheckpointError
from pairgan.fsutil import atomic_folder, atomic_write_text, is_disk_full, usual_mode
from pairgan.hub import is_hub_ref, snapshot

log = logging.getLogger(__name__)

LATEST = "latest"
STATE_FILE = "state.pt"
#: Checkpoints are built in a hidden folder of this prefix beside their final name (pairgan.fsutil).
TEMP_PREFIX = ".tmp-"
#: pairgan.fsutil.atomic_folder moves a folder it replaces aside under this prefix.
OLD_PREFIX = ".old-"
CONFIG_FILE = "config.yaml"
#: The training inputs' kind and statistics, beside the config (absent in older checkpoints).
INPUT_PROFILE_FILE = "input_profile.json"
CHECKPOINTS = "checkpoints"
#: The subfolder holding the networks' moving averages (``train.ema``).
EMA_DIR = "ema"
#: A packaged model's record: format, which weights it holds (``ema``/``raw``), its source.
PACKAGE_FILE = "package.json"
#: A packaged model's :meth:`Method.extra_state` (classes, palette, feature clusters) as JSON.
EXTRA_STATE_FILE = "extra_state.json"


class CorruptCheckpoint(CheckpointError):
    """A file of a checkpoint is truncated, garbled or not a plain-tensor file.

    ``path`` is the damaged file, ``checkpoint`` its folder and ``fallback`` the newest complete
    older checkpoint of the same ``checkpoints/`` folder (``None`` when there is none).
    """

    def __init__(self, path: Path, problem: str, fallback: Path | None) -> None:
        offer = (f"; the newest complete older checkpoint is {fallback}" if fallback is not None
                 else "; no complete older checkpoint in this run")
        super().__init__(f"{path}: {problem}{offer}")
        self.path = path
        self.checkpoint = path.parent
        self.fallback = fallback


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


def write_weights(path: Path, net: nn.Module, metadata: dict[str, str]) -> None:
    """``net``'s state dict as a safetensors file at ``path`` (CPU copies; ``metadata`` beside
    ``format: pt``). Not atomic by itself: callers write inside an :func:`atomic_folder`."""
    tensors = {k: v.detach().contiguous().cpu().clone() for k, v in _unwrap(net).state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt", **metadata})
    os.chmod(path, usual_mode())  # safetensors creates its files 0600: a checkpoint is readable like its config


def save_checkpoint(
    directory: str | os.PathLike,
    cfg: Config,
    nets: dict[str, nn.Module],
    state: dict[str, Any] | None = None,
    input_profile: InputProfile | None = None,
    ema: dict[str, nn.Module] | None = None,
) -> Path:
    """Write a complete checkpoint folder at ``directory`` atomically; returns its path.

    ``input_profile`` (the training inputs' statistics) is saved as ``input_profile.json``, for
    translate to check its inputs against; ``ema`` (the networks' moving averages, by name) as
    ``ema/NAME.safetensors``.

    A write that fails (a full disk above all) leaves any previous folder of that name as it was
    and raises :class:`CheckpointError` naming the folder and the cause (ENOSPC for a full disk).
    """
    final = Path(directory)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_folder(final, temp_prefix=TEMP_PREFIX) as tmp:
            save_config(cfg, tmp / CONFIG_FILE)
            if input_profile is not None:
                # Inside the folder being built: atomic_folder makes the whole folder appear at once.
                (tmp / INPUT_PROFILE_FILE).write_text(json.dumps(input_profile.to_dict(), indent=1) + "\n",
                                                      encoding="utf-8")
            for name, net in nets.items():
                write_weights(tmp / f"{name}.safetensors", net, {"net": name})
            if ema:
                (tmp / EMA_DIR).mkdir()
                for name, net in ema.items():
                    write_weights(weights_path(tmp, name, ema=True), net, {"net": name, "weights": "ema"})
            if state is not None:
                with open(tmp / STATE_FILE, "wb") as f:
                    torch.save(state, f)
    except (OSError, RuntimeError, SafetensorError) as exc:
        if isinstance(exc, RuntimeError) and not any(w in str(exc) for w in _TORCH_WRITE_FAILURES):
            raise  # not a failed write: a bug, with its traceback
        raise CheckpointError(f"{final}: could not write the checkpoint: {_write_failure(exc, final.parent)}") from exc
    return final


#: What torch.save's zip writer says when a write fails (it raises RuntimeError, not OSError).
_TORCH_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter", "inline_container", "file write failed")


def _write_failure(exc: BaseException, folder: Path) -> str:
    """Why a checkpoint write failed, in words; a full disk is named ENOSPC whichever writer saw it
    (an OSError, safetensors' ``StorageFull``, torch's zip writer's ``unexpected pos``)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    full = is_disk_full(exc)
    if not full and "unexpected pos" in str(exc):
        try:
            full = shutil.disk_usage(folder).free < 64 * 2**20
        except OSError:
            full = False
        if not full:
            return f"{text} (the write stopped short: is the disk full?)"
    if full:
        return f"no space left on device (ENOSPC) in {folder}"
    return text


def point_latest(checkpoints_dir: Path, name: str) -> None:
    """Make ``checkpoints/latest`` name the checkpoint folder ``name`` (atomic replace)."""
    atomic_write_text(checkpoints_dir / LATEST, name + "\n")


def is_checkpoint(path: Path) -> bool:
    """``path`` looks like a checkpoint folder (a config and weights; not checked for damage)."""
    return (path / CONFIG_FILE).is_file() and any(path.glob("*.safetensors"))


def has_checkpoints(run: Path) -> bool:
    """Run folder ``run`` holds a ``latest`` pointer or any checkpoint folder (damaged or not)."""
    folder = Path(run) / CHECKPOINTS
    return folder.is_dir() and ((folder / LATEST).exists() or any(
        p.is_dir() and not p.name.startswith(".") and is_checkpoint(p) for p in folder.iterdir()))


def damage(ckpt: Path, *, need_state: bool = True) -> tuple[Path, str] | None:
    """The first damaged file of checkpoint folder ``ckpt`` and what is wrong with it, or ``None``
    when every file reads (weights headers checked against the file size, ``state.pt`` loaded as
    plain tensors; ``need_state``: a missing ``state.pt`` counts as damage)."""
    if not is_checkpoint(ckpt):
        return ckpt, "not a complete checkpoint (no config.yaml or no *.safetensors)"
    problem = _config_problem(ckpt / CONFIG_FILE)
    if problem is not None:
        return ckpt / CONFIG_FILE, problem
    for path in sorted(ckpt.glob("*.safetensors")) + sorted((ckpt / EMA_DIR).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        except (SafetensorError, OSError) as exc:
            return path, _weights_problem(exc)
    state = ckpt / STATE_FILE
    if state.is_file():
        try:
            _torch_load(state)
        except CheckpointError as exc:
            return state, str(exc).split(": ", 1)[1]
    elif need_state:
        return state, "missing"
    return None


def step_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """The ``step_*`` checkpoint folders of ``checkpoints_dir``, newest (highest step) first."""
    if not checkpoints_dir.is_dir():
        return []
    steps = [(int(m.group(1)), p) for p in checkpoints_dir.iterdir()
             if p.is_dir() and (m := _STEP_RE.match(p.name))]
    return [p for _, p in sorted(steps, reverse=True)]


def newest_complete(checkpoints_dir: Path, *, before: Path | None = None, need_state: bool = True) -> Path | None:
    """The newest undamaged ``step_*`` checkpoint in ``checkpoints_dir`` (older than step
    checkpoint ``before`` when given, never ``before`` itself), or ``None``."""
    limit = None
    if before is not None and (m := _STEP_RE.match(before.name)):
        limit = int(m.group(1))
    for p in step_checkpoints(checkpoints_dir):
        if before is not None and p.name == before.name:
            continue
        if limit is not None and int(_STEP_RE.match(p.name).group(1)) > limit:
            continue
        if damage(p, need_state=need_state) is None:
            return p
    return None


def _fallback_for(ckpt: Path) -> Path | None:
    if ckpt.parent.name != CHECKPOINTS:
        return None
    return newest_complete(ckpt.parent, before=ckpt)


def what_is_kept(run: Path) -> str:
    """After a run stopped on an error (a full disk): the checkpoint it can be resumed from and the
    command, or, with none, how to start it over."""
    try:
        kept = resolve_checkpoint(run)
    except CheckpointError:
        return f"the run has no complete checkpoint yet: start it over with pairgan train --out {run}"
    return f"kept {kept}: continue with pairgan train --resume {run}"


def run_of(ckpt: Path) -> Path | None:
    """The run folder that checkpoint folder ``ckpt`` belongs to (``RUN/checkpoints/NAME``), or ``None``."""
    ckpt = Path(ckpt).absolute()
    if ckpt.parent.name == CHECKPOINTS and ((ckpt.parent / LATEST).is_file()
                                            or (ckpt.parent.parent / CONFIG_FILE).is_file()):
        return ckpt.parent.parent
    return None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder from a checkpoint folder, a ``checkpoints/`` folder, a run folder or a
    Hub model ``hf://OWNER/NAME[@REVISION]`` (its snapshot in the Hugging Face cache)."""
    if is_hub_ref(path):
        return snapshot(path)
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint or run folder")
    if p.is_dir() and is_checkpoint(p):
        return p
    for base in (p, p / CHECKPOINTS):
        pointer = base / LATEST
        if pointer.is_file():
            target = base / pointer.read_text().strip()
            if is_checkpoint(target):
                return target
            fallback = newest_complete(base, need_state=False)
            if fallback is not None:
                log.warning("warning: %s names %r, which is not a complete checkpoint; using the newest "
                            "complete one, %s", pointer, target.name, fallback)
                return fallback
            raise CheckpointError(f"{pointer} names {target.name!r}, which is not a complete checkpoint, "
                                  f"and {base} holds no other")
    if (p / CHECKPOINTS).is_dir() and not has_checkpoints(p):
        raise CheckpointError(f"{p}: a run folder with no complete checkpoint (it stopped before its first "
                              f"one); nothing to resume: start it over with pairgan train --out {p} ...")
    raise CheckpointError(
        f"{p}: not a checkpoint (expected a folder with {CONFIG_FILE} and *.safetensors, "
        f"or a run folder with checkpoints/{LATEST})"
    )


def weights_path(ckpt: Path, name: str, *, ema: bool = False) -> Path:
    """The file holding network ``name``'s weights in checkpoint folder ``ckpt`` (``ema``: its
    moving average, ``ema/NAME.safetensors``)."""
    return (ckpt / EMA_DIR if ema else ckpt) / f"{name}.safetensors"


def ema_names(ckpt: Path) -> tuple[str, ...]:
    """The networks whose moving averages checkpoint folder ``ckpt`` holds (empty: trained without
    ``train.ema``, or an older checkpoint)."""
    folder = Path(ckpt) / EMA_DIR
    return tuple(sorted(p.stem for p in folder.glob("*.safetensors"))) if folder.is_dir() else ()


def read_weights(ckpt: Path, name: str, *, ema: bool = False) -> dict[str, torch.Tensor]:
    """Network ``name``'s tensors as saved in checkpoint folder ``ckpt`` (on the CPU), for loading
    into a network or copying the matching ones into another (``model.init_from``); ``ema``: its
    moving average."""
    path = weights_path(ckpt, name, ema=ema)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing {'EMA ' if ema else ''}weights for network {name!r}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CorruptCheckpoint(path, _weights_problem(exc), _fallback_for(ckpt)) from None


def _weights_problem(exc: BaseException) -> str:
    return f"not a readable safetensors file, truncated or garbled ({str(exc).splitlines()[0]})"


def load_weights(ckpt: Path, nets: dict[str, nn.Module], names: tuple[str, ...] | None = None, *,
                 ema: bool = False) -> None:
    """Load ``NAME.safetensors`` (``ema``: ``ema/NAME.safetensors``) into each network (strict:
    every key must match)."""
    for name in names or tuple(nets):
        path = weights_path(ckpt, name, ema=ema)
        tensors = read_weights(ckpt, name, ema=ema)
        net = _unwrap(nets[name])
        misfit = _misfit(net, tensors)
        if misfit:
            raise CheckpointError(f"{path}: weights do not fit network {name!r}: {misfit}")
        try:
            net.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit network {name!r}: {' '.join(str(exc).split())}") from None


def _misfit(net: nn.Module, tensors: dict[str, torch.Tensor]) -> str:
    """How ``tensors`` fail to fit ``net``, in one line ('' when they fit): torch's own message
    lists every tensor, one per line."""
    own = net.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    shapes = [k for k in own if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)]
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} tensor(s) of another shape (first: {k} is {tuple(tensors[k].shape)} in the "
                     f"file, {tuple(own[k].shape)} in the network)")
    if missing:
        parts.append(f"{len(missing)} missing (first: {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
    if parts:
        parts.append("was it saved with another config?")
    return "; ".join(parts)


def load_state(ckpt: Path) -> dict[str, Any]:
    """The training state saved with a checkpoint."""
    path = ckpt / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no training state (was this checkpoint exported for inference only?)")
    try:
        return _torch_load(path)
    except CheckpointError as exc:
        raise CorruptCheckpoint(path, str(exc).split(": ", 1)[1], _fallback_for(ckpt)) from None


def _torch_load(path: Path) -> Any:
    """``torch.load`` of plain tensors only; any failure is a :class:`CheckpointError` naming
    ``path``. Torch's own advice for a file that needs more (set ``weights_only=False``) would run
    whatever code the file carries, so it is never passed on."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: not a plain-tensor checkpoint (it holds Python objects); it must "
                              "not be loaded with pickle") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: truncated or damaged ({first})") from None


def load_input_profile(ckpt: Path) -> InputProfile | None:
    """The training inputs' profile saved with checkpoint folder ``ckpt``; None when the checkpoint
    has none (older ones) or it cannot be read (a warning names the file: the checks it feeds are
    advice, so a damaged profile never stops a translation)."""
    path = Path(ckpt) / INPUT_PROFILE_FILE
    if not path.is_file():
        return None
    try:
        return InputProfile.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("warning: %s: not a readable input profile (%s); inputs are not checked against it",
                    path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None


def _json_record(path: Path) -> dict[str, Any] | None:
    """A JSON object file of a checkpoint, None when absent; damaged: :class:`CheckpointError`."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not readable JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(record).__name__}")
    return record


def load_package_info(ckpt: Path) -> dict[str, Any] | None:
    """A packaged model's ``package.json`` (None for a training checkpoint)."""
    info = _json_record(Path(ckpt) / PACKAGE_FILE)
    if info is not None and info.get("weights") not in ("ema", "raw"):
        raise CheckpointError(f"{Path(ckpt) / PACKAGE_FILE}: weights {info.get('weights')!r}, expected ema or raw")
    return info


def load_extra_state(ckpt: Path) -> dict[str, Any] | None:
    """A packaged model's ``extra_state.json`` (None for a training checkpoint, whose method finds its
    classes and clusters in its data set and run folder)."""
    return _json_record(Path(ckpt) / EXTRA_STATE_FILE)


def load_checkpoint_config(ckpt: Path) -> Config:
    """The config saved with checkpoint folder ``ckpt``; an empty or unparsable file is a
    :class:`CorruptCheckpoint` (an empty one would silently rebuild the default networks)."""
    path = Path(ckpt) / CONFIG_FILE
    problem = _config_problem(path)
    if problem is not None:
        raise CorruptCheckpoint(path, problem, _fallback_for(Path(ckpt)))
    return load_config(path)


def _config_problem(path: Path) -> str | None:
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return f"not a readable YAML config, truncated or garbled ({str(exc).splitlines()[0]})"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not isinstance(d, dict) or not d:
        return "empty or not a mapping of config sections (truncated?)"
    return None


_STEP_RE = re.compile(r"^step_(\d+)$")


def clean_leftovers(checkpoints_dir: Path) -> list[str]:
    """Tidy what a killed save left in ``checkpoints_dir``; returns what was done, one line each.

    A half-built ``.tmp-NAME-PID`` folder and a half-written ``.latest.*.tmp`` pointer are removed.
    An ``.old-NAME-PID`` folder (moved aside to be replaced) is removed when ``NAME`` exists, and
    renamed back to ``NAME`` when the kill came before the new folder took its place.

    Safe to run in several processes at once (``pairgan train --resume`` under torchrun tidies in
    every rank before the process group exists): what another process removed or put back first
    is skipped, not an error.
    """
    done: list[str] = []
    if not checkpoints_dir.is_dir():
        return done
    for p in sorted(checkpoints_dir.iterdir()):
        if p.name.startswith(OLD_PREFIX) and p.is_dir():
            name = p.name[len(OLD_PREFIX):].rsplit("-", 1)[0]
            if name and not (checkpoints_dir / name).exists():
                try:
                    os.replace(p, checkpoints_dir / name)
                except FileNotFoundError:  # another rank put it back between the check and here
                    continue
                done.append(f"put back {name} from {p.name}, left by an interrupted save")
                continue
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p.name}, left by an interrupted save")
        elif p.name.startswith(TEMP_PREFIX) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p.name}, left by an interrupted save")
        elif p.name.startswith(f".{LATEST}.") and p.name.endswith(".tmp") and p.is_file():
            p.unlink(missing_ok=True)
            done.append(f"removed {p.name}, left by an interrupted save")
    for line in done:
        log.warning("warning: %s: %s", checkpoints_dir, line)
    return done


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
