"""Turning tensors into pictures: display conversion, grids and the HTML gallery."""

from __future__ import annotations

import html
import os
import urllib.parse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pairgan.fsutil import atomic_write_text

__all__ = ["grid_to_uint8", "make_grid", "printable", "to_display", "write_gallery"]


def printable(text: str) -> str:
    """``text`` safe to print or write as UTF-8: a file name's undecodable bytes (which Python
    keeps as lone surrogates) are shown as ``\\xNN`` escapes."""
    return os.fsencode(text).decode("utf-8", "backslashreplace") if _has_surrogates(text) else text


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _href(path: str) -> str:
    """A relative file path as a URL: percent-encoded bytes, so a name that is not UTF-8 still
    links to its file."""
    return html.escape(urllib.parse.quote(os.fsencode(path), safe="/"))


def to_display(t: torch.Tensor) -> torch.Tensor:
    """NCHW in [-1, 1] with any channel count -> NCHW RGB in [0, 1] for viewing.

    1 channel is shown as grey, 2 as grey (first channel), more than 3 as the first three.
    """
    t = t.detach().float().cpu()
    if t.dim() == 3:
        t = t.unsqueeze(0)
    c = t.shape[1]
    if c in (1, 2):
        t = t[:, :1].repeat(1, 3, 1, 1)
    elif c > 3:
        t = t[:, :3]
    return ((t + 1) / 2).clamp(0, 1)


def make_grid(columns: dict[str, torch.Tensor], max_rows: int = 4, pad: int = 2) -> torch.Tensor:
    """One row per sample, one column per entry of ``columns`` -> CHW RGB in [0, 1].

    Columns of different sizes are resized (nearest) to the first column's height and width.
    """
    cols = [to_display(v[:max_rows]) for v in columns.values()]
    n, _, h, w = cols[0].shape
    cols = [c if c.shape[-2:] == (h, w) else F.interpolate(c, size=(h, w), mode="nearest") for c in cols]
    grid = torch.ones(3, n * (h + pad) + pad, len(cols) * (w + pad) + pad)
    for j, col in enumerate(cols):
        for i in range(min(n, col.shape[0])):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[:, y : y + h, x : x + w] = col[i]
    return grid


def grid_to_uint8(grid: torch.Tensor) -> np.ndarray:
    """CHW in [0, 1] -> HWC uint8."""
    return (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


def write_gallery(
    out_dir: str | os.PathLike,
    rows: Sequence[dict[str, str]],
    columns: Sequence[str],
    title: str = "pairgan",
    notes: str = "",
) -> Path:
    """Write ``out_dir/index.html``: a table with one row per item.

    Each row maps ``"name"`` to a label and each column name to an image path relative to
    ``out_dir`` (missing columns are left empty). Paths become percent-encoded links and labels
    :func:`printable` text, so any file name (even one that is not UTF-8) gives a valid page.
    """
    out_dir = Path(out_dir)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            src = row.get(c)
            cells.append(
                f'<td><a href="{_href(src)}"><img src="{_href(src)}" loading="lazy"></a></td>'
                if src
                else "<td></td>"
            )
        body.append(f"<tr><td class=name>{html.escape(printable(row.get('name', '')))}</td>{''.join(cells)}</tr>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(printable(title))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: 4px; border-bottom: 1px solid #ddd; text-align: center; vertical-align: middle; }}
td.name {{ font-family: monospace; font-size: 12px; text-align: left; max-width: 14em; word-break: break-all; }}
img {{ max-width: 256px; max-height: 256px; image-rendering: pixelated; }}
</style></head><body>
<h1>{html.escape(printable(title))}</h1>
<p>{html.escape(printable(notes))}</p>
<table><tr><th></th>{head}</tr>
{chr(10).join(body)}
</table></body></html>
"""
    path = out_dir / "index.html"
    atomic_write_text(path, page)
    return path
