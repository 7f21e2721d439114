"""Validate a data set before training: pairs, decodability, sizes, channels, crop fit.

Every file is fully decoded once (truncated files are caught), in a small thread pool (Pillow
releases the GIL while decoding). The report lists each problem with the file it concerns.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from pairgan.config import DataConfig
from pairgan.data.datasets import (
    LAYOUT_HELP,
    build_dataset,
    is_shard_spec,
    match_by_stem,
    resolve_layout,
    split_aligned,
    split_exists,
)
from pairgan.data.io import list_images, match_channels, read_image, to_unit_float
from pairgan.data.splits import parse_split, select_items
from pairgan.data.transforms import PairedTransform
from pairgan.data.labels import PaletteFit, colour_decoding
from pairgan.errors import ConfigError, DataError
from pairgan.registry import lookup

_SHOW = 10
#: WebDataset shards are read as a stream: a check decodes this many samples (data.max_items: that many).
SHARD_SAMPLES_CHECKED = 64


def _strip(path: Any, exc: Exception) -> str:
    msg = str(exc)
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


@dataclass
class CheckReport:
    """Result of ``check_dataset``.

    ``rows``: one dict per split with ``split``, ``layout``, ``n_pairs``, ``min_size`` and
    ``max_size`` (``(width, height)`` of the A/B images, ``None`` if none was read),
    ``channels_A`` and ``channels_B`` (sorted channel counts seen on each side, before
    ``direction``) and ``problems`` (how many problems that split has).
    ``problems``: ``(file, problem)`` tuples.
    """

    root: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem_lines(self, limit: int = _SHOW) -> list[str]:
        lines = [f"{f}: {p}" for f, p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more")
        return lines

    def render(self) -> Table:
        """A rich summary table (one row per split); the first problems go in the caption."""
        table = Table(title=f"data check: {self.root}")
        for col in ("split", "layout", "pairs", "min size", "max size", "channels A", "channels B",
                    "problems"):
            table.add_column(col, justify="right" if col in ("pairs", "problems") else "left")

        def size(s: Any) -> str:
            return f"{s[0]}x{s[1]}" if s else "-"

        for r in self.rows:
            table.add_row(
                r["split"], r["layout"], str(r["n_pairs"]), size(r["min_size"]), size(r["max_size"]),
                ",".join(map(str, r["channels_A"])) or "-", ",".join(map(str, r["channels_B"])) or "-",
                str(r["problems"]),
            )
        notes = [f"{r['split']}: {n}" for r in self.rows for n in _as_list(r.get("notes"))]
        table.caption = "\n".join(
            (["ok"] if self.ok else [f"{len(self.problems)} problem(s):", *self.problem_lines()])
            + (["notes:", *notes] if notes else [])
        )
        return table

    def raise_if_failed(self) -> None:
        """DataError listing the first 10 problems and how many more there are."""
        if self.problems:
            raise DataError(
                f"data check of {self.root} found {len(self.problems)} problem(s):\n"
                + "\n".join(self.problem_lines())
            )


def _as_list(value: Any) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _default_splits(cfg: DataConfig, root: Path) -> list[str]:
    splits = [cfg.train_split]
    for s in (cfg.val_split, cfg.test_split):
        if s and s not in splits and ((root / s).is_dir() or split_exists(cfg, s)):
            splits.append(s)
    return splits


class _SplitChecker:
    def __init__(self, cfg: DataConfig, transform: PairedTransform, fit: PaletteFit | None = None) -> None:
        self.cfg = cfg
        self.transform = transform
        self.fit = fit  # the palette fit of the input side (A after direction), with data.palette
        bto_a = cfg.direction == "BtoA"
        # (kind, nc, config key) for the A files and for the B files
        inp = (cfg.input_kind, cfg.input_nc, "data.input_nc")
        out = (cfg.output_kind, cfg.output_nc, "data.output_nc")
        self.side_a, self.side_b = (out, inp) if bto_a else (inp, out)

    def _read(self, path: Path, side: tuple[str, int, str] | None, problems: list) -> np.ndarray | None:
        # As the data sets read: palette indices only for a 1-channel label side of the folders layout.
        try:
            return read_image(path, palette_indices=side is not None and side[0] == "label" and side[1] == 1)
        except DataError as exc:
            problems.append((str(path), _strip(path, exc)))
            return None

    def _side(self, path: Path, arr: np.ndarray, side: tuple[str, int, str], problems: list) -> None:
        kind, nc, key = side
        try:
            if arr.dtype not in (np.uint8, np.uint16, np.bool_):
                to_unit_float(arr, label=(kind == "label"), path=path)
            match_channels(arr[:1, :1], nc, path, key)
        except DataError as exc:
            problems.append((str(path), _strip(path, exc)))

    def _fit(self, path: Path, w: int, h: int, problems: list) -> None:
        try:
            self.transform.plan(w, h)
        except ValueError as exc:
            problems.append((str(path), str(exc)))

    def _measure(self, a: np.ndarray, b: np.ndarray) -> Any:
        if self.fit is None:
            return None
        return self.fit.measure(b if self.cfg.direction == "BtoA" else a)

    def __call__(self, item: tuple[Path, Path | None]) -> tuple[list, Any]:
        """(problems, (width, height, channels A, channels B, palette fit measure or None) or None)
        for one pair."""
        problems: list[tuple[str, str]] = []
        first, second = item
        if second is None:  # aligned
            both = self._read(first, None, problems)
            if both is None:
                return problems, None
            try:
                a, b = split_aligned(both, first)
            except DataError as exc:
                problems.append((str(first), _strip(first, exc)))
                return problems, None
            self._side(first, a, self.side_a, problems)
            self._side(first, b, self.side_b, problems)
            self._fit(first, a.shape[1], a.shape[0], problems)
            return problems, (a.shape[1], a.shape[0], a.shape[2], b.shape[2], self._measure(a, b))
        a = self._read(first, self.side_a, problems)
        b = self._read(second, self.side_b, problems)
        if a is None or b is None:
            return problems, None
        self._side(first, a, self.side_a, problems)
        self._side(second, b, self.side_b, problems)
        if a.shape[:2] != b.shape[:2]:
            problems.append((str(first), f"size {a.shape[1]}x{a.shape[0]} differs from its partner "
                                         f"{second} ({b.shape[1]}x{b.shape[0]}), expected the same size"))
        else:
            self._fit(first, a.shape[1], a.shape[0], problems)
        return problems, (a.shape[1], a.shape[0], a.shape[2], b.shape[2], self._measure(a, b))


def check_dataset(
    cfg: DataConfig, splits: list[str] | None = None, size_multiple: int = 1
) -> CheckReport:
    """Check ``cfg.path``: layout, partners, decodability, sizes, channels and crop fit per split.

    Splits default to ``cfg.train_split`` plus the val/test splits whose folders exist. The train
    split is checked against training preprocessing, the others against evaluation. With
    ``cfg.max_items`` only the first N pairs are decoded (partners are matched for all files).
    """
    root = Path(cfg.path) if cfg.path else Path("")
    report = CheckReport(root=str(root))
    if cfg.path and is_shard_spec(cfg.path):
        return _check_shards(cfg, size_multiple, report)
    if not cfg.path:
        report.problems.append(("data.path", f"empty; expected the data set root folder ({LAYOUT_HELP})"))
        return report
    if not root.is_dir():
        report.problems.append((str(root), "data set folder not found"))
        return report
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for split in splits if splits is not None else _default_splits(cfg, root):
            report.rows.append(_check_split(cfg, root, split, size_multiple, pool, report.problems))
    return report


def _check_shards(cfg: DataConfig, size_multiple: int, report: CheckReport) -> CheckReport:
    """WebDataset shards: the manifest, every shard present at its recorded size (else the error is
    raised), and the first ``data.max_items`` (default :data:`SHARD_SAMPLES_CHECKED`) samples
    decoded as training reads them."""
    report.root = str(cfg.path)
    row: dict[str, Any] = {"split": cfg.train_split, "layout": "shards", "n_pairs": 0, "min_size": None,
                           "max_size": None, "channels_A": [], "channels_B": [], "problems": 0, "notes": []}
    report.rows.append(row)
    n = cfg.max_items or SHARD_SAMPLES_CHECKED
    # Shards that cannot be opened at all (a manifest naming missing or cut shards) raise their
    # one-line error here, as training would; problems of single samples go into the report.
    ds = build_dataset(cfg, cfg.train_split, train=True, size_multiple=size_multiple)
    row["layout"] = f"shards ({ds.shards.layout})"
    row["n_pairs"] = len(ds)
    try:
        sizes = []
        for item in ds.head(n):
            a = item.get("A", item.get("label"))
            sizes.append((int(a.shape[-1]), int(a.shape[-2])))
        if sizes:
            row["min_size"], row["max_size"] = min(sizes), max(sizes)
        row["notes"].append(f"decoded the first {min(n, len(ds))} of {len(ds)} samples (sizes after preprocessing); "
                            "the rest are checked as training reads them")
    except (DataError, ConfigError) as exc:
        report.problems.append((str(cfg.path), _strip(cfg.path, exc)))
    row["problems"] = len(report.problems)
    return report


def _check_split(
    cfg: DataConfig, root: Path, split: str, size_multiple: int, pool: ThreadPoolExecutor,
    problems: list[tuple[str, str]],
) -> dict[str, Any]:
    name, _ = parse_split(split)  # a slice NAME[START:STOP] checks its part of the folder NAME
    folder = root / name
    n0 = len(problems)
    row: dict[str, Any] = {"split": split, "layout": "-", "n_pairs": 0, "min_size": None,
                           "max_size": None, "channels_A": [], "channels_B": [], "problems": 0}
    help_text = LAYOUT_HELP.format(split=split)
    try:
        layout = resolve_layout(cfg, split)
    except DataError as exc:
        problems.append((str(folder), _strip(folder, exc)))
        row["problems"] = len(problems) - n0
        return row
    row["layout"] = layout
    if layout not in ("aligned", "folders"):
        # Label-map, pose and other registered layouts check themselves:
        # ``check_split(cfg, root, split, size_multiple) -> (row updates, [(file, problem)])``.
        try:
            custom = getattr(lookup("dataset", layout), "check_split", None)
        except KeyError as exc:
            problems.append((str(folder), str(exc.args[0])))
            custom = None
        if custom is not None:
            updates, found = custom(cfg, root, split, size_multiple)
            row.update(updates)
            problems.extend(found)
        row["problems"] = len(problems) - n0
        return row
    items: list[tuple[Path, Path | None]] = []
    try:
        if layout == "aligned":
            items = [(f, None) for f in list_images(folder)]
        elif layout == "folders":
            missing = [folder / s for s in ("A", "B") if not (folder / s).is_dir()]
            if missing:
                raise DataError(f"{missing[0]}: folder not found; {help_text}")
            pairs, pair_problems = match_by_stem(list_images(folder / "A"), list_images(folder / "B"))
            problems.extend(pair_problems)
            items = list(pairs)
        else:
            problems.append((str(folder),
                             f"layout {layout!r} cannot be checked; expected aligned or folders"))
    except DataError as exc:
        where = str(exc).split(": ", 1)[0]
        problems.append((where, _strip(where, exc)))
    if items:
        try:
            items = select_items(items, split, folder)
        except DataError as exc:
            problems.append((str(folder), _strip(folder, exc)))
            items = []
    if cfg.max_items > 0:
        items = items[: cfg.max_items]
    if not items and layout in ("aligned", "folders") and len(problems) == n0:
        problems.append((str(folder), f"empty split: no image pairs; {help_text}"))
    row["n_pairs"] = len(items)
    transform = PairedTransform(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip,
                                train=(split == cfg.train_split), size_multiple=size_multiple)
    fit = None
    try:
        decoding = colour_decoding(cfg)
        fit = PaletteFit(decoding, cfg.label_nc) if decoding is not None else None
    except (ConfigError, DataError) as exc:
        problems.append(("data.palette", str(exc)))
    checker = _SplitChecker(cfg, transform, fit)
    widths, heights, ch_a, ch_b = [], [], set(), set()
    for item_problems, info in pool.map(checker, items):
        problems.extend(item_problems)
        if info is not None:
            w, h, ca, cb, measured = info
            if fit is not None and measured is not None:
                fit.add(*measured)
            widths.append(w)
            heights.append(h)
            ch_a.add(ca)
            ch_b.add(cb)
    if widths:
        row["min_size"] = (min(widths), min(heights))
        row["max_size"] = (max(widths), max(heights))
    row["channels_A"], row["channels_B"] = sorted(ch_a), sorted(ch_b)
    if fit is not None and fit.pixels:
        row["palette_fit"] = fit.summary()
        row["notes"] = fit.notes()
    row["problems"] = len(problems) - n0
    return row
