"""Typed configuration: dataclasses, YAML presets, dotted overrides, validation with clear errors.

A resolved config has four parts: top-level (``method``, ``seed``), ``data``, ``train`` and ``model``.
``model`` is typed by the method: each method class carries its own ``Config`` dataclass, so a new
method adds its options without touching this file. Every key is checked; a mistyped key fails
with the list of valid keys.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pairgan.errors import ConfigError
from pairgan.fsutil import atomic_write_text
from pairgan.registry import available, lookup
from pairgan.runtime import DEVICE_CHOICES, check_device_name

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass
class DataConfig:
    """Where the pairs are and how they are read and augmented."""

    path: str = ""
    #: ``auto`` detects aligned (A|B in one file) or folders (``A/``, ``B/`` per split).
    layout: str = "auto"
    #: ``AtoB``: translate the left half / ``A`` folder into the right half / ``B`` folder.
    direction: Literal["AtoB", "BtoA"] = "AtoB"
    input_nc: int = 3
    output_nc: int = 3
    #: ``label`` inputs are resized with nearest neighbour (ids/colour codes must not blend).
    input_kind: Literal["image", "label"] = "image"
    output_kind: Literal["image", "label"] = "image"
    preprocess: Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"] = (
        "resize_and_crop"
    )
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    #: Use only the first N items of a split (0 = all); handy for quick experiments.
    max_items: int = 0
    #: Shuffle the training items every epoch (an order drawn from (seed, epoch)). False: the
    #: stored order, every epoch (a folder's natural file order; shards and their samples in
    #: manifest order, no shuffle buffer), e.g. to compare a folder with its shards batch by batch.
    shuffle: bool = True
    #: WebDataset shards (data.path a manifest or shard pattern): each loader worker shuffles its
    #: samples through a buffer of this many raw samples (their files' bytes, not decoded; memory
    #: is about buffer x sample bytes x workers per process). 0 = no buffer (shard order only).
    shuffle_buffer: int = 1000
    #: Semantic label maps: number of classes (ids 0..label_nc-1, one-hot on the device);
    #: 0 means the input is an image, not ids.
    label_nc: int = 0
    #: Read instance maps too (pix2pixHD): their edge map joins G's and D's inputs.
    instance: bool = False
    #: Colour-coded label images (like facades): a palette file mapping colours to ids, or a
    #: built-in palette name (``cityscapes``: 19 classes + void 19; ``cityscapes-35``: labelIds).
    palette: str = ""
    #: How label colours become ids: ``exact`` (every pixel a palette colour: PNG label maps) or
    #: ``nearest`` (the nearest palette colour; farther than palette_max_distance: the void id),
    #: for label maps that went through JPEG or a resize.
    palette_match: Literal["exact", "nearest"] = "exact"
    #: ``nearest``: the largest Euclidean RGB distance (0..255 scale) still decoded as a colour.
    palette_max_distance: float = 50.0
    #: ``nearest``: the id far pixels get (-1: the built-in palette's void id; a palette file
    #: needs one for nearest matching).
    palette_void_id: int = -1
    #: How label maps' ids reach the network: ``ids`` as stored (checked against label_nc);
    #: ``cityscapes-train`` reads Cityscapes labelIds (0..33) as the 19 training classes
    #: (trainIds 0..18) + void 19 (every other id), the CRN reference's 20 channels
    #: (``data.label_nc=20``). Colours of the built-in ``cityscapes`` palette already decode to
    #: that encoding and are kept as they are.
    label_encoding: Literal["ids", "cityscapes-train"] = "ids"
    #: Applied to every target photo the data set reads, after the resize/crop/flip (at the
    #: training resolution, where the reference computed it): ``none``, or ``vivid`` (the CRN
    #: reference's tone-mapped Cityscapes photos: gamma 0.75, a multi-scale LAB tone map,
    #: saturation x1.1; :mod:`pairgan.data.tonemap`).
    target_transform: Literal["none", "vivid"] = "none"
    #: Pose pairs: how each keypoint becomes a map: ``gaussian`` (pose_sigma) or ``disk`` (a
    #: binary disk of radius pose_disk_radius, as PG2).
    pose_encoding: Literal["gaussian", "disk"] = "gaussian"
    #: Pose pairs: standard deviation in pixels of each keypoint's Gaussian heat map.
    pose_sigma: float = 6.0
    #: Pose pairs, ``pose_encoding: disk``: the disks' radius in pixels (PG2: 4).
    pose_disk_radius: float = 4.0


@dataclass
class TrainConfig:
    """The training loop: length, optimisation, precision, checkpoints and logging."""

    #: Stop after this many optimisation steps (0 = run ``n_epochs + n_epochs_decay`` epochs).
    max_steps: int = 0
    #: A wall-clock budget in minutes (0 = none): training stops when it is spent, with a final
    #: checkpoint. The LR schedule then runs over the steps the budget is expected to allow,
    #: estimated from the first :data:`pairgan.train.budget.CALIBRATION_STEPS` steps (logged).
    max_minutes: float = 0.0
    n_epochs: int = 100
    n_epochs_decay: int = 100
    #: Images per process per forward pass (under torchrun the global batch is
    #: batch_size x processes x accumulate).
    batch_size: int = 1
    #: Gradient accumulation: micro-batches summed into one optimiser step.
    accumulate: int = 1
    lr: float = 2e-4
    #: The discriminators' learning rate (D, DRPAN's reviser, GGB's guiding blocks); 0 = ``lr``.
    lr_D: float = 0.0
    beta1: float = 0.5
    beta2: float = 0.999
    lr_policy: Literal["linear", "constant", "step", "cosine"] = "linear"
    #: ``step`` policy: multiply the LR by ``lr_gamma`` every ``lr_decay_epochs`` epochs.
    lr_decay_epochs: int = 50
    lr_gamma: float = 0.1
    #: Exponential moving average of the generator-side inference networks (0 = off, e.g. 0.999):
    #: after every optimiser step ``ema = ema * d + weights * (1 - d)`` with d = this value (buffers,
    #: such as batch-norm running statistics, are copied, not averaged). Checkpoints save it under
    #: ``ema/``; inference, export, evaluation, samples and validation use it when present.
    ema: float = 0.0
    #: Averaging starts after this many optimisation steps; until then the EMA copy equals G.
    ema_start: int = 0
    #: Ramp-up (0 = off; e.g. 0.05): at step t the average's half-life is at most this share of t
    #: steps, so a short run is not dominated by its early weights (StyleGAN2-ADA's ``ema_rampup``).
    ema_rampup: float = 0.0
    #: Adam through PyTorch's fused kernel (one pass over all parameters; same arithmetic,
    #: rounded differently): about 3x faster optimiser steps on CPU. False = PyTorch's default.
    fused_optimizer: bool = True
    #: Activation checkpointing in the generators that offer it (pix2pixHD's, the ResNet one):
    #: keeps about sqrt(layers) activations and recomputes the rest in backward. Same results,
    #: less memory, one more generator forward per step.
    grad_checkpoint: bool = False
    #: CUDA only: TensorFloat-32 matmuls and convolutions (Ampere and newer). Faster; inputs
    #: rounded to a 10-bit mantissa, so results move at the 1e-3 level. Off = true fp32.
    tf32: bool = False
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: str = "auto"
    #: Deterministic algorithms and a fixed data order: bitwise-repeatable runs on CPU.
    deterministic: bool = False
    num_workers: int = 2
    #: Save a checkpoint every N steps (0 = only at epoch checkpoints and at the end).
    save_every: int = 0
    #: Keep a permanent checkpoint every N epochs (0 = never).
    save_epoch_every: int = 5
    #: How many rolling step checkpoints to keep (the newest K).
    keep_last: int = 3
    log_every: int = 10
    sample_every: int = 200
    #: Where scalars, sample grids, the config, the final checkpoint and evaluation cards go:
    #: any of ``tensorboard``, ``wandb``, ``mlflow`` (the last two: pip extras; pairgan.trackers).
    loggers: list[str] = field(default_factory=lambda: ["tensorboard"])
    #: W&B project and entity (""): W&B's own default.
    wandb_project: str = "pairgan"
    wandb_entity: str = ""
    #: MLflow tracking URI ("": ``MLFLOW_TRACKING_URI``, else MLflow's default ``./mlruns``) and experiment.
    mlflow_tracking_uri: str = ""
    mlflow_experiment: str = "pairgan"
    #: Validate the data set (pairs, sizes, channels) before training starts.
    check_data: bool = True
    #: Score the val split every N steps (0 = never), logged as ``val/<metric>``.
    val_every: int = 0
    #: Metrics for that (names of ``pairgan evaluate --metrics``, comma-separated).
    val_metrics: str = "l1,psnr,ssim"
    #: Use the first N items of the val split (0 = all).
    val_max_items: int = 50
    #: Keep ``checkpoints/best`` by this metric: ``NAME`` (its own direction), ``+NAME`` (higher
    #: is better) or ``-NAME`` (lower is better); "" = no best checkpoint.
    best_metric: str = ""


@dataclass
class Config:
    """A full, resolved configuration (what a run folder and every checkpoint carry)."""

    method: str = "pix2pix"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- validation


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` to ``tp`` or raise ConfigError naming the key, the value and the type."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [
                v for v in value.split(",") if v.strip()
            ]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if not f.is_integer():
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _build_dataclass(cls: type, values: dict[str, Any] | None, prefix: str) -> Any:
    if values is not None and not isinstance(values, dict):
        raise ConfigError(
            f"{prefix.rstrip('.')}: expected a section of keys ({', '.join(prefix + f.name for f in dataclasses.fields(cls)[:3])}, ...), "
            f"got {values!r}"
        )
    values = dict(values or {})
    types = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'; valid keys under "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(prefix + n for n in names)}"
        )
    kwargs = {k: _coerce(v, types[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def model_config_class(method: str) -> type:
    """The dataclass that types ``model`` for ``method`` (from the method registry)."""
    try:
        return lookup("method", method).Config
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None


def config_from_dict(d: dict[str, Any]) -> Config:
    """Build and validate a Config from a nested dict (a preset or a saved config)."""
    d = dict(d)
    d.pop("base", None)
    top = {f.name for f in dataclasses.fields(Config)}
    unknown = [k for k in d if k not in top]
    if unknown:
        raise ConfigError(
            f"unknown config key {unknown[0]!r}; valid top-level keys: {', '.join(sorted(top))}"
        )
    method = _coerce(d.get("method", "pix2pix"), str, "method")
    cfg = Config(
        method=method,
        seed=_coerce(d.get("seed", 0), int, "seed"),
        data=_build_dataclass(DataConfig, d.get("data"), "data."),
        train=_build_dataclass(TrainConfig, d.get("train"), "train."),
        model=_build_dataclass(model_config_class(method), d.get("model"), "model."),
    )
    validate(cfg)
    return cfg


#: Ranges of data and train keys, checked after typing: (key, test, what is expected).
_RANGES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("data.input_nc", lambda v: v >= 1, ">= 1"),
    ("data.output_nc", lambda v: v >= 1, ">= 1"),
    ("data.load_size", lambda v: v >= 1, ">= 1"),
    ("data.crop_size", lambda v: v >= 1, ">= 1"),
    ("data.max_items", lambda v: v >= 0, ">= 0 (0 = all)"),
    ("data.shuffle_buffer", lambda v: v >= 0, ">= 0 (0 = no sample buffer)"),
    ("data.label_nc", lambda v: v >= 0, ">= 0 (0 = images, not ids)"),
    ("data.pose_sigma", lambda v: v > 0, "> 0"),
    ("data.pose_disk_radius", lambda v: v > 0, "> 0"),
    ("data.palette_max_distance", lambda v: v >= 0, ">= 0 (Euclidean RGB distance, 0..255 scale)"),
    ("data.palette_void_id", lambda v: v >= -1, ">= 0, or -1 for the palette's own void id"),
    ("train.max_steps", lambda v: v >= 0, ">= 0 (0 = run the epochs)"),
    ("train.max_minutes", lambda v: v >= 0, ">= 0 (0 = no wall-clock budget)"),
    ("train.n_epochs", lambda v: v >= 0, ">= 0"),
    ("train.n_epochs_decay", lambda v: v >= 0, ">= 0"),
    ("train.batch_size", lambda v: v >= 1, ">= 1"),
    ("train.accumulate", lambda v: v >= 1, ">= 1"),
    ("train.lr", lambda v: v >= 0, ">= 0 (0 = frozen weights, e.g. an untrained baseline)"),
    ("train.lr_D", lambda v: v >= 0, ">= 0 (0 = the same as train.lr)"),
    ("train.ema", lambda v: 0 <= v < 1, ">= 0 and < 1 (0 = off; e.g. 0.999)"),
    ("train.ema_start", lambda v: v >= 0, ">= 0"),
    ("train.ema_rampup", lambda v: 0 <= v <= 1, ">= 0 and <= 1 (0 = off; e.g. 0.05)"),
    ("train.beta1", lambda v: 0 <= v < 1, ">= 0 and < 1"),
    ("train.beta2", lambda v: 0 <= v < 1, ">= 0 and < 1"),
    ("train.lr_decay_epochs", lambda v: v >= 1, ">= 1"),
    ("train.lr_gamma", lambda v: v > 0, "> 0"),
    ("train.num_workers", lambda v: v >= 0, ">= 0"),
    ("train.save_every", lambda v: v >= 0, ">= 0 (0 = only epoch checkpoints and the end)"),
    ("train.save_epoch_every", lambda v: v >= 0, ">= 0 (0 = never)"),
    ("train.keep_last", lambda v: v >= 1, ">= 1"),
    ("train.log_every", lambda v: v >= 1, ">= 1"),
    ("train.sample_every", lambda v: v >= 0, ">= 0 (0 = never)"),
    ("train.val_every", lambda v: v >= 0, ">= 0 (0 = never)"),
    ("train.val_max_items", lambda v: v >= 0, ">= 0 (0 = all)"),
)

#: Model keys that name a registered component, by the registry kind they name.
_MODEL_COMPONENTS = {"generator": "generator", "discriminator": "discriminator"}

#: Model keys that may be negative (everything else numeric in ``model`` is a size, a count, a
#: weight or a gain, where a negative value means nothing).
_MODEL_SIGNED = frozenset({"ignore_index"})


def _check_model_numbers(model: Any) -> None:
    """No negative size, count, weight or gain in ``model`` (lists included)."""
    for f in dataclasses.fields(model):
        if f.name in _MODEL_SIGNED:
            continue
        value = getattr(model, f.name)
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, (int, float)) and not isinstance(item, bool) and item < 0:
                raise ConfigError(f"model.{f.name}: {value!r} is negative; expected a value >= 0")


def _names_a_device(name: str) -> bool:
    """``name`` is a device a run can train on (the spelling only; whether this machine has it is
    checked when the run starts)."""
    try:
        device = check_device_name(name)
    except ConfigError:
        return False
    return device is None or device.type != "meta"  # meta holds no data: pairgan's internal use only


def validate(cfg: Config) -> None:
    """Ranges and cross-field checks that types alone cannot express; each failure names the key,
    the value and what is expected."""
    d, t = cfg.data, cfg.train
    for key, test, expected in _RANGES:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not test(value):
            raise ConfigError(f"{key}: {value!r} is out of range; expected {expected}")
    if d.preprocess in ("resize_and_crop", "scale_width_and_crop") and d.crop_size > d.load_size:
        raise ConfigError(
            f"data.crop_size ({d.crop_size}) is larger than data.load_size ({d.load_size}) "
            f"with preprocess {d.preprocess!r}; expected crop_size <= load_size"
        )
    if d.palette_match == "nearest" and not d.palette:
        raise ConfigError("data.palette_match: 'nearest' needs data.palette (a built-in name such as "
                          "cityscapes, or a palette file); expected a palette or palette_match=exact")
    if d.target_transform != "none" and d.output_nc != 3:
        raise ConfigError(f"data.target_transform: {d.target_transform!r} works on colour photos; expected "
                          f"data.output_nc=3, got {d.output_nc} (or data.target_transform=none)")
    if d.label_encoding == "cityscapes-train" and d.label_nc != 20:
        raise ConfigError(f"data.label_encoding: cityscapes-train gives 20 classes (19 Cityscapes training "
                          f"classes + void 19), but data.label_nc is {d.label_nc}; expected data.label_nc=20 "
                          "(or data.label_encoding=ids for the stored ids)")
    if t.max_steps == 0 and t.n_epochs + t.n_epochs_decay == 0:
        raise ConfigError("nothing to train: set train.max_steps or train.n_epochs + train.n_epochs_decay > 0")
    unknown = [name for name in t.loggers if name not in ("tensorboard", "wandb", "mlflow")]
    if unknown or len(set(t.loggers)) != len(t.loggers):
        raise ConfigError(f"train.loggers: {t.loggers!r}; expected distinct names among tensorboard, wandb, mlflow")
    if not _names_a_device(t.device):
        raise ConfigError(f"train.device: {t.device!r} is not a device; expected one of {DEVICE_CHOICES}")
    if dataclasses.is_dataclass(cfg.model):
        _check_model_numbers(cfg.model)
        for key, kind in _MODEL_COMPONENTS.items():
            name = getattr(cfg.model, key, None)
            if isinstance(name, str) and name not in available(kind):
                raise ConfigError(f"model.{key}: unknown {kind} {name!r}; registered {kind}s: "
                                  f"{', '.join(available(kind))}")


# --------------------------------------------------------------------------- presets & overrides


def available_presets() -> list[str]:
    """Names of the presets shipped with pairgan."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _read_yaml(path: Path) -> Any:
    """A YAML file's content; ConfigError naming the file (and the line and column of a syntax
    error) when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}); expected a YAML config") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}); expected a YAML config file") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None


def load_preset(name_or_path: str, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A preset as a nested dict, ``base:`` chains resolved. Accepts a shipped name or a YAML path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
            raise ConfigError(f"preset file {name_or_path!r} does not exist; expected a shipped preset name "
                              f"({', '.join(available_presets())}) or a path to a .yaml file")
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(
                f"unknown preset {name_or_path!r}; shipped presets: {', '.join(available_presets())} "
                "(or pass a path to a .yaml file)"
            )
    if path.resolve() in _chain:
        raise ConfigError(f"{path}: its base: chain comes back to itself")
    d = _read_yaml(path)
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got a {type(d).__name__}")
    base = d.pop("base", None)
    if base:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base: {base!r}; expected a preset name or a path to a .yaml file")
        d = _deep_merge(load_preset(base, (*_chain, path.resolve())), d)
    return d


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.batch_size=4'`` -> (['train', 'batch_size'], 4); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. train.batch_size=4")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted ``key=value`` overrides to a nested dict (validated later, with the rest)."""
    d = _deep_merge({}, d)
    for text in overrides:
        parts, value = parse_override(text)
        node = d
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {p!r} is not a section")
            node = nxt
        node[parts[-1]] = value
    return d


def build_config(preset: str, overrides: list[str] | None = None, data_path: str | None = None) -> Config:
    """Preset + overrides (+ the data path) -> a validated Config."""
    d = load_preset(preset)
    if data_path is not None:
        d = _deep_merge(d, {"data": {"path": str(data_path)}})
    return config_from_dict(apply_overrides(d, overrides or []))


def all_keys(cfg: Config) -> list[str]:
    """Every dotted key this config accepts (for help texts and error messages)."""
    keys = ["method", "seed"]
    for section in ("data", "train", "model"):
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(getattr(cfg, section))]
    return keys


# --------------------------------------------------------------------------- files


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a saved config."""
    d = _read_yaml(Path(path))
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got a {type(d).__name__}")
    try:
        return config_from_dict(d)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
