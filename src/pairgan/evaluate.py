"""Translate a data split through a trained model (or take images already generated) and score it.

:func:`iter_split` is the one place that translates every item of a split: the data set comes
from :func:`split_dataset` (read as the model was trained, without augmentation:
:class:`pairgan.data.transforms.PairedTransform` with ``train=False``), and every caller below
walks it through :func:`iter_split`.

:func:`evaluate` is what ``pairgan evaluate`` runs: it translates the split (or reads
``outputs_dir/NAME.png``), loads the networks the requested metrics need
(:func:`load_metric_networks`), computes the metrics (:mod:`pairgan.metrics.suite`) and writes
``outputs/``, ``inputs/``, ``targets/``, ``metrics.json`` (with ``protocol_version``) and the
report ``index.html`` into ``out_dir``. Under a locked protocol (``protocol=``, a
:class:`pairgan.protocols.Protocol`) it also checks the split against the protocol's manifest, reads
it as the protocol says, scores every generated image as the 8-bit image written to ``outputs/``
(resized to the protocol's resolution with its kernel when it has another size), checks the metric
networks' and the segmenter's hashes against the protocol's pins, and writes a result card
(:mod:`pairgan.metrics.card`) as ``card.json``; see :func:`build_card`. :func:`evaluate_split` is the older, L1/PSNR/SSIM entry
point (same files); :func:`heldout_l1` the mean L1 alone; :func:`score_real` scores a segmenter
on the real photos of a split and :func:`score_pose_split` a GGB model on a split of pose pairs.
Validation during training lives in :mod:`pairgan.train.validation`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from torch.utils.data import Dataset

from pairgan.checkpoint import resolve_checkpoint, run_of
from pairgan.config import DataConfig
from pairgan.data.datasets import build_dataset
from pairgan.data.io import list_images, match_channels, read_image, to_unit_float, write_image
from pairgan.data.labels import colorize
from pairgan.data.palettes import builtin_palette
from pairgan.data.poses import person_mask
from pairgan.data.transforms import resize, to_array, to_tensor
from pairgan.errors import ConfigError, DataError
from pairgan.fsutil import atomic_write_text
from pairgan.trackers import log_evaluation
from pairgan.infer import Translator
from pairgan.methods.segmenter import load_segmenter
from pairgan.metrics import compute_metrics
from pairgan.metrics.basic import l1, ssim
from pairgan.metrics.card import ResultCard, environment_info, save_card
from pairgan.metrics.fid import files_key
from pairgan.metrics.inception import PROTOCOL as INCEPTION_PROTOCOL
from pairgan.metrics.inception import load_inception
from pairgan.metrics.lpips import lpips_model
from pairgan.metrics.masked import mask_ssim
from pairgan.metrics.report import write_report
from pairgan.metrics.segmentation import confusion_matrix, scores_from_confusion
from pairgan.metrics.suite import (
    INCEPTION_METRICS,
    LPIPS_NETS,
    PROTOCOL,
    PROTOCOL_VERSION,
    EvalContext,
    compute,
    parse_metrics,
    seg_per_class,
    split_oracle,
    uncertainties,
)
from pairgan.protocols import Protocol, check_manifest
from pairgan.runtime import resolve_device
from pairgan.visual import write_gallery
from pairgan.weights import sha256_file

log = logging.getLogger(__name__)

__all__ = [
    "METRIC_WEIGHTS",
    "SplitBatch",
    "build_card",
    "checkpoint_sha256",
    "evaluate",
    "evaluate_split",
    "heldout_l1",
    "iter_split",
    "load_metric_networks",
    "real_cache_key",
    "read_train_summary",
    "run_record",
    "summary_describes",
    "score_pose_split",
    "score_real",
    "segmenter_sha256",
    "split_dataset",
    "weights_sha256",
]

#: ``translate`` of :func:`iter_split`: a batch of NCHW tensors -> one output per item (NCHW or NHW).
TranslateFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


# --------------------------------------------------------------------------- one split, in batches


def split_dataset(data_cfg: DataConfig, data_path: str | os.PathLike, split: str, *, max_items: int = 0,
                  size_multiple: int = 1, seed: int = 0) -> Dataset:
    """``split`` of the data set at ``data_path``, read with ``data_cfg`` as a model was trained on
    it but without augmentation, at sizes that are multiples of ``size_multiple`` (the model's);
    ``max_items`` > 0 keeps the first items only."""
    cfg = dataclasses.replace(data_cfg, path=str(data_path), max_items=max_items)
    return build_dataset(cfg, split, train=False, size_multiple=size_multiple, seed=seed)


@dataclass
class SplitBatch:
    """One batch of a split, as :func:`iter_split` yields it."""

    #: The data set's items (CHW tensors, file paths, index).
    items: list[dict[str, Any]]
    #: Their tensors stacked (NCHW): what ``translate`` was given.
    batch: dict[str, torch.Tensor]
    #: Per item the stem of its input file (its index, ``00012``, when it has none).
    names: list[str]
    #: ``translate(batch)`` on the CPU; None without ``translate``.
    outputs: torch.Tensor | None
    #: ``batch[target_key]``; None without ``target_key``.
    targets: torch.Tensor | None
    #: Seconds spent in ``translate``.
    seconds: float


def _name_of(item: dict[str, Any], i: int) -> str:
    return Path(item.get("A_path") or f"{i:05d}").stem


def _tensor_shapes(item: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in item.items() if torch.is_tensor(v)]


def iter_split(dataset: Dataset, translate: TranslateFn | None = None, *, batch_size: int = 1,
               target_key: str | None = None) -> Iterator[SplitBatch]:
    """Every item of ``dataset`` (from :func:`split_dataset`), in order, in batches of up to
    ``batch_size`` items whose tensors have the same shapes, translated by ``translate`` (no
    gradients; outputs moved to the CPU) when it is given.

    ``target_key``: the key of the target image each item must have (a ValueError names the first
    item without one, before it is translated); it is stacked into ``targets``. A batch is
    translated as soon as it is full, so with ``batch_size=1`` (what evaluation and validation use:
    outputs that depend on batch statistics or on a per-call seed stay those of one image at a
    time) each item is translated before the next one is read.
    """
    size = max(1, int(batch_size))
    pending: list[tuple[int, dict[str, Any]]] = []

    def flush() -> SplitBatch:
        items = [item for _, item in pending]
        batch = {k: torch.stack([item[k] for item in items]) for k, _ in _tensor_shapes(items[0])}
        outputs, seconds = None, 0.0
        if translate is not None:
            tic = time.perf_counter()
            with torch.no_grad():
                outputs = translate(batch).cpu()
            seconds = time.perf_counter() - tic
        part = SplitBatch(items, batch, [_name_of(item, i) for i, item in pending], outputs,
                          batch[target_key] if target_key is not None else None, seconds)
        pending.clear()
        return part

    for i in range(len(dataset)):  # type: ignore[arg-type]
        item = dataset[i]
        if target_key is not None and target_key not in item:
            raise ValueError(f"{item.get('A_path')}: the {dataset.split} split has no target images to score "
                             "against")
        if pending and _tensor_shapes(item) != _tensor_shapes(pending[0][1]):
            yield flush()
        pending.append((i, item))
        if len(pending) >= size:
            yield flush()
    if pending:
        yield flush()


# --------------------------------------------------------------------------- the networks of the metrics


def load_metric_networks(names: Sequence[str], device: str | torch.device, *, inception: str | None = None,
                         segmenter: Any = None, feature_extractor: Any = None) -> dict[str, Any]:
    """The networks the metrics ``names`` need, loaded on ``device``, as keyword arguments of
    :class:`pairgan.metrics.suite.EvalContext`: the Inception network for ``fid``/``kid``/``is``
    (``inception``: None for the ``inception-fid`` weights, or a file; not loaded when a
    ``feature_extractor`` stands in), the LPIPS models, the segmenter for ``seg`` (``segmenter``:
    its run or checkpoint folder, or a loaded one). A missing weights file stops here, before
    anything is translated."""
    nets: dict[str, Any] = {}
    if feature_extractor is not None:
        nets["feature_extractor"] = feature_extractor
    elif any(n in names for n in INCEPTION_METRICS):
        nets["inception_net"] = load_inception(inception, device)
    lpips = {n: lpips_model(trunk, device) for n, trunk in LPIPS_NETS.items() if n in names}
    if lpips:
        nets["lpips_nets"] = lpips
    if "seg" in names and segmenter is not None:
        nets["segmenter"] = load_segmenter(segmenter, device) if isinstance(segmenter, (str, os.PathLike)) \
            else segmenter
    return nets


def real_cache_key(ds: Any, target_key: str, inception: str | None) -> str:
    """The real-set feature cache key: protocol version, Inception weights, how the split is read
    (data settings, the target side) and every file (path, size, mtime)."""
    files = [str(p) for pair in getattr(ds, "pairs", []) for p in (pair if isinstance(pair, tuple) else (pair,))
             if p is not None]
    cfg = dataclasses.asdict(ds.cfg)
    cfg.pop("max_items", None)
    extra = {"protocol_version": PROTOCOL_VERSION, "inception_protocol": INCEPTION_PROTOCOL, "inception": inception or
             "inception-fid", "data": cfg, "split": ds.split, "target": target_key,
             "size_multiple": ds.transform.size_multiple}
    return files_key(files, extra)


# --------------------------------------------------------------------------- evaluate


def evaluate(
    translator: Translator | None,
    data_path: str | os.PathLike,
    split: str,
    out_dir: str | os.PathLike,
    *,
    metrics: str | Sequence[str] = ("l1", "psnr", "ssim"),
    max_items: int = 0,
    seed: int = 0,
    outputs_dir: str | os.PathLike | None = None,
    data_cfg: Any = None,
    segmenter: Any = None,
    inception: str | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    cache_real: bool = True,
    report_rows: int = 12,
    feature_extractor: Any = None,
    gallery: bool = False,
    protocol: Protocol | None = None,
    force: bool = False,
    features: str | None = "random",
) -> dict[str, Any]:
    """Evaluate ``split`` of ``data_path``; returns what ``metrics.json`` holds.

    ``features``: for models with instance features (pix2pixHD with ``model.use_features``), how
    each object's feature vector is chosen (:func:`evaluation_features`): ``random`` (default, a
    random cluster centre of its class, seeded by ``seed``, as the reference tests), ``cluster:K``,
    or ``encode`` (the encoder on the REAL test photo: the answer leaks into the input, and
    metrics.json, the report and a card say so). Ignored for models without features.

    ``translator``: the model to translate with; None together with ``outputs_dir`` (images
    named like the split's files, ``NAME.png`` or any image extension) and ``data_cfg`` (how to
    read the split: direction, layout, sizes). ``metrics``: names or ``"l1,fid,..."`` (see
    :func:`pairgan.metrics.suite.parse_metrics`); ``segmenter``: a checkpoint path or a loaded
    segmenter for ``seg``; ``inception``: None (the ``inception-fid`` weights) or a file.
    The report is ``index.html``; with ``gallery`` (:func:`evaluate_split`) ``index.html`` is the
    plain input | output | target gallery and the report ``report.html``.

    ``protocol``: score under this locked protocol (its split, reading, resolution, metrics, KID
    settings and seed replace ``split``, ``metrics`` and ``seed``; ``max_items`` must be 0) and
    write ``card.json``. A split that differs from the protocol's manifest raises DataError naming
    the file, unless ``force``: then the card is marked not comparable, with a note.
    """
    t_start = time.perf_counter()
    notes: list[str] = []
    feature_mode, feature_note = evaluation_features(translator, features, seed)
    if feature_mode is not None and feature_mode.startswith("encode"):
        notes.append(feature_note)
    if protocol is not None:
        split, metrics, seed = protocol.split, list(protocol.metrics), protocol.seed
        _check_supported(protocol, max_items)
        if "seg" in metrics and segmenter is None:
            metrics.remove("seg")
            notes.append(f"no segmentation score: protocol {protocol.name} asks for seg but no segmenter was given "
                         "(--segmenter)")
    names = parse_metrics(metrics, segmenter=segmenter is not None)
    if "seg" in names and segmenter is None:
        raise ValueError("the seg metric needs --segmenter CKPT (train one with `pairgan segmenter train`)")
    if translator is None and (outputs_dir is None or (data_cfg is None and protocol is None)):
        raise ValueError("evaluate needs a model to translate with, or outputs_dir and data_cfg (or a protocol)")
    # the networks first: a missing weights file stops here, not after translating the split
    networks = load_metric_networks(names, device, inception=inception, segmenter=segmenter,
                                    feature_extractor=feature_extractor)
    out_dir = Path(out_dir)
    method = translator.method if translator is not None else None
    if data_cfg is None and translator is not None:
        data_cfg = translator.cfg.data
    size_multiple = method.size_multiple if method is not None else 1
    if protocol is not None:
        data_cfg = protocol_data_config(protocol, data_cfg, from_model=translator is not None)
        size_multiple = 1  # images at the protocol's resolution; the translator pads to its multiple itself
    ds = split_dataset(data_cfg, data_path, split, max_items=max_items, size_multiple=size_multiple, seed=seed)
    target_key = method.target_key if method is not None else ("image" if ds.layout == "labels" else "B")
    # The segmentation score's ground truth, read as the protocol reads label maps (nearest), also
    # for a model that takes its label map as an image: every card is scored against the same ids.
    truth_ds = None
    truth_palette = builtin_palette(protocol.palette) if protocol is not None and protocol.palette else None
    if protocol is not None and "seg" in names and protocol.input == "colour_label" and truth_palette is not None:
        # ids decoded with the protocol's rule (nearest colour at native size, far -> void) for
        # every card, whatever the model reads or the segmenter was trained with
        truth_cfg = dataclasses.replace(
            data_cfg, layout=protocol.layout, input_kind="label", label_nc=truth_palette.num_classes,
            palette=protocol.palette, palette_match="nearest", palette_max_distance=protocol.palette_max_distance,
            palette_void_id=-1, instance=False)
        truth_ds = split_dataset(truth_cfg, data_path, split, max_items=max_items, size_multiple=size_multiple,
                                 seed=seed)
    elif protocol is not None and protocol.input in ("colour_label", "label_ids") and data_cfg.input_kind == "image":
        truth_ds = split_dataset(dataclasses.replace(data_cfg, input_kind="label"), data_path, split,
                                 max_items=max_items, size_multiple=size_multiple, seed=seed)
    if protocol is not None:
        problem = check_manifest(_split_files(ds), protocol.manifest)
        if problem:
            where = Path(data_path) / split
            if not force:
                raise DataError(problem.message(str(where), protocol.name) + "; expected the split the protocol "
                                "pins (--force scores it anyway and marks the card not comparable)")
            notes.append("forced past a manifest mismatch: " + problem.message(str(where), protocol.name))

    given: dict[str, Path] = {}
    if outputs_dir is not None:
        outputs_dir = Path(outputs_dir)
        if not outputs_dir.is_dir():
            raise FileNotFoundError(f"{outputs_dir}: no such folder (--outputs)")
        for f in list_images(outputs_dir):
            given.setdefault(f.stem, f)
    for sub in ("inputs", "outputs", "targets"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)

    fakes: list[torch.Tensor] = []
    reals: list[torch.Tensor] = []
    labels: list[torch.Tensor | None] = []
    rows: list[dict[str, str]] = []
    t_translate = 0.0
    # Models with instance features get the evaluation's feature mode in every batch (by default
    # random: without it they would encode the real photo that is in the batch).
    options = {"features": feature_mode} if feature_mode is not None else {}
    translate = functools.partial(_translate_with, translator, options, seed) if outputs_dir is None else None
    for part in iter_split(ds, translate, target_key=target_key):  # type: ignore[arg-type]
        t_translate += part.seconds
        shown_batch = method.display_input(part.batch) if method is not None else None
        for j, (item, name) in enumerate(zip(part.items, part.names)):
            target = part.targets[j]  # type: ignore[index]
            if part.outputs is not None:
                fake = part.outputs[j]
                if protocol is not None:
                    fake = _as_scored(fake, target)
            else:
                tic = time.perf_counter()
                f = given.get(name)
                if f is None:
                    raise FileNotFoundError(f"{outputs_dir}: no generated image for {name} (expected {name}.png)")
                arr = match_channels(to_unit_float(read_image(f)), target.shape[0], f, key="generated image")
                fake = to_tensor(arr)
                if protocol is not None:
                    fake = _as_scored(fake, target)
                if fake.shape != target.shape:
                    raise ValueError(f"{f}: {fake.shape[2]}x{fake.shape[1]}, but the target is read as "
                                     f"{target.shape[2]}x{target.shape[1]} (data.preprocess / crop_size of the run)")
                t_translate += time.perf_counter() - tic
            if shown_batch is not None:
                shown = shown_batch[j]
            elif "label" in item:
                shown = colorize(item["label"])[0]
            else:
                shown = item["A"]
            for sub, t in (("inputs", shown), ("outputs", fake), ("targets", target)):
                write_image(out_dir / sub / f"{name}.png", to_array(t.cpu()))
            rows.append({"name": name, **{c: f"{c}s/{name}.png" for c in ("input", "output", "target")}})
            fakes.append(fake)
            reals.append(target)
            truth = truth_ds[item["index"]] if truth_ds is not None else item
            if "label" in truth:
                labels.append(truth["label"][0])
            elif "A" in truth and truth["A"].shape[0] in (1, 3):
                labels.append(truth["A"])  # a label image: the segmenter maps it to ids
            else:
                labels.append(None)

    key = None
    if cache_real and any(n in names for n in ("fid", "kid")):
        key = real_cache_key(ds, target_key, inception)
    kid_settings = {} if protocol is None else {"kid_subsets": protocol.kid_subsets,
                                                "kid_subset_size": protocol.kid_subset_size}
    ctx = EvalContext(fakes, reals, labels, device=device, batch_size=batch_size, seed=seed, real_cache_key=key,
                      **kid_settings, **networks)
    scores, seconds = compute(names, ctx)
    card = None
    if protocol is not None:
        card = build_card(protocol, names, ctx, networks, translator=translator, outputs_dir=outputs_dir,
                          device=device, notes=notes)
    total = time.perf_counter() - t_start
    result = {
        "protocol_version": PROTOCOL_VERSION,
        "split": split,
        "data": str(data_path),
        "checkpoint": str(translator.checkpoint) if translator is not None else None,
        "outputs": str(outputs_dir) if outputs_dir is not None else None,
        "mode": translator.mode if translator is not None else None,
        "weights": translator.method.weights_source if translator is not None else None,
        "backend": translator.describe_backend() if translator is not None else None,
        "seed": seed,
        "metrics": scores,
        "protocol": "images in [0,1]; L1 mean abs error; PSNR data range 1; SSIM 11x11 Gaussian sigma 1.5",
        "protocols": {n: PROTOCOL[n] for n in names if n in PROTOCOL},
        "features": feature_mode,
        "details": ctx.details | ({"features": {"mode": feature_mode, "note": feature_note}} if feature_mode else {}),
        "timing": {"translate_s": round(t_translate, 2), "metrics_s": seconds, "total_s": round(total, 2)},
        "environment": {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
                        "python": platform.python_version()},
        "samples": rows,
    }
    if card is not None:
        result["card"] = card.to_dict()
        save_card(card, out_dir / "card.json")
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2, default=str) + "\n")
    report = write_report(out_dir, result, rows, max_rows=report_rows, name="report.html" if gallery else "index.html")
    if gallery:
        notes = " · ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "count" and isinstance(v, float))
        write_gallery(out_dir, rows, ["input", "output", "target"], title=f"pairgan — {split} split",
                      notes=notes + " · full report: report.html")
    extra = {"card_file": str(out_dir / "card.json")} if card is not None else {}
    if translator is not None and translator.checkpoint is not None:
        # The run's W&B / MLflow runs (train.loggers) get the scores and the card (or metrics.json).
        tracked = log_evaluation(run_of(Path(translator.checkpoint)), scores,
                                 out_dir / ("card.json" if card is not None else "metrics.json"),
                                 name=f"eval_{protocol.name if protocol is not None else split}")
        if tracked:
            extra["trackers"] = tracked
    return result | {"report": str(report), "metrics_file": str(out_dir / "metrics.json")} | extra


def _translate_with(translator: Translator, options: dict[str, Any], seed: int, batch: dict[str, Any]) -> torch.Tensor:
    return translator.translate_batch(batch | options, seed=seed)


def evaluation_features(translator: Translator | None, features: str | None, seed: int) -> tuple[str | None, str]:
    """How an evaluation chooses instance features: (the ``features`` batch option or None for a
    model without them, the note metrics.json and the report carry). A model offers features
    when its :meth:`~pairgan.methods.base.Method.request_schema` lists them; ``features`` other
    than the default ``random`` for a model without them is a ValueError."""
    offered = translator is not None and bool(translator.method.request_schema()["options"].get("features"))
    mode = features or "random"
    if not offered:
        if features not in (None, "", "random"):
            raise ValueError(f"--features {features}: this model has no instance features "
                             "(pix2pixHD with model.use_features=true has)")
        return None, ""
    if mode == "random":
        return mode, (f"instance features: a random cluster centre of each object's class per object, seeded by "
                      f"--seed {seed} (as the reference tests); the real photos are not read")
    if mode.startswith("cluster:"):
        return mode, f"instance features: cluster centre {mode[8:]} of each object's class"
    if mode == "encode" or mode.startswith("encode:"):
        return mode, (f"instance features ENCODED FROM THE REAL PHOTOS (--features {mode}): each object's style is "
                      "read from the answer, which flatters the model; not comparable with random-feature scores "
                      "or with models without an encoder")
    raise ValueError(f"--features {features}: expected random, cluster:K or encode")


# --------------------------------------------------------------------------- locked protocols

#: The weights registry name each metric's network is pinned under in a protocol.
METRIC_WEIGHTS = {"fid": "inception-fid", "kid": "inception-fid", "is": "inception-fid", "lpips": "lpips-vgg",
                  "lpips_alex": "lpips-alex"}


def _check_supported(protocol: Protocol, max_items: int) -> None:
    """What this evaluation can honour of a protocol (ConfigError naming the item otherwise)."""
    if max_items:
        raise ConfigError(f"protocol {protocol.name} scores its whole split; max_items={max_items} is not allowed")
    w, h = protocol.resolution
    if w != h:
        raise ConfigError(f"protocol {protocol.name}: resolution {w}x{h}; pairgan evaluates square resolutions only")
    if protocol.resize_photo.kernel != "bicubic":
        raise ConfigError(f"protocol {protocol.name}: photo kernel {protocol.resize_photo.kernel!r}; pairgan's "
                          "reader resizes photos with bicubic (pairgan.data.transforms.resize)")


def protocol_data_config(protocol: Protocol, base: DataConfig | None, *, from_model: bool) -> DataConfig:
    """``base`` (the model's data settings, or ``--preset``/``--set``'s for ``--outputs``) with the
    protocol's reading: its resolution (``resize_and_crop`` to it, no flip) and label maps resized
    with nearest; for ``--outputs`` also its layout and direction. A model whose direction differs
    from the protocol's is refused (it translates the other way). A model that takes the label
    map as an image (pix2pix on colour labels) keeps reading it as it was trained (bicubic): how
    the model's input is made is the model's part, the protocol pins what is scored; the
    segmentation score's ground truth is read with the protocol's nearest rule for every model
    (:func:`evaluate`)."""
    base = base if base is not None else DataConfig()
    changes = protocol.data_overrides()
    if protocol.input in ("colour_label", "label_ids") and not (from_model and base.input_kind == "image"):
        changes["input_kind"] = "label"
    if from_model:
        if base.layout == "aligned" and base.direction != protocol.direction:
            raise ConfigError(f"the model translates {base.direction} but protocol {protocol.name} scores "
                              f"{protocol.direction}; expected a model trained in the protocol's direction")
        changes.pop("layout")
        changes.pop("direction")
    return dataclasses.replace(base, **changes)


def _split_files(ds: Any) -> list[Path]:
    """The distinct files of a data set's pairs (what a manifest lists)."""
    seen: dict[Path, None] = {}
    for pair in getattr(ds, "pairs", []):
        for p in (pair if isinstance(pair, tuple) else (pair,)):
            if p is not None:
                seen.setdefault(Path(p), None)
    return list(seen)


def _as_scored(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A generated image as a protocol scores it: at the target's size (bicubic, as the reader
    resizes photos) and as the 8-bit image written to ``outputs/``, so that re-scoring those
    files with ``--outputs`` gives the same numbers."""
    arr = to_array(fake.detach().cpu().float())
    h, w = target.shape[-2:]
    if arr.shape[:2] != (h, w):
        arr = resize(arr, (w, h))
    q = np.rint(np.clip(arr, 0.0, 1.0).astype(np.float64) * 255).astype(np.uint8)
    return to_tensor(to_unit_float(q))


def weights_sha256(path: str | os.PathLike) -> str:
    """The sha256 of the weights in a ``.safetensors`` file: over each tensor, by name, its name,
    dtype, shape and bytes. Not the file's own bytes: safetensors writes the metadata of its header
    in an order that changes from process to process, so the same weights make different files."""
    h = hashlib.sha256()
    try:
        with safe_open(str(path), "pt") as f:
            for name in sorted(f.keys()):
                t = f.get_tensor(name).contiguous().reshape(-1)
                h.update(f"{name}\0{t.dtype}\0{tuple(f.get_slice(name).get_shape())}\0".encode())
                h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    except (OSError, SafetensorError) as exc:
        raise DataError(f"{path}: unreadable weights file ({exc})") from None
    return h.hexdigest()


def checkpoint_sha256(checkpoint: str | os.PathLike) -> str:
    """One sha256 over a checkpoint's weights: of the lines ``NAME.safetensors WEIGHTS_SHA256``
    (:func:`weights_sha256`, sorted by name; the moving averages of ``train.ema`` as
    ``ema/NAME.safetensors``), so it names exactly the weights, not the optimiser state or the config."""
    folder = resolve_checkpoint(checkpoint)
    lines = [f"{p.name} {weights_sha256(p)}\n" for p in sorted(folder.glob("*.safetensors"))]
    lines += [f"ema/{p.name} {weights_sha256(p)}\n" for p in sorted((folder / "ema").glob("*.safetensors"))]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def segmenter_sha256(segmenter: Any) -> str:
    """The segmenter's hash, what a protocol pins: :func:`weights_sha256` of its weights file
    ``S.safetensors`` (a loaded segmenter, or its run / checkpoint folder)."""
    folder = getattr(segmenter, "checkpoint", None) if not isinstance(segmenter, (str, os.PathLike)) else segmenter
    if folder is None:
        raise ConfigError("the segmenter has no checkpoint folder to hash (load it with load_segmenter)")
    return weights_sha256(resolve_checkpoint(folder) / "S.safetensors")


def run_record(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """What a card says about a checkpoint: its weights' hash, method, config, the steps trained
    (``train_summary.json`` when it describes this checkpoint, else the ``step_N`` folder name)
    and the training wall time when the run recorded it."""
    folder = resolve_checkpoint(checkpoint)
    record: dict[str, Any] = {"checkpoint_sha256": checkpoint_sha256(folder), "train_steps": None,
                              "train_wall_s": None}
    m = re.fullmatch(r"step_(\d+)", folder.name)
    if m:
        record["train_steps"] = int(m.group(1))
    summary = read_train_summary(folder)
    if summary:
        same = summary_describes(summary, folder)
        if same or record["train_steps"] is None:
            record["train_steps"] = summary.get("steps", record["train_steps"])
        if same:  # every session of the run (older summaries: the last session's)
            record["train_wall_s"] = summary.get("seconds_total") or summary.get("seconds")
    return record


def read_train_summary(checkpoint: Path) -> dict[str, Any]:
    """The ``train_summary.json`` of checkpoint folder ``checkpoint``'s run; ``{}`` when the run has
    none (or the folder is not in a run), and with a warning when it cannot be read."""
    run = run_of(checkpoint)
    summary_file = run / "train_summary.json" if run is not None else None
    if summary_file is None or not summary_file.is_file():
        return {}
    try:
        summary = json.loads(summary_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable (%s); no training time or machine is recorded from it", summary_file, exc)
        return {}
    return summary if isinstance(summary, dict) else {}


def summary_describes(summary: dict[str, Any], checkpoint: Path) -> bool:
    """``summary`` (:func:`read_train_summary`) is of checkpoint folder ``checkpoint``: the run's final
    checkpoint, the same folder — or, for a run folder moved since, the same name and step."""
    recorded = Path(str(summary.get("checkpoint", "")))
    if recorded.resolve() == Path(checkpoint).resolve():
        return True
    m = re.fullmatch(r"step_(\d+)", Path(checkpoint).name)
    return recorded.name == Path(checkpoint).name and m is not None and summary.get("steps") == int(m.group(1))


def _weights_notes(protocol: Protocol, names: Sequence[str], networks: dict[str, Any]) -> list[str]:
    """One note per metric network whose weights are not the protocol's pinned file."""
    notes: list[str] = []
    paths: dict[str, str | None] = {}
    for metric in names:
        pin_name = METRIC_WEIGHTS.get(metric)
        if pin_name is None or pin_name in paths:
            continue
        if metric in ("fid", "kid", "is"):
            net = networks.get("inception_net")
            paths[pin_name] = getattr(net, "weights_path", None) if net is not None else None
        else:
            net = networks.get("lpips_nets", {}).get(metric)
            paths[pin_name] = getattr(net, "weights_path", None) if net is not None else None
    for pin_name, path in paths.items():
        pin = protocol.weights.get(pin_name)
        if pin is None:
            notes.append(f"protocol {protocol.name} pins no {pin_name} weights")
        elif path is None:
            notes.append(f"{pin_name}: not the pinned network (a stand-in or unrecorded weights file was used)")
        else:
            digest = sha256_file(path)
            if digest != pin:
                notes.append(f"{pin_name}: {path} has sha256 {digest[:16]}..., protocol {protocol.name} pins "
                             f"{pin[:16]}...")
    return notes


def build_card(protocol: Protocol, names: Sequence[str], ctx: EvalContext, networks: dict[str, Any], *,
               translator: Translator | None, outputs_dir: str | os.PathLike | None,
               device: str | torch.device, notes: Sequence[str] = ()) -> ResultCard:
    """The result card of an evaluation that :func:`pairgan.metrics.suite.compute` just scored
    under ``protocol``: the metrics with their uncertainties, the oracle row (the segmenter on the
    real photos), per-class segmentation, the source, the segmenter's hash and the machine. The
    card is not comparable (with a note saying why) when the split was forced past its manifest,
    a metric network's weights or the segmenter differ from the pins, or the protocol pins no
    segmenter yet."""
    notes = list(notes)
    values = uncertainties(names, ctx, n_resamples=protocol.bootstrap_resamples,
                           fid_resamples=protocol.fid_resamples, seed=protocol.seed)
    metrics, oracle = split_oracle(values)
    notes += _weights_notes(protocol, names, networks)
    seg_sha = None
    if "seg" in names:
        seg = networks["segmenter"]
        seg_sha = segmenter_sha256(seg)
        pin = protocol.segmenter.sha256 if protocol.segmenter is not None else None
        if pin is None:
            notes.append(f"protocol {protocol.name} pins no segmenter yet (segmenter.sha256 is null): this card's "
                         f"segmentation score (segmenter {seg_sha[:16]}...) is not comparable with another's")
        elif seg_sha != pin:
            notes.append(f"segmenter {seg_sha[:16]}... is not the one protocol {protocol.name} pins ({pin[:16]}...)")
        if protocol.segmenter is not None and seg.n_classes != len(protocol.segmenter.classes):
            notes.append(f"the segmenter has {seg.n_classes} classes, protocol {protocol.name} "
                         f"{len(protocol.segmenter.classes)}")
    if translator is not None:
        method = translator.method
        folder = method.checkpoint if method.checkpoint is not None else translator.checkpoint
        source = {"kind": "checkpoint", "path": str(folder), "method": translator.cfg.method,
                  "config": translator.cfg.to_dict(), "weights": method.weights_source, **run_record(folder)}
        title = f"{translator.cfg.method} ({Path(str(folder)).name})"
    else:
        source = {"kind": "outputs", "path": str(outputs_dir), "checkpoint_sha256": None, "method": None,
                  "config": None, "train_steps": None, "train_wall_s": None}
        title = f"outputs {Path(str(outputs_dir)).name}"
    return ResultCard(
        title=f"{title} — {protocol.name} v{protocol.version}",
        protocol=protocol.card_entry(),
        metrics=metrics,
        oracle=oracle,
        per_class=seg_per_class(ctx.details),
        n_images=len(ctx.fakes),
        source=source,
        segmenter_sha256=seg_sha,
        comparable=not notes,
        notes=notes,
        environment=environment_info(device),
    )


def evaluate_split(
    translator: Translator,
    data_path: str | os.PathLike,
    split: str,
    out_dir: str | os.PathLike,
    *,
    max_items: int = 0,
    metrics: tuple[str, ...] = ("l1", "psnr", "ssim"),
    seed: int = 0,
) -> dict[str, Any]:
    """Translate ``split`` of the data set at ``data_path`` (read as the model was trained, without
    augmentation), write outputs, the gallery ``index.html`` (input | output | target), the report
    ``report.html`` and ``metrics.json`` into ``out_dir``. The pair metrics of ``metrics`` (L1, PSNR, SSIM by default); see :func:`evaluate`
    for the rest."""
    return evaluate(translator, data_path, split, out_dir, metrics=metrics, max_items=max_items, seed=seed,
                    device=translator.device, gallery=True)


def heldout_l1(translator: Translator, data_path: str | os.PathLike, split: str, max_items: int = 0) -> float:
    """Mean L1 (in [0, 1] units) of the model on a split, without writing anything."""
    method = translator.method
    ds = split_dataset(translator.cfg.data, data_path, split, max_items=max_items, size_multiple=method.size_multiple)
    fakes: list[torch.Tensor] = []
    reals: list[torch.Tensor] = []
    for part in iter_split(ds, translator.translate_batch, target_key=method.target_key):
        fakes += list(part.outputs)  # type: ignore[arg-type]
        reals += list(part.targets)  # type: ignore[arg-type]
    return compute_metrics(fakes, reals, ("l1",))["l1"]


# --------------------------------------------------------------------------- method-specific scores


def score_real(checkpoint: str | Path, data: str | Path, split: str = "test", *, max_items: int = 0,
               device: str = "auto") -> dict[str, Any]:
    """A segmenter (its run or checkpoint folder) on the REAL photos of ``split`` (read with its
    own data settings, without augmentation): pixel accuracy, class accuracy, mean IoU and the
    per-class values."""
    dev = resolve_device(device)
    seg = load_segmenter(checkpoint, dev)
    ds = split_dataset(seg.data, data, split, max_items=max_items, size_multiple=seg.size_multiple)

    def on_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(dev) for k, v in batch.items()}

    n = seg.n_classes
    hist = torch.zeros(n, n, dtype=torch.long)
    for part in iter_split(ds, lambda batch: seg.predict(seg.photo_of(on_device(batch)))):
        hist += confusion_matrix(seg.ids_of(on_device(part.batch)).cpu(), part.outputs, n, seg.cfg.ignore_index)
    return scores_from_confusion(hist, list(seg.cfg.class_names) or None) | {"images": len(ds)}


def score_pose_split(translator: Translator, data_path: str | Path, split: str, *, max_items: int = 0,
                     batch_size: int = 8, limb_radius: float = 0.06, dilate: float = 0.02) -> dict[str, float]:
    """SSIM, mask-SSIM and L1 of a trained GGB over a split's pairs, read as in evaluation (no
    augmentation). Images are compared in [0, 1]; the mask of each pair is
    :func:`pairgan.data.poses.person_mask` of the target's keypoints at the network resolution."""
    ds = split_dataset(translator.cfg.data, data_path, split, max_items=max_items,
                       size_multiple=translator.method.size_multiple)

    def translate(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return translator.translate_batch({k: batch[k] for k in ("source", "target_pose")})

    totals = {"ssim": 0.0, "mask_ssim": 0.0, "l1": 0.0}
    count = 0
    for part in iter_split(ds, translate, batch_size=batch_size, target_key="target"):
        fake = (part.outputs + 1) / 2  # type: ignore[operator]
        real = (part.targets + 1) / 2  # type: ignore[operator]
        h, w = real.shape[-2:]
        masks = torch.from_numpy(np.stack([person_mask(k.numpy(), h, w, limb_radius, dilate)
                                           for k in part.batch["target_keypoints"]]))
        totals["ssim"] += float(ssim(fake, real).sum())
        totals["mask_ssim"] += float(mask_ssim(fake, real, masks).sum())
        totals["l1"] += float(l1(fake, real).sum())
        count += len(part.items)
    return {k: v / max(count, 1) for k, v in totals.items()} | {"count": count}

