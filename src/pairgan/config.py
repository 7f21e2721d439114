"""Typed configuration: dataclasses, YAML presets, dotted overrides, validation with clear errors.

A resolved config has four parts: top-level (``method``, ``seed``), ``data``, ``train`` and ``model``.
``model`` is typed by the method: each method class carries its own ``Config`` dataclass, so a new
method adds its options without touching this file. Every key is checked; a mistyped key fails
with the list of valid keys.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pairgan.errors import ConfigError
from pairgan.fsutil import atomic_write_text
from pairgan.registry import lookup

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
    #: Semantic label maps: number of classes (ids 0..label_nc-1, one-hot on the device);
    #: 0 means the input is an image, not ids.
    label_nc: int = 0
    #: Read instance maps too (pix2pixHD): their edge map joins G's and D's inputs.
    instance: bool = False
    #: Colour-coded label images (like facades): a palette file mapping colours to ids.
    palette: str = ""
    #: Pose pairs: standard deviation in pixels of each keypoint's Gaussian heat map.
    pose_sigma: float = 6.0


@dataclass
class TrainConfig:
    """The training loop: length, optimisation, precision, checkpoints and logging."""

    #: Stop after this many optimisation steps (0 = run ``n_epochs + n_epochs_decay`` epochs).
    max_steps: int = 0
    n_epochs: int = 100
    n_epochs_decay: int = 100
    #: Images per process per forward pass (under torchrun the global batch is
    #: batch_size x processes x accumulate).
    batch_size: int = 1
    #: Gradient accumulation: micro-batches summed into one optimiser step.
    accumulate: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_policy: Literal["linear", "constant", "step", "cosine"] = "linear"
    #: ``step`` policy: multiply the LR by ``lr_gamma`` every ``lr_decay_epochs`` epochs.
    lr_decay_epochs: int = 50
    lr_gamma: float = 0.1
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
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _build_dataclass(cls: type, values: dict[str, Any] | None, prefix: str) -> Any:
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


def validate(cfg: Config) -> None:
    """Cross-field checks that types alone cannot express."""
    d, t = cfg.data, cfg.train
    if d.input_nc < 1 or d.output_nc < 1:
        raise ConfigError(f"data.input_nc and data.output_nc must be >= 1, got {d.input_nc}, {d.output_nc}")
    if d.crop_size < 1 or d.load_size < 1:
        raise ConfigError(f"data.load_size and data.crop_size must be >= 1, got {d.load_size}, {d.crop_size}")
    if d.preprocess in ("resize_and_crop", "scale_width_and_crop") and d.crop_size > d.load_size:
        raise ConfigError(
            f"data.crop_size ({d.crop_size}) is larger than data.load_size ({d.load_size}) "
            f"with preprocess {d.preprocess!r}; expected crop_size <= load_size"
        )
    if t.batch_size < 1:
        raise ConfigError(f"train.batch_size must be >= 1, got {t.batch_size}")
    if t.accumulate < 1:
        raise ConfigError(f"train.accumulate must be >= 1, got {t.accumulate}")
    if t.max_steps < 0 or t.n_epochs < 0 or t.n_epochs_decay < 0:
        raise ConfigError("train.max_steps, train.n_epochs and train.n_epochs_decay must be >= 0")
    if t.max_steps == 0 and t.n_epochs + t.n_epochs_decay == 0:
        raise ConfigError("nothing to train: set train.max_steps or train.n_epochs + train.n_epochs_decay > 0")
    if t.keep_last < 1:
        raise ConfigError(f"train.keep_last must be >= 1, got {t.keep_last}")


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


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A preset as a nested dict, ``base:`` chains resolved. Accepts a shipped name or a YAML path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(
                f"unknown preset {name_or_path!r}; shipped presets: {', '.join(available_presets())} "
                "(or pass a path to a .yaml file)"
            )
    with open(path) as f:
        d = yaml.safe_load(f) or {}
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = d.pop("base", None)
    if base:
        d = _deep_merge(load_preset(base), d)
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
    with open(path) as f:
        d = yaml.safe_load(f) or {}
    try:
        return config_from_dict(d)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
