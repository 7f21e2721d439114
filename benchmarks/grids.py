"""The benchmarks' picture grids: one row per image file, one column per folder of same-named images."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def spread_picks(folder: Path, n: int) -> list[str]:
    """``n`` file names of ``folder``'s PNGs, evenly spread over their natural order."""
    files = sorted(folder.glob("*.png"), key=lambda p: (int(p.stem) if p.stem.isdigit() else 0, p.name))
    return [files[round(i * (len(files) - 1) / max(n - 1, 1))].name for i in range(n)]


def image_grid(columns: list[Path], picks: list[str], out: Path, size: int = 128, gap: int = 4) -> None:
    """Write a grid: row r holds ``picks[r]`` from each folder of ``columns``, resized to ``size``
    pixels square, on white with ``gap`` pixels between tiles."""
    from PIL import Image

    step = size + gap
    canvas = np.full((len(picks) * step - gap, len(columns) * step - gap, 3), 255, np.uint8)
    for r, name in enumerate(picks):
        for c, folder in enumerate(columns):
            tile = np.asarray(Image.open(folder / name).convert("RGB").resize((size, size)))
            canvas[r * step:r * step + size, c * step:c * step + size] = tile
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(out)
