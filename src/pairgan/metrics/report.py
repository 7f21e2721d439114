"""Evaluation reports: the HTML page of one evaluation, and several evaluations side by side.

Plain HTML with no script and no external resource (it opens from the file system in any
browser); every text is escaped; images are linked relative to the page.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from pairgan.fsutil import atomic_write_text
from pairgan.metrics.card import CARD_FILE, MetricValue, ResultCard, comparability_problems, load_card
from pairgan.metrics.suite import PROTOCOL, direction, split_oracle

__all__ = ["card_for_result", "card_html", "card_table", "cards_for_compare", "comparison_table", "find_metrics_file", "format_interval",
           "format_value", "load_result", "render_card_html", "render_card_markdown", "write_compare_html",
           "write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; }
td, th { padding: 4px 8px; border-bottom: 1px solid #ddd; vertical-align: middle; }
th { background: #eee; text-align: left; }
td.num { text-align: right; font-family: ui-monospace, monospace; white-space: nowrap; }
td.best { font-weight: bold; background: #e6f4e6; }
td.note, p.note { color: #666; font-size: 13px; }
td.img { text-align: center; }
td.img img { max-width: 256px; max-height: 256px; image-rendering: pixelated; }
code { background: #eee; padding: 0 3px; }
"""


def format_value(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v) or math.isnan(v):
            return str(v)
        a = abs(v)
        if a != 0 and (a < 1e-3 or a >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4f}" if a < 100 else f"{v:.2f}"
    return str(v)


def format_interval(mv: MetricValue) -> str:
    """``value [low, high]`` (``value`` alone without an interval)."""
    if mv.low is None or mv.high is None:
        return format_value(mv.value)
    return f"{format_value(mv.value)} [{format_value(mv.low)}, {format_value(mv.high)}]"


def _arrow(name: str) -> str:
    d = direction(name)
    return "" if d is None else (" ↑" if d else " ↓")


def _page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def write_report(out_dir: str | os.PathLike, result: dict[str, Any], rows: Sequence[dict[str, str]],
                 columns: Sequence[str] = ("input", "output", "target"), max_rows: int = 12,
                 name: str = "index.html") -> Path:
    """``out_dir/NAME`` (``index.html``): the run, the metrics table (value, direction, protocol), the
    segmentation table, timing and a grid of the first ``max_rows`` samples."""
    out_dir = Path(out_dir)
    m = result.get("metrics", {})
    info = [("checkpoint", result.get("checkpoint")), ("data", result.get("data")), ("split", result.get("split")),
            ("images", m.get("count")), ("inference mode", result.get("mode")),
            ("protocol", result.get("protocol_version"))]
    parts = ["<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                                 for k, v in info if v is not None) + "</table>"]
    rows_html = []
    shown: set[str] = set()
    for metric, value in m.items():
        if metric == "count":
            continue
        base = metric.removesuffix("_std")
        proto = PROTOCOL.get(base) or PROTOCOL.get(base.split("_")[0] if base.startswith("seg") else base, "")
        if proto in shown:  # each protocol text once (kid_std, the seg_* rows share theirs)
            proto = ""
        shown.add(proto)
        rows_html.append(f"<tr><td>{html.escape(metric + _arrow(metric))}</td><td class=num>{format_value(value)}</td>"
                         f"<td class=note>{html.escape(proto)}</td></tr>")
    parts.append("<h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>protocol</th></tr>"
                 + "".join(rows_html) + "</table>")
    details = result.get("details", {})
    notes = []
    for key in ("is", "ms_ssim", "features"):
        d = details.get(key, {})
        if d.get("reason") or d.get("note"):
            notes.append(f"{key}: {d.get('reason') or d.get('note')}")
    if "inception" in details:
        notes.append(f"Inception: {details['inception'].get('weights')}; real features "
                     f"{details['inception'].get('real_features', '')}")
    if notes:
        parts.append("".join(f"<p class=note>{html.escape(n)}</p>" for n in notes))
    seg = details.get("seg")
    if seg:
        gen, real = seg["generated"]["per_class"], seg["real"]["per_class"]
        trs = "".join(
            f"<tr><td>{html.escape(c)}</td><td class=num>{gen[c]['pixels']}</td>"
            f"<td class=num>{format_value(gen[c]['acc'])}</td><td class=num>{format_value(gen[c]['iou'])}</td>"
            f"<td class=num>{format_value(real[c]['acc'])}</td><td class=num>{format_value(real[c]['iou'])}</td></tr>"
            for c in gen)
        parts.append(f"<h2>Segmentation score</h2><p class=note>segmenter {html.escape(seg['segmenter'])}; "
                     f"{seg['images']} images; the real row is the segmenter on the real photos (the oracle)</p>"
                     "<table><tr><th>class</th><th>gt pixels</th><th>acc (generated)</th><th>IoU (generated)</th>"
                     f"<th>acc (real)</th><th>IoU (real)</th></tr>{trs}</table>")
    if result.get("card"):
        parts.append(card_html(ResultCard.from_dict(result["card"])))
    timing = result.get("timing")
    if timing:
        parts.append("<h2>Timing</h2><p class=note>" + html.escape(", ".join(
            f"{k} {v:.1f} s" if isinstance(v, (int, float)) else f"{k}: " + ", ".join(
                f"{kk} {vv:.1f} s" for kk, vv in v.items()) for k, v in timing.items())) + "</p>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    grid = []
    for row in list(rows)[:max_rows]:
        cells = "".join(
            f'<td class=img><a href="{html.escape(row[c])}"><img src="{html.escape(row[c])}" alt="{html.escape(c)}">'
            "</a></td>" if row.get(c) else "<td></td>" for c in columns)
        grid.append(f"<tr><td class=note>{html.escape(row.get('name', ''))}</td>{cells}</tr>")
    more = f" (first {max_rows} of {len(rows)})" if len(rows) > max_rows else ""
    parts.append(f"<h2>Samples{more}</h2><table><tr><th></th>{head}</tr>{''.join(grid)}</table>")
    title = f"pairgan evaluation — {result.get('split', '')} split"
    path = out_dir / name
    atomic_write_text(path, _page(title, "\n".join(parts)))
    return path


# --------------------------------------------------------------------------- compare


def find_metrics_file(path: str | os.PathLike, split: str = "test") -> Path:
    """``metrics.json`` of a file, an evaluation folder, or a run folder (``RUN/eval_SPLIT/``,
    else the newest ``RUN/*/metrics.json``)."""
    p = Path(path)
    if p.is_file():
        return p
    for cand in (p / "metrics.json", p / f"eval_{split}" / "metrics.json"):
        if cand.is_file():
            return cand
    found = sorted(p.glob("*/metrics.json"), key=lambda f: f.stat().st_mtime, reverse=True)
    if found:
        return found[0]
    raise FileNotFoundError(f"{p}: no metrics.json (looked for {p / 'metrics.json'}, "
                            f"{p / f'eval_{split}' / 'metrics.json'} and {p}/*/metrics.json); "
                            "run `pairgan evaluate` first")


def load_result(path: str | os.PathLike, split: str = "test") -> dict[str, Any]:
    f = find_metrics_file(path, split)
    try:
        doc = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{f}: unreadable metrics.json ({exc})") from None
    doc["_file"] = str(f)
    return doc


def comparison_table(results: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]], list[str], list[set[int]]]:
    """(metric names, formatted rows (one per metric, one column per run), warnings,
    per row the indices of the best runs)."""
    names: list[str] = []
    for r in results:
        for k in r.get("metrics", {}):
            if k not in names:
                names.append(k)
    if "count" in names:
        names.remove("count")
        names.append("count")
    rows, best = [], []
    for n in names:
        vals = [r.get("metrics", {}).get(n) for r in results]
        rows.append([format_value(v) for v in vals])
        d = direction(n)
        finite = [(i, v) for i, v in enumerate(vals) if isinstance(v, (int, float)) and math.isfinite(v)]
        if d is None or len(finite) < 2:
            best.append(set())
        else:
            target = max(v for _, v in finite) if d else min(v for _, v in finite)
            best.append({i for i, v in finite if v == target})
    warnings = []
    versions = {r.get("protocol_version", "none") for r in results}
    if len(versions) > 1:
        warnings.append(f"different protocol versions ({', '.join(sorted(map(str, versions)))}): "
                        "numbers may not be comparable")
    counts = {r.get("metrics", {}).get("count") for r in results}
    if len(counts) > 1:
        warnings.append(f"different numbers of images ({', '.join(map(str, sorted(c for c in counts if c)))}): "
                        "FID, KID and IS depend on the set size")
    datas = {(r.get("data"), r.get("split")) for r in results}
    if len(datas) > 1:
        warnings.append("different data sets or splits: " + "; ".join(f"{d} ({s})" for d, s in sorted(datas, key=str)))
    return names, rows, warnings, best


def write_compare_html(out: str | os.PathLike, results: Sequence[dict[str, Any]], labels: Sequence[str],
                       max_rows: int = 8, cards: Sequence[ResultCard] | None = None,
                       problems: Sequence[str] = ()) -> Path:
    """``compare.html``: the metrics side by side (best per row highlighted) and, for the images
    the evaluations share, input | each run's output | target. With ``cards`` the table is the
    cards' (values with intervals, protocol and fingerprint; ``problems`` listed under it)."""
    out = Path(out)
    if out.suffix != ".html":
        out = out / "compare.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    head = "".join(f"<th>{html.escape(lab)}</th>" for lab in labels)
    if cards is not None:
        parts = [render_card_html(cards, labels, problems)]
    else:
        names, rows, warnings, best = comparison_table(results)
        body = []
        for n, row, b in zip(names, rows, best):
            cells = "".join(f"<td class='num{' best' if i in b else ''}'>{html.escape(v)}</td>"
                            for i, v in enumerate(row))
            body.append(f"<tr><td>{html.escape(n + _arrow(n))}</td>{cells}</tr>")
        parts = [f"<table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>"]
        parts += [f"<p class=note>warning: {html.escape(w)}</p>" for w in warnings]
    parts.append("<table>" + "".join(
        f"<tr><th>{html.escape(lab)}</th><td class=note>{html.escape(r.get('_file', ''))} — checkpoint "
        f"{html.escape(str(r.get('checkpoint')))}, {html.escape(str(r.get('protocol_version')))}</td></tr>"
        for lab, r in zip(labels, results)) + "</table>")
    # samples: names present in every evaluation
    def samples(r: dict[str, Any]) -> dict[str, dict[str, str]]:
        base = Path(r.get("_file", ".")).parent
        return {s["name"]: {k: str(base / v) for k, v in s.items() if k != "name"} for s in r.get("samples", [])}

    per_run = [samples(r) for r in results]
    common = [n for n in (per_run[0] if per_run else {}) if all(n in s for s in per_run)][:max_rows]
    if common:
        def img(path: str | None) -> str:
            if not path:
                return "<td></td>"
            rel = html.escape(os.path.relpath(path, out.parent))
            return f'<td class=img><a href="{rel}"><img src="{rel}" alt=""></a></td>'

        heads = "<th>input</th>" + head + "<th>target</th>"
        trs = []
        for n in common:
            first = per_run[0][n]
            cells = img(first.get("input")) + "".join(img(s[n].get("output")) for s in per_run) + img(first.get("target"))
            trs.append(f"<tr><td class=note>{html.escape(n)}</td>{cells}</tr>")
        parts.append(f"<h2>Samples</h2><table><tr><th></th>{heads}</tr>{''.join(trs)}</table>")
    atomic_write_text(out, _page("pairgan compare", "\n".join(parts)))
    return out


# --------------------------------------------------------------------------- result cards


def _protocol_text(card: ResultCard) -> str:
    p = card.protocol
    if not p:
        return "none (an ad-hoc evaluation: not rankable)"
    return f"{p.get('name', '?')} v{p.get('version', '?')}"


def _kv_table(pairs: Sequence[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(format_value(v))}</td></tr>"
                               for k, v in pairs if v is not None and v != "") + "</table>"


def card_html(card: ResultCard) -> str:
    """The "Result card" section of the HTML report: protocol and fingerprint, each metric with
    its interval and how it was made, the oracle row, the per-class table, the source, the
    machine and why the card is not comparable (when it is not)."""
    p = card.protocol or {}
    parts = ["<h2>Result card</h2>", _kv_table([
        ("protocol", _protocol_text(card)), ("fingerprint", p.get("fingerprint")), ("images", card.n_images),
        ("segmenter sha256", card.segmenter_sha256), ("comparable", "yes" if card.comparable else "NO"),
        ("card schema", card.schema)])]
    if card.notes:
        parts.append("".join(f"<p class=note>note: {html.escape(n)}</p>" for n in card.notes))
    rows = []
    for name, mv in card.metrics.items():
        oracle = card.oracle.get(name)
        rows.append(
            f"<tr><td>{html.escape(name + _arrow(name))}</td><td class=num>{format_value(mv.value)}</td>"
            f"<td class=num>{html.escape(_interval_only(mv))}</td><td class=num>{format_value(mv.std)}</td>"
            f"<td class=num>{html.escape(format_interval(oracle)) if oracle else ''}</td>"
            f"<td class=note>{html.escape(mv.method)}</td></tr>")
    parts.append("<table><tr><th>metric</th><th>value</th><th>interval</th><th>std</th><th>oracle (real photos)</th>"
                 "<th>interval from</th></tr>" + "".join(rows) + "</table>")
    if card.per_class:
        cols = list(dict.fromkeys(k for v in card.per_class.values() for k in v))
        trs = "".join(f"<tr><td>{html.escape(c)}</td>" + "".join(
            f"<td class=num>{format_value(v.get(k))}</td>" for k in cols) + "</tr>" for c, v in card.per_class.items())
        parts.append("<h3>Segmentation per class</h3><table><tr><th>class</th>"
                     + "".join(f"<th>{html.escape(k)}</th>" for k in cols) + f"</tr>{trs}</table>")
    src = {k: v for k, v in card.source.items() if k != "config"}
    parts.append("<h3>Source</h3>" + _kv_table(list(src.items())))
    if card.environment:
        parts.append("<h3>Environment</h3>" + _kv_table(list(card.environment.items())))
    return "\n".join(parts)


def _interval_only(mv: MetricValue) -> str:
    if mv.low is None or mv.high is None:
        return ""
    return f"[{format_value(mv.low)}, {format_value(mv.high)}]"


def card_for_result(result: dict[str, Any], label: str = "") -> ResultCard:
    """The card of an evaluation: its ``card.json`` (next to ``metrics.json``), else a stand-in made
    from ``metrics.json`` without protocol or intervals (never rankable: it says so in its notes)."""
    f = Path(result.get("_file", "metrics.json")).parent / CARD_FILE
    if f.is_file():
        return load_card(f)
    if isinstance(result.get("card"), dict):
        return ResultCard.from_dict(result["card"])
    m = {k: MetricValue(v) for k, v in result.get("metrics", {}).items()
         if k != "count" and not k.endswith("_std") and (v is None or isinstance(v, (int, float)))}
    metrics, oracle = split_oracle(m)
    return ResultCard(title=label or str(result.get("_file", "")), protocol=None, metrics=metrics, oracle=oracle,
                      per_class={}, n_images=int(result.get("metrics", {}).get("count") or 0),
                      source={"kind": "outputs" if result.get("checkpoint") is None else "checkpoint",
                              "path": result.get("checkpoint")},
                      comparable=False, notes=[f"no {CARD_FILE} next to {result.get('_file', 'metrics.json')}"])


def card_table(cards: Sequence[ResultCard], rank: bool = True) -> tuple[list[str], list[list[str]], list[set[int]]]:
    """The cards side by side: (row names, formatted rows with one column per card, per row the
    indices of the best cards by value; none when ``rank`` is false, e.g. cards that are not
    comparable). Rows: protocol, fingerprint, each metric as
    ``value [low, high]``, the oracle rows, images, method, steps, train time, device."""
    metric_names = list(dict.fromkeys(k for c in cards for k in c.metrics))
    oracle_names = list(dict.fromkeys(k for c in cards for k in c.oracle))
    names: list[str] = ["protocol", "fingerprint"]
    rows: list[list[str]] = [[_protocol_text(c) for c in cards],
                             [(c.fingerprint or "none")[:16] for c in cards]]
    best: list[set[int]] = [set(), set()]

    def add(label: str, metric: str, values: list[MetricValue | None]) -> None:
        names.append(label + _arrow(metric))
        rows.append([format_interval(v) if v is not None else "" for v in values])
        d = direction(metric)
        finite = [(i, v.value) for i, v in enumerate(values)
                  if v is not None and isinstance(v.value, (int, float)) and math.isfinite(v.value)]
        if not rank or d is None or len(finite) < 2:
            best.append(set())
        else:
            target = max(x for _, x in finite) if d else min(x for _, x in finite)
            best.append({i for i, x in finite if x == target})

    for n in metric_names:
        add(n, n, [c.metrics.get(n) for c in cards])
    for n in oracle_names:  # the oracle is the same real photos: not a ranking, no best
        names.append(f"oracle {n}")
        rows.append([format_interval(c.oracle[n]) if n in c.oracle else "" for c in cards])
        best.append(set())
    for label, get in (("images", lambda c: c.n_images), ("method", lambda c: c.source.get("method")),
                       ("train steps", lambda c: c.source.get("train_steps")),
                       ("train wall s", lambda c: c.source.get("train_wall_s")),
                       ("device", lambda c: c.environment.get("gpu") or c.environment.get("cpu"))):
        vals = [get(c) for c in cards]
        if any(v is not None for v in vals):
            names.append(label)
            rows.append([format_value(v) if v is not None else "" for v in vals])
            best.append(set())
    return names, rows, best


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_card_markdown(cards: Sequence[ResultCard], labels: Sequence[str],
                         problems: Sequence[str] = ()) -> str:
    """The cards side by side as a markdown table (best value per metric in bold unless there are
    ``problems``; intervals in brackets), how each interval was made, and the problems, if any."""
    names, rows, best = card_table(cards, rank=not problems)
    lines = ["| | " + " | ".join(_md(lab) for lab in labels) + " |", "|---|" + "---:|" * len(labels)]
    for n, row, b in zip(names, rows, best):
        cells = [f"**{_md(v)}**" if i in b else _md(v) for i, v in enumerate(row)]
        lines.append(f"| {_md(n)} | " + " | ".join(cells) + " |")
    lines.append("")
    methods = list(dict.fromkeys(mv.method for c in cards for mv in c.metrics.values() if mv.method))
    if methods:
        lines += ["Intervals: " + "; ".join(methods) + ".", ""]
    for p in problems:
        lines.append(f"- **not comparable**: {_md(p)}")
    return "\n".join(lines).rstrip() + "\n"


def render_card_html(cards: Sequence[ResultCard], labels: Sequence[str], problems: Sequence[str] = ()) -> str:
    """The cards side by side as an HTML table (a fragment: the compare page embeds it); best
    values highlighted unless there are ``problems``."""
    names, rows, best = card_table(cards, rank=not problems)
    head = "".join(f"<th>{html.escape(lab)}</th>" for lab in labels)
    body = []
    for n, row, b in zip(names, rows, best):
        cells = "".join(f"<td class='num{' best' if i in b else ''}'>{html.escape(v)}</td>" for i, v in enumerate(row))
        body.append(f"<tr><td>{html.escape(n)}</td>{cells}</tr>")
    parts = [f"<h2>Result cards</h2><table><tr><th></th>{head}</tr>{''.join(body)}</table>"]
    parts += [f"<p class=note>not comparable: {html.escape(p)}</p>" for p in problems]
    return "\n".join(parts)


def cards_for_compare(results: Sequence[dict[str, Any]],
                      labels: Sequence[str]) -> tuple[list[ResultCard] | None, list[str]]:
    """``(cards, problems)`` for ``pairgan compare``: ``(None, [])`` when no evaluation has a
    ``card.json`` (the plain metrics.json comparison applies); otherwise every evaluation's card
    (a stand-in for one without) and :func:`comparability_problems` naming them by ``labels``."""
    has_card = [(Path(r.get("_file", "metrics.json")).parent / CARD_FILE).is_file() or isinstance(r.get("card"), dict)
                for r in results]
    if not any(has_card):
        return None, []
    cards = [card_for_result(r, lab) for r, lab in zip(results, labels)]
    problems = [f"{lab} has no {CARD_FILE}: re-score it with `pairgan evaluate --protocol NAME`"
                for lab, ok in zip(labels, has_card) if not ok]
    problems += [p for p in comparability_problems(
        [c for c, ok in zip(cards, has_card) if ok], [lab for lab, ok in zip(labels, has_card) if ok])]
    return cards, problems
