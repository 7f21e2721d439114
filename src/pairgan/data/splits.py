"""Split specifications: a split folder, or a slice of one.

``train`` names the folder ``ROOT/train``; ``train[:2700]`` and ``train[2700:]`` name slices of it,
taken over the split's items in *natural* file-name order (``2.jpg`` before ``10.jpg``), so a data
set numbered ``1.jpg .. 2975.jpg`` splits into its first 2700 and its last 275 files. This is how a
held-out validation part is carved out of a data set that ships only a training split: train on
``data.train_split=train[:2700]``, evaluate on ``train[2700:]``, and the two never overlap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pairgan.errors import DataError

__all__ = ["natural_key", "parse_split", "select_indices", "select_items"]

_SLICE = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")
_DIGITS = re.compile(r"(\d+)")

T = TypeVar("T")


def parse_split(spec: str) -> tuple[str, slice | None]:
    """``"train"`` -> ``("train", None)``; ``"train[2700:]"`` -> ``("train", slice(2700, None))``.

    Raises DataError for a malformed spec (brackets without ``START:STOP``).
    """
    spec = str(spec).strip()
    if "[" not in spec and "]" not in spec:
        return spec, None
    m = _SLICE.match(spec)
    if m is None:
        raise DataError(f"split {spec!r}: expected a folder name, or NAME[START:STOP] (e.g. train[2700:])")
    start = int(m["start"]) if m["start"] else None
    stop = int(m["stop"]) if m["stop"] else None
    return m["name"], slice(start, stop)


def natural_key(item: Any) -> tuple[Any, ...]:
    """Sort key that orders runs of digits by value: ``2.jpg`` < ``10.jpg``.

    ``item``: a path or name, or a tuple whose first element is one (a data set's pair)."""
    first = item[0] if isinstance(item, tuple) else item
    name = Path(str(first)).name
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _DIGITS.split(name) if p)


def select_indices(items: Sequence[Any], spec: str, where: str | Path = "") -> list[int]:
    """Positions in ``items`` of the items a split spec names: all of them for a plain name, else
    the slice of the naturally sorted items. An empty selection is a DataError naming ``where``."""
    _, sl = parse_split(spec)
    if sl is None:
        return list(range(len(items)))
    chosen = sorted(range(len(items)), key=lambda i: natural_key(items[i]))[sl]
    if not chosen:
        raise DataError(f"{where or spec}: split {spec!r} selects none of its {len(items)} items")
    return chosen


def select_items(items: Sequence[T], spec: str, where: str | Path = "") -> list[T]:
    """The items a split spec names (see :func:`select_indices`)."""
    return [items[i] for i in select_indices(items, spec, where)]
