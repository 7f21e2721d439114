"""Packaged models: ``pairgan package`` writes a trained run's inference model as a folder with a
model card; ``pairgan push`` uploads that folder to the Hugging Face Hub.

A package is a checkpoint folder for inference only (see :mod:`pairgan.checkpoint`): the config, the
inference networks' weights as safetensors (the moving average or the trained weights, one set),
``package.json``, ``extra_state.json`` (classes, palette, pix2pixHD clusters: the method's
:meth:`~pairgan.methods.base.Method.extra_state`, so nothing is read from the training data when it
is loaded), ``input_profile.json``, the evaluation cards that score the packaged checkpoint under
``cards/``, an example grid and ``README.md``: the model card, with the Hub's YAML metadata. Never the
training state (``state.pt``, a pickle), the other networks (discriminators) or compiled graphs.
``pairgan.load(PACKAGE)`` and ``pairgan.load("hf://OWNER/NAME")`` load it like any checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import yaml

from pairgan import __version__
from pairgan.checkpoint import (
    CHECKPOINTS,
    CONFIG_FILE,
    EXTRA_STATE_FILE,
    INPUT_PROFILE_FILE,
    PACKAGE_FILE,
    STATE_FILE,
    load_state,
    resolve_checkpoint,
    run_of,
    write_weights,
)
from pairgan.data.labels import palette_file
from pairgan.data.palettes import builtin_palette
from pairgan.errors import CheckpointError, ConfigError, DataError
from pairgan.evaluate import checkpoint_sha256, read_train_summary, run_record, summary_describes, weights_sha256
from pairgan.fsutil import atomic_folder
from pairgan.hub import parse_repo_id, upload_folder
from pairgan.methods.base import Method
from pairgan.methods.build import load_method
from pairgan.metrics.card import ResultCard, comparability_problems, find_card_file, load_card
from pairgan.metrics.report import render_card_markdown

__all__ = ["PACKAGE_FORMAT", "Package", "find_cards", "model_card", "package_model", "push_model"]

log = logging.getLogger(__name__)

PACKAGE_FORMAT = "pairgan-package"
PACKAGE_FORMAT_VERSION = 1
CARD_FILE = "README.md"
EXAMPLE_FILE = "example.png"
PALETTE_FILE = "palette.json"
CARDS_DIR = "cards"
#: What the card's ``license`` says when none was given: the Hub's value for "see the card".
UNSET_LICENSE = "other"
_LICENSE_RE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")


@dataclass
class Package:
    """What :func:`package_model` wrote: the folder and what went into it."""

    folder: Path
    checkpoint: Path
    method: str
    weights: str
    networks: dict[str, str]
    cards: list[Path] = field(default_factory=list)
    example: Path | None = None
    license: str = UNSET_LICENSE


def choose_checkpoint(run: str | os.PathLike, which: str = "latest") -> Path:
    """The checkpoint folder of ``run`` to package: ``latest`` (the run's latest, or ``run`` itself
    when it is a checkpoint folder), ``best`` (``checkpoints/best``, kept by ``train.best_metric``),
    a checkpoint name of the run (``step_00001000``) or a path."""
    run = Path(run)
    if which == "latest":
        return resolve_checkpoint(run)
    candidates = [run / CHECKPOINTS / which, run / which, Path(which)]
    for c in candidates:
        if c.is_dir():
            return resolve_checkpoint(c)
    if which == "best":
        raise CheckpointError(f"{run}: no best checkpoint ({run / CHECKPOINTS / 'best'}): the run was trained "
                              "without train.best_metric; use --checkpoint latest")
    raise CheckpointError(f"--checkpoint {which}: not a checkpoint of {run} (expected latest, best, a name under "
                          f"{run / CHECKPOINTS} or a checkpoint folder)")


def find_cards(checkpoint: Path, given: Sequence[str | os.PathLike] = (), *,
               digest: str | None = None) -> list[ResultCard]:
    """The evaluation cards of ``checkpoint``: each of ``given`` (``card.json`` files or folders holding
    one), which must score this checkpoint (its weights' sha256, ``digest`` when the caller has it),
    plus every ``card.json`` under the checkpoint's run folder that does; one per protocol
    fingerprint (the newest)."""
    digest = digest or checkpoint_sha256(checkpoint)
    found: list[tuple[ResultCard, Path]] = []
    for g in given:
        card, file = load_card(g), Path(find_card_file(g))
        if card.source.get("checkpoint_sha256") != digest:
            raise DataError(f"{file}: the card scores checkpoint "
                            f"{str(card.source.get('checkpoint_sha256'))[:16]}..., not the packaged "
                            f"{checkpoint} ({digest[:16]}...); evaluate the packaged checkpoint or leave the card out")
        found.append((card, file))
    run = run_of(checkpoint)
    if run is not None:
        for f in sorted(run.rglob("card.json")):
            try:
                card = load_card(f)
            except DataError as exc:
                log.warning("warning: %s", exc)
                continue
            if card.source.get("checkpoint_sha256") == digest and all(f.resolve() != p.resolve() for _, p in found):
                found.append((card, f))
    newest: dict[str, ResultCard] = {}
    for card, _ in found:
        key = card.fingerprint or f"adhoc:{card.title}"
        old = newest.get(key)
        if old is None or str(card.environment.get("utc_time", "")) >= str(old.environment.get("utc_time", "")):
            newest[key] = card
    return list(newest.values())


def _example_grid(checkpoint: Path, step: int | None) -> Path | None:
    """The run's sample grid of ``step`` (else the newest before it): inputs, outputs, targets."""
    run = run_of(checkpoint)
    if run is None or not (run / "samples").is_dir():
        return None
    grids = []
    for p in (run / "samples").glob("step_*.png"):
        m = re.fullmatch(r"step_(\d+)\.png", p.name)
        if m and (step is None or int(m.group(1)) <= step):
            grids.append((int(m.group(1)), p))
    return max(grids)[1] if grids else None


def _palette_copy(data: Any, folder: Path) -> str | None:
    """Copy a palette *file* of ``data.palette`` (how colour label inputs decode) into ``folder`` as
    ``palette.json``; the loader points ``data.palette`` at it, so the package does not need the file
    where training read it. None for no palette or a built-in one."""
    if not data.palette or builtin_palette(data.palette) is not None:
        return None
    source = Path(palette_file(data) or "")
    if not source.is_file():
        raise DataError(f"{source}: data.palette names this file, which is missing; a packaged model carries its "
                        "palette file (put it back, or set data.palette to a built-in palette)")
    shutil.copyfile(source, folder / PALETTE_FILE)
    return PALETTE_FILE


def _data_terms(data_path: str) -> str | None:
    """The terms of use a data set states in its root (``SOURCE.md``, ``LICENSE``, ``README.md``):
    the lines that mention terms or a licence, or None."""
    if not data_path:
        return None
    root = Path(data_path).expanduser()
    for name in ("SOURCE.md", "LICENSE", "LICENSE.txt", "LICENSE.md", "README.md"):
        f = root / name
        if not f.is_file():
            continue
        try:
            lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        hits = [ln.strip() for ln in lines if re.search(r"\b(terms|licen[cs]e|redistribut)", ln, re.I) and ln.strip()]
        if hits:
            return " ".join(hits)[:1200] + f" (from the data set's {name})"
    return None


def _training_record(checkpoint: Path) -> dict[str, Any]:
    """:func:`~pairgan.evaluate.run_record` (weights hash, steps, wall time) with the epochs, data
    position and this checkpoint's own training time from ``state.pt`` (our own local file, read as
    plain tensors; the package never holds it) and the machine from the run's summary."""
    record = dict(run_record(checkpoint))
    if (checkpoint / STATE_FILE).is_file():
        state = load_state(checkpoint)
        record["train_steps"] = record.get("train_steps") or state.get("step")
        if state.get("train_seconds") is not None:  # this checkpoint's own, over every session
            record["train_wall_s"] = state["train_seconds"]
        record["epochs"] = state.get("epoch")
        data = state.get("data") or {}
        record["num_items"] = data.get("num_items")
        record["global_batch"] = data.get("global_batch")
        record["world_size"] = data.get("world_size")
    summary = read_train_summary(checkpoint)
    if summary and summary_describes(summary, checkpoint):
        record["device"] = summary.get("device")
        record["machine"] = summary.get("machine")
        record["torch"] = summary.get("torch")
    return record


def _input_words(d: Any) -> str:
    if d.input_kind == "label" and d.label_nc > 0:
        return f"label maps ({d.label_nc} classes{', with instance maps' if d.instance else ''})"
    if d.input_kind == "label":
        return f"colour-coded label maps ({d.input_nc} channels)"
    return f"{d.input_kind}s ({d.input_nc} channels)"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h ({seconds:.0f} s)"
    return f"{seconds / 60:.1f} min ({seconds:.0f} s)" if seconds >= 60 else f"{seconds:.1f} s"


def model_card(*, method: Method, repo_id: str | None, license: str, datasets: Sequence[str], data_terms: str | None,
               training: dict[str, Any], weights: str, networks: dict[str, str], cards: Sequence[ResultCard],
               example: bool) -> str:
    """The model card: the Hub's YAML metadata and the text (method and paper, training data and its
    terms, training, evaluation cards, an example, how to load it)."""
    cfg = method.run_config
    assert cfg is not None  # load_method sets it
    run = run_of(method.checkpoint) if method.checkpoint is not None else None
    name = repo_id or (run.name if run is not None else "pairgan-model")
    meta: dict[str, Any] = {
        "library_name": "pairgan",
        "license": license,
        "pipeline_tag": "image-to-image",
        "tags": ["pairgan", "image-to-image", "paired-image-translation", "gan", cfg.method],
    }
    if datasets:
        meta["datasets"] = list(datasets)
    results = []
    for card in cards:
        if card.protocol is None:
            continue
        metrics = [{"type": k, "name": k, "value": v.value} for k, v in card.metrics.items()
                   if isinstance(v.value, (int, float))]
        if metrics:
            results.append({"task": {"type": "image-to-image"},
                            "dataset": {"name": card.protocol["name"], "type": card.protocol["name"]},
                            "metrics": metrics})
    if results:
        meta["model-index"] = [{"name": name.split("/")[-1], "results": results}]
    d = cfg.data
    ref = f"hf://{repo_id}" if repo_id else "PATH/TO/THIS/FOLDER"
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "",
             f"# {name}", "",
             f"A **{cfg.method}** model trained with pairgan (`pip install pairgan`): it translates "
             f"{_input_words(d)} into {d.output_kind}s ({d.output_nc} channels).",
             ""]
    if license == UNSET_LICENSE:
        lines += ["> **Licence not set.** Whoever publishes this model must choose one (`pairgan package --license`) "
                  "and check that the training data's terms allow it.", ""]
    lines += ["## Method", "",
              f"- {type(method).paper or cfg.method}",
              f"- Inference networks: {', '.join(networks)} ({'moving average (EMA) of the generator' if weights == 'ema' else 'trained weights'}); "
              "the whole training configuration is `config.yaml`.",
              f"- Inference mode: `{method.inference_mode}`; inputs are padded to multiples of {method.size_multiple}.",
              ""]
    lines += ["## Training data", "",
              f"- Data set: `{Path(d.path).name if d.path else '(built in)'}`, split `{d.train_split}`, layout "
              f"`{d.layout}`, direction `{d.direction}`"
              + (f", {training['num_items']} training pairs" if training.get("num_items") else "") + ".",
              f"- Preprocessing: `{d.preprocess}` (load {d.load_size}, crop {d.crop_size}, flip {d.flip}).",
              f"- Terms of the data: {data_terms or 'not stated where the data set was read; check its licence before using this model'}",
              ""]
    machine = training.get("machine") or {}
    hardware = machine.get("gpu") or machine.get("cpu") or training.get("device") or "not recorded"
    wall = training.get("train_wall_s")
    lines += ["## Training", "",
              f"- Steps: {training.get('train_steps') or 'not recorded'}"
              + (f" ({training['epochs']} epochs)" if training.get("epochs") is not None else "")
              + (f", global batch {training['global_batch']}" if training.get("global_batch") else "")
              + (f", {training['world_size']} processes" if (training.get("world_size") or 1) > 1 else "") + ".",
              f"- Wall time: {_duration(wall) if wall else 'not recorded'}.",
              f"- Hardware: {hardware}" + (f" ({machine.get('cpu_cores')} cores)" if machine.get("cpu_cores") and not machine.get("gpu") else "")
              + (f", torch {training.get('torch')}" if training.get("torch") else "") + ".",
              f"- Checkpoint weights sha256: `{training.get('checkpoint_sha256')}` (pairgan's hash over the tensors).",
              ""]
    lines += ["## Evaluation", ""]
    if cards:
        labels = [c.title or (c.protocol or {}).get("name", "ad hoc") for c in cards]
        problems = comparability_problems(cards) if len(cards) > 1 else []
        lines += [render_card_markdown(cards, labels, problems).rstrip(), ""]
        for c in cards:
            p = c.protocol
            lines.append(f"- {c.title}: " + (f"protocol `{p['name']}` v{p.get('version')}, fingerprint `{p.get('fingerprint')}`"
                                              if p else "ad hoc evaluation (no locked protocol)")
                         + f", {c.n_images} images" + ("" if c.comparable else ", **not comparable**: " + "; ".join(c.notes)) + ".")
        lines += ["", f"The cards are in `{CARDS_DIR}/` (`pairgan compare` reads them).", ""]
    else:
        lines += ["No evaluation card was packaged. Score the checkpoint with `pairgan evaluate RUN --protocol NAME` "
                  "and package it again.", ""]
    if example:
        lines += ["## Example", "", f"![inputs, outputs and targets]({EXAMPLE_FILE})", "",
                  "Columns: input, output, target (a training sample grid of the packaged step).", ""]
    lines += ["## How to use", "", "```bash", "pip install 'pairgan[hub]'",
              f"pairgan translate {ref} inputs/ --out outputs/",
              f"pairgan serve {ref}", "```", "", "```python", "import pairgan", "from PIL import Image", "",
              f'translator = pairgan.load("{ref}")',
              'output = translator.translate(Image.open("input.png"))', "```", "",
              "Only the config, the safetensors weights and JSON files are downloaded (never a pickle); "
              "`HF_HUB_OFFLINE=1` loads a cached copy without the network.", ""]
    return "\n".join(lines)


def package_model(run: str | os.PathLike, out: str | os.PathLike, *, checkpoint: str = "latest",
                  weights: str = "auto", license: str | None = None, datasets: Sequence[str] = (),
                  cards: Sequence[str | os.PathLike] = (), data_terms: str | None = None,
                  repo_id: str | None = None, overwrite: bool = False) -> Package:
    """Write ``run``'s model as a package folder ``out`` (atomically: a kill leaves no half folder).

    ``checkpoint``: see :func:`choose_checkpoint`; ``weights``: which weights (``auto``: the moving
    average when the run kept one); ``license``: the Hub licence id of the card (default ``other``,
    with a note that it must be set); ``datasets``: Hub data set ids for the card's metadata;
    ``cards``: evaluation cards to include (those under the run that score this checkpoint are found
    too); ``data_terms``: the training data's terms of use (default: what the data set's SOURCE.md
    or LICENSE says); ``repo_id``: the Hub repository the card's examples name.
    """
    if license is not None and not _LICENSE_RE.fullmatch(license):
        raise ConfigError(f"--license {license!r}: expected a Hub licence id such as mit, apache-2.0, cc-by-nc-4.0 "
                          "or other (lower case)")
    for ds in datasets:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,190}", ds):
            raise ConfigError(f"--dataset {ds!r}: expected a Hub data set id such as OWNER/NAME")
    if repo_id is not None:
        parse_repo_id(repo_id)
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; choose another folder or pass --overwrite")
    ckpt = choose_checkpoint(run, checkpoint)
    method = load_method(ckpt, "cpu", weights=weights)
    cfg = method.run_config
    assert cfg is not None
    training = _training_record(ckpt)
    found_cards = find_cards(ckpt, cards, digest=training["checkpoint_sha256"])
    example = _example_grid(ckpt, training.get("train_steps"))
    lic = license or UNSET_LICENSE
    networks: dict[str, str] = {}
    with atomic_folder(out) as tmp:
        shutil.copyfile(ckpt / CONFIG_FILE, tmp / CONFIG_FILE)
        for name in method.inference_nets:
            write_weights(tmp / f"{name}.safetensors", method.nets[name], {"net": name, "weights": method.weights_source})
            networks[name] = weights_sha256(tmp / f"{name}.safetensors")
        (tmp / EXTRA_STATE_FILE).write_text(json.dumps(method.extra_state(), indent=1) + "\n", encoding="utf-8")
        if (ckpt / INPUT_PROFILE_FILE).is_file():
            shutil.copyfile(ckpt / INPUT_PROFILE_FILE, tmp / INPUT_PROFILE_FILE)
        palette = _palette_copy(cfg.data, tmp)
        card_files = []
        if found_cards:
            (tmp / CARDS_DIR).mkdir()
            for i, card in enumerate(found_cards):
                slug = re.sub(r"[^A-Za-z0-9._-]+", "-", (card.protocol or {}).get("name") or card.title or "card").strip("-")
                f = tmp / CARDS_DIR / f"{i:02d}-{slug or 'card'}.json"
                f.write_text(json.dumps(card.to_dict(), indent=1) + "\n", encoding="utf-8")
                card_files.append(f.relative_to(tmp).as_posix())
        if example is not None:
            shutil.copyfile(example, tmp / EXAMPLE_FILE)
        record = {
            "format": PACKAGE_FORMAT, "format_version": PACKAGE_FORMAT_VERSION, "pairgan": __version__,
            "method": cfg.method, "weights": method.weights_source, "networks": networks,
            "inference_mode": method.inference_mode,
            "source": {"checkpoint": ckpt.name, "checkpoint_sha256": training.get("checkpoint_sha256"),
                       "train_steps": training.get("train_steps"), "train_wall_s": training.get("train_wall_s"),
                       "machine": training.get("machine")},
            "cards": card_files, "license": lic, "palette": palette,
            "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        (tmp / PACKAGE_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        text = model_card(method=method, repo_id=repo_id, license=lic, datasets=datasets,
                          data_terms=data_terms or _data_terms(cfg.data.path), training=training,
                          weights=method.weights_source, networks=networks, cards=found_cards,
                          example=example is not None)
        (tmp / CARD_FILE).write_text(text, encoding="utf-8")
    log.info("%s: packaged %s (%s weights of %s) with %d card(s)", out, ckpt, method.weights_source,
             ", ".join(networks), len(found_cards))
    return Package(out, ckpt, cfg.method, method.weights_source, networks,
                   [out / c for c in card_files], out / EXAMPLE_FILE if example is not None else None, lic)


def push_model(run: str | os.PathLike, repo_id: str, *, private: bool = False, checkpoint: str = "latest",
               weights: str = "auto", license: str | None = None, datasets: Sequence[str] = (),
               cards: Sequence[str | os.PathLike] = (), data_terms: str | None = None, revision: str | None = None,
               token: str | None = None) -> tuple[Package, str]:
    """Package ``run`` into a temporary folder (:func:`package_model`) and upload it to ``repo_id``
    (created when missing; ``private``) in one commit. Returns the package and the commit URL."""
    parse_repo_id(repo_id)
    if not license:
        raise ConfigError("pairgan push: --license is required: the model card's licence must be chosen by whoever "
                          "publishes the model (a Hub licence id such as mit, apache-2.0, cc-by-nc-4.0, or other)")
    with tempfile.TemporaryDirectory(prefix="pairgan-push-") as tmp:
        pkg = package_model(run, Path(tmp) / "model", checkpoint=checkpoint, weights=weights, license=license,
                            datasets=datasets, cards=cards, data_terms=data_terms, repo_id=repo_id)
        url = upload_folder(pkg.folder, repo_id, private=private, revision=revision,
                            message=f"pairgan {pkg.method}: {pkg.checkpoint.name} ({pkg.weights} weights)", token=token)
    return pkg, url
