"""Result cards: one evaluation's scores with their uncertainty, and everything needed to judge
whether two of them may be ranked.

A card holds each metric as a :class:`MetricValue` (the value, an interval and how the interval
was made), the oracle row (the same scores on the real photos), the segmentation score per
class, where the images came from (a checkpoint and its hash, or a folder of outputs), the
protocol it was scored under (name, version, fingerprint) and the machine it ran on. It is
written as ``card.json`` next to ``metrics.json`` and survives a JSON round trip exactly.

Two cards are comparable only when both were scored under a protocol, with the same
fingerprint, and neither is marked not comparable (e.g. scored with another segmenter than the
protocol pins): :func:`comparability_problems` says why not, one sentence per problem.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch

from pairgan import __version__
from pairgan.errors import DataError
from pairgan.fsutil import atomic_write_text

__all__ = [
    "CARD_FILE",
    "CARD_SCHEMA",
    "MetricValue",
    "ResultCard",
    "comparability_problems",
    "environment_info",
    "find_card_file",
    "load_card",
    "save_card",
]

#: The file name of a card inside an evaluation folder.
CARD_FILE = "card.json"

#: The card format version written by this module (``ResultCard.schema``).
CARD_SCHEMA = 1


def _finite_or_none(v: Any) -> float | None:
    """JSON has no NaN/inf: an undefined number is stored as null."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class MetricValue:
    """A score and its uncertainty: ``low``/``high`` bound the interval (a 95% bootstrap
    percentile interval, or mean - std .. mean + std over subsets), ``method`` says which."""

    value: float | None
    low: float | None = None
    high: float | None = None
    std: float | None = None
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "std": self.std, "method": self.method}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | float | int | None) -> "MetricValue":
        if d is None or isinstance(d, (int, float)):  # a bare number: a value without an interval
            return cls(_finite_or_none(d))
        return cls(**{f.name: d.get(f.name, f.default) for f in fields(cls)})


@dataclass
class ResultCard:
    """One evaluation, as the card format describes it (see the module docstring).

    ``protocol``: ``{"name", "version", "fingerprint"}``, or None for an ad-hoc evaluation (then
    the card is never rankable against another). ``source``: ``{"kind": "checkpoint" | "outputs",
    "path", "checkpoint_sha256", "method", "config", "train_steps", "train_wall_s"}``.
    ``per_class``: segmentation per class name, ``{"acc": .., "iou": ..}`` (None where undefined).
    """

    title: str
    protocol: dict[str, Any] | None
    metrics: dict[str, MetricValue]
    oracle: dict[str, MetricValue]
    per_class: dict[str, dict[str, float | None]]
    n_images: int
    source: dict[str, Any]
    segmenter_sha256: str | None = None
    comparable: bool = True
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    schema: int = CARD_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict(to_dict())`` gives an equal card)."""
        d = asdict(self)
        d["metrics"] = {k: v.to_dict() for k, v in self.metrics.items()}
        d["oracle"] = {k: v.to_dict() for k, v in self.oracle.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResultCard":
        """The inverse of :meth:`to_dict`; unknown keys (a newer writer's additions) are ignored.
        A dict without the required keys raises ``DataError``."""
        if not isinstance(d, dict):
            raise DataError(f"a result card must be a JSON object, got {type(d).__name__}")
        missing = [k for k in ("title", "metrics", "n_images", "source") if k not in d]
        if missing:
            raise DataError(f"a result card needs the keys {', '.join(missing)} (found {', '.join(sorted(d))})")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw.setdefault("protocol", None)
        kw["metrics"] = {k: MetricValue.from_dict(v) for k, v in (d.get("metrics") or {}).items()}
        kw["oracle"] = {k: MetricValue.from_dict(v) for k, v in (d.get("oracle") or {}).items()}
        kw.setdefault("per_class", {})
        kw["notes"] = list(kw.get("notes") or [])
        kw["environment"] = dict(kw.get("environment") or {})
        return cls(**kw)

    @property
    def fingerprint(self) -> str | None:
        """The protocol fingerprint, or None for an ad-hoc evaluation."""
        return (self.protocol or {}).get("fingerprint")


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _sanitize(o: Any) -> Any:
    """NaN/inf -> None, recursively: the card is strict JSON (other readers reject NaN)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _sanitize(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_sanitize(v) for v in o]
    return o


def card_json(card: ResultCard) -> str:
    """The card as strict JSON text (sorted keys, NaN written as null)."""
    return json.dumps(_sanitize(card.to_dict()), indent=2, sort_keys=True, default=_json_default,
                      allow_nan=False) + "\n"


def save_card(card: ResultCard, path: str | os.PathLike) -> Path:
    """Write ``card`` atomically to ``path`` (a ``.json`` file, or a folder: ``FOLDER/card.json``)."""
    p = Path(path)
    if p.suffix != ".json":
        p.mkdir(parents=True, exist_ok=True)
        p = p / CARD_FILE
    else:
        p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(p, card_json(card))


def find_card_file(path: str | os.PathLike) -> Path | None:
    """``card.json`` of a file or a folder (the file itself, or ``FOLDER/card.json``), None if absent."""
    p = Path(path)
    if p.is_file():
        return p
    cand = p / CARD_FILE
    return cand if cand.is_file() else None


def load_card(path: str | os.PathLike) -> ResultCard:
    """A card from a ``card.json`` file or a folder holding one; ``DataError`` naming the file
    when it is missing, not JSON or not a card."""
    f = find_card_file(path)
    if f is None:
        raise DataError(f"{path}: no result card (expected a card.json file or a folder holding one)")
    try:
        doc = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{f}: unreadable result card ({exc}); expected the JSON written by pairgan evaluate") from None
    try:
        return ResultCard.from_dict(doc)
    except (DataError, TypeError) as exc:
        raise DataError(f"{f}: not a result card ({exc})") from None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    """The machine a card was made on, without the host name: CPU model and cores, the GPU name
    (on cuda), the device, torch/python/pairgan versions, the platform and the UTC time."""
    dev = torch.device(device)
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "device": str(dev),
        "gpu": None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "pairgan": __version__,
        "platform": f"{sys.platform} {platform.machine()}",
        "utc_time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if dev.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def comparability_problems(cards: Sequence[ResultCard], labels: Sequence[str] | None = None) -> list[str]:
    """Why ``cards`` may not be ranked against each other, one sentence per problem; ``[]`` when
    every card has a protocol, none is marked not comparable and all share one fingerprint.
    ``labels`` name the cards in the sentences (default: their titles)."""
    names = list(labels) if labels is not None else [c.title for c in cards]
    names += [c.title for c in cards[len(names):]]
    problems: list[str] = []
    for name, card in zip(names, cards):
        if not card.protocol or not card.fingerprint:
            problems.append(f"{name} was scored without a protocol (an ad-hoc evaluation): "
                            "re-score it with `pairgan evaluate --protocol NAME`")
        if not card.comparable:
            why = "; ".join(card.notes) if card.notes else "no reason recorded"
            problems.append(f"{name} is marked not comparable: {why}")
    by_fp: dict[str, list[str]] = {}
    for name, card in zip(names, cards):
        if card.fingerprint:
            proto = card.protocol or {}
            by_fp.setdefault(card.fingerprint, []).append(
                f"{name} ({proto.get('name', '?')} v{proto.get('version', '?')}, fingerprint {card.fingerprint[:12]})")
    if len(by_fp) > 1:
        problems.append("different protocol fingerprints: " + " vs ".join(", ".join(v) for v in by_fp.values()))
    return problems
