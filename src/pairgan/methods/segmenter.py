"""The segmenter behind the segmentation score: a small network trained on REAL photos -> label ids.

pix2pix's FCN-score and pix2pixHD's segmentation accuracy label the *generated* photos with a
segmentation network trained on real ones and compare the result with the input label map.
Their networks (Caffe FCN-8s, PSPNet/DRN) are not available offline, so pairgan trains its own,
as a method like any other: ``pairgan segmenter train --data PATH`` runs the ordinary trainer
(checkpoints, resume, samples, logs) and the result is a pairgan checkpoint
(``pairgan translate SEG photos/`` colours the predicted labels). The score of a segmenter is
comparable between runs evaluated with the *same* segmenter, not with the papers' numbers.

Data (the same data set and data settings as the translation run):

* the labels layout (``ROOT/{split}_label``, ``_img``; Cityscapes, the synthetic scenes):
  photo = ``image``, ids = ``label``; ``data.label_nc`` classes;
* aligned / folders layouts: the label side is the generator's input (``A`` after
  ``data.direction``), the photo the other side. Colour-coded label images are mapped to ids by
  the nearest colour of ``model.palette`` (``facades``, ``kmeans:K`` or a palette JSON file);
  the resolved colours are stored in the checkpoint (``model.palette_colors``), so evaluation
  maps the input labels exactly as training did. 1-channel id images need no palette.

Network: a registered generator (``unet`` by default) with ``n_classes`` outputs and its final
Tanh removed (logits), trained with per-pixel cross-entropy (``model.ignore_index`` ignored).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pairgan.checkpoint import load_checkpoint_config, resolve_checkpoint
from pairgan.config import DataConfig, TrainConfig, apply_overrides, config_from_dict
from pairgan.data.datasets import build_dataset
from pairgan.data.io import match_channels, read_image, to_unit_float
from pairgan.data.labels import ColourDecoding, colorize, colour_decoding, palette_file
from pairgan.data.palettes import nearest_ids
from pairgan.data.transforms import to_tensor
from pairgan.errors import ConfigError
from pairgan.methods.base import ExportGraph, Method, StepContext
from pairgan.methods.build import load_method
from pairgan.methods.optim import adam
from pairgan.metrics.segmentation import FACADES_CLASSES, colours_to_ids, resolve_palette
from pairgan.padding import pad_to_multiple
from pairgan.registry import create, register

__all__ = ["SEGMENTER_DEFAULTS", "Segmenter", "SegmenterConfig", "build_segmenter_config", "load_segmenter"]


@dataclass
class SegmenterConfig:
    """``model:`` options of the segmenter."""

    #: Registered generator used as the segmentation network: ``unet`` or ``resnet``.
    net: str = "unet"
    num_downs: int = 8
    n_blocks: int = 6
    ngf: int = 32
    norm: Literal["batch", "instance", "none"] = "instance"
    #: Number of classes (0: ``data.label_nc``, else the palette's size).
    n_classes: int = 0
    #: Colour-coded labels: ``facades``, ``kmeans:K``, or a palette JSON file ("": ids in the data).
    palette: str = ""
    #: The resolved palette (written at training time; what evaluation uses).
    palette_colors: list[list[int]] = field(default_factory=list)
    #: Class names for reports (optional).
    class_names: list[str] = field(default_factory=list)
    #: Ground-truth id ignored by the loss and the scores (-1: none).
    ignore_index: int = -1


#: The training recipe of ``pairgan segmenter train`` (overridable with --set).
SEGMENTER_DEFAULTS: dict[str, Any] = {
    "method": "segmenter",
    "data": {"input_kind": "label", "load_size": 286, "crop_size": 256, "flip": True},
    "train": {"max_steps": 3000, "batch_size": 4, "lr": 2e-4, "beta1": 0.9, "beta2": 0.999,
              "lr_policy": "cosine", "save_every": 1000, "save_epoch_every": 0, "sample_every": 500,
              "log_every": 25, "num_workers": 2},
    "model": {"net": "unet", "ngf": 32, "norm": "instance"},
}


def _strip_final_tanh(net: nn.Module) -> nn.Module:
    """Replace the generator's last Tanh by Identity, so that it outputs logits."""
    last = None
    for parent in net.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Tanh):
                last = (parent, name)
    if last is not None:
        setattr(last[0], last[1], nn.Identity())
    return net


def _label_images(data: DataConfig, n: int = 60) -> list[np.ndarray]:
    """Up to ``n`` label images (HxWx3 uint8) of the training split, for fitting a k-means palette."""
    ds = build_dataset(data, data.train_split, train=False)
    out = []
    for i in np.linspace(0, len(ds) - 1, min(n, len(ds))).astype(int).tolist():
        a = ds[i]["A"]
        out.append((((a.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255)).astype(np.uint8))
    return out


@register("method", "segmenter")
class Segmenter(Method):
    """Photo -> per-pixel class logits, trained with cross-entropy on real pairs."""

    Config = SegmenterConfig
    inference_nets = ("S",)
    input_keys = ("photo",)
    target_key = "photo"

    def __init__(self, cfg: SegmenterConfig, data: DataConfig, *, training: bool = True) -> None:
        super().__init__(cfg, data, training=training)
        if cfg.palette and not cfg.palette_colors:
            samples = _label_images(data) if cfg.palette.startswith("kmeans:") else None
            # Stored in the config, so the checkpoint maps colours exactly as training did.
            cfg.palette_colors = resolve_palette(cfg.palette, data.path or None, samples)
            if cfg.palette == "facades" and not cfg.class_names:
                cfg.class_names = list(FACADES_CLASSES)
        self.decoding = self._data_decoding(cfg, data)
        n = cfg.n_classes or data.label_nc or len(cfg.palette_colors)
        if n < 2:
            raise ConfigError("the segmenter needs the number of classes: data.label_nc (label maps of ids), "
                              "model.palette (colour-coded labels: facades, kmeans:K or a palette file) or "
                              "model.n_classes")
        self.n_classes = int(n)
        self.palette = torch.tensor(cfg.palette_colors, dtype=torch.float32) if cfg.palette_colors else None
        kw: dict[str, Any] = dict(input_nc=data.output_nc, output_nc=self.n_classes, ngf=cfg.ngf, norm=cfg.norm,
                                  dropout=False)
        if cfg.net == "unet":
            kw["num_downs"] = cfg.num_downs
        elif cfg.net == "resnet":
            kw["n_blocks"] = cfg.n_blocks
        self.nets["S"] = _strip_final_tanh(create("generator", cfg.net, **kw))
        self.inference_mode = "eval"

    @staticmethod
    def _data_decoding(cfg: SegmenterConfig, data: DataConfig) -> ColourDecoding | None:
        """The data config's nearest-colour decoding (``data.palette_match=nearest``), None otherwise.

        With it, the label pixels decoded to the void id are ignored (``model.ignore_index``
        defaults to the void id); when the void id is the last class (``cityscapes``: 19 of
        label_nc 20) the network predicts only the classes before it (``model.n_classes``); class
        names and display colours come from the palette. Written into ``cfg``, so the checkpoint
        scores exactly as training did."""
        if not data.palette or data.palette_match != "nearest":
            return None
        decoding = colour_decoding(data, palette_file(data))
        assert decoding is not None and decoding.void_id is not None  # nearest always has a void id
        void = decoding.void_id
        if cfg.ignore_index < 0:
            cfg.ignore_index = void
        if not cfg.n_classes and data.label_nc > 0 and void == data.label_nc - 1:
            cfg.n_classes = void
        pal = decoding.palette
        if not cfg.class_names and pal.class_names:
            cfg.class_names = list(pal.class_names[: cfg.n_classes or data.label_nc or pal.num_classes])
        if not cfg.palette_colors:
            cfg.palette_colors = [[int(v) for v in c] for c in pal.colors.tolist()]
        return decoding

    # ----------------------------------------------------------------- data
    @staticmethod
    def photo_of(batch: dict[str, Any]) -> torch.Tensor:
        # a training item holds the photo as "image" (labels layout) or "B"; the tensor API of
        # pairgan.load(...).translate passes it as "A"
        for key in ("photo", "image", "B", "A"):
            if torch.is_tensor(batch.get(key)):
                return batch[key]
        raise KeyError("no photo in the batch (expected one of photo, image, B, A)")

    def ids_of(self, batch: dict[str, Any]) -> torch.Tensor:
        """Ground-truth ids ``[N, H, W]`` of a batch (labels layout ``label``, else the label side ``A``)."""
        if torch.is_tensor(batch.get("label")):
            return self._void_ignored(batch["label"][:, 0].long())
        return self.labels_to_ids(batch["A"])

    def _void_ignored(self, ids: torch.Tensor) -> torch.Tensor:
        """Ids with the data palette's void id replaced by ``model.ignore_index`` (when both exist)."""
        d, ignore = self.decoding, self.cfg.ignore_index
        if d is None or d.void_id is None or ignore < 0 or ignore == d.void_id:
            return ids
        return ids.masked_fill(ids == d.void_id, ignore)

    def labels_to_ids(self, a: torch.Tensor) -> torch.Tensor:
        """Label images in [-1, 1] (``[N, C, H, W]``): colour-coded or 1-channel ids stored as grey
        levels (id = 8-bit value). Colours follow the data config's rule with
        ``data.palette_match=nearest`` (nearest palette colour, far pixels and void ->
        ``model.ignore_index``), else the nearest colour of ``model.palette``."""
        if a.shape[1] == 1:
            return torch.round((a[:, 0].float() + 1) * 127.5).long()
        if self.decoding is not None and a.shape[1] == 3:
            rgb = ((a.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
            rgb = rgb.permute(0, 2, 3, 1).numpy()
            d = self.decoding
            assert d.void_id is not None
            ids = np.stack([nearest_ids(x, d.palette, d.max_distance, d.void_id)[0] for x in rgb])
            return self._void_ignored(torch.from_numpy(ids).to(a.device))
        if self.palette is None:
            raise ConfigError("colour-coded label images but no palette; set model.palette (facades, kmeans:K "
                              "or a palette JSON file) when training the segmenter")
        return colours_to_ids(a, self.palette.to(a.device))

    def colorize(self, ids: torch.Tensor) -> torch.Tensor:
        pal = self.palette.round().to(torch.uint8).numpy() if self.palette is not None else None
        return colorize(ids.cpu(), pal).to(ids.device)

    # ----------------------------------------------------------------- training
    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {"S": adam(self.nets["S"].parameters(), train)}

    def train_step(self, batch: dict[str, Any], ctx: StepContext) -> dict[str, float]:
        photo, ids = self.photo_of(batch), self.ids_of(batch)
        with ctx.autocast():
            logits = self.nets["S"](photo)
        ignore = self.cfg.ignore_index if self.cfg.ignore_index >= 0 else -100
        loss = F.cross_entropy(logits.float(), ids, ignore_index=ignore)
        ctx.optimize("S", loss)
        with torch.no_grad():
            keep = ids != ignore
            acc = (logits.argmax(1) == ids)[keep].float().mean() if keep.any() else torch.zeros(())
        return {"CE": loss.item(), "pixel_acc": float(acc)}

    # ----------------------------------------------------------------- inference
    @property
    def size_multiple(self) -> int:
        return int(getattr(self.nets["S"], "size_multiple", 1))

    @contextlib.contextmanager
    def _eval(self) -> Iterator[None]:
        net = self.nets["S"]
        was = net.training
        net.eval()
        try:
            yield
        finally:
            net.train(was)

    @torch.no_grad()
    def predict(self, photo: torch.Tensor) -> torch.Tensor:
        """Class ids ``[N, H, W]`` of photos ``[N, C, H, W]`` in [-1, 1] of any size (reflect-padded
        to the network's multiple and cropped back)."""
        x, (h, w) = pad_to_multiple(photo.float(), self.size_multiple)
        with self._eval():
            logits = self.nets["S"](x)
        return logits[..., :h, :w].argmax(1)

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> torch.Tensor:
        """The predicted labels as a colour picture in [-1, 1]."""
        return self.colorize(self.predict(self.photo_of(batch)))

    def export_module(self, batch: dict[str, Any] | None = None) -> ExportGraph:
        """S on the (padded) photo; its logits become the coloured prediction in ``finish``."""
        if batch is None:
            m = max(int(self.size_multiple), 16)
            batch = self.example_batch(2, m, m)
        return ExportGraph(self.nets["S"], {"photo": self.photo_of(batch).float()}, ("logits",),
                           finish=lambda outs, _batch: self.colorize(outs[0].argmax(1)))

    def resample_nearest(self, key: str) -> bool:
        # The input is a photo; the target (aligned files) is the colour-coded label map.
        return key == "target"

    def load_inference_input(self, path: Path, *, aligned: bool = False,
                             options: dict[str, Any] | None = None) -> tuple[dict[str, Any], torch.Tensor | None]:
        d = self.data
        arr = to_unit_float(read_image(path))
        target = None
        if aligned:  # A|B file: the photo is the side that is not the generator's input
            w = arr.shape[1] // 2
            left, right = arr[:, :w], arr[:, w : 2 * w]
            labels, arr = (left, right) if d.direction == "AtoB" else (right, left)
            target = to_tensor(match_channels(labels, 3, path, key="labels"))
        return {"photo": to_tensor(match_channels(arr, d.output_nc, path, key="data.output_nc"))}, target

    def display_input(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.photo_of(batch)

    def visuals(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        photo = self.photo_of(batch)
        out = {"photo": photo, "predicted": self.colorize(self.predict(photo))}
        try:
            out["labels"] = self.colorize(self.ids_of(batch))
        except (KeyError, ConfigError):
            pass
        return out


# --------------------------------------------------------------------------- helpers for the CLI


def build_segmenter_config(data: str | Path, overrides: list[str] | None = None, like: str | Path | None = None) -> Any:
    """The segmenter's config: :data:`SEGMENTER_DEFAULTS`, the data settings of the translation
    run ``like`` (layout, direction, label_nc, palette, channels), then ``overrides``."""
    d = copy.deepcopy(SEGMENTER_DEFAULTS)
    if like is not None:
        run = load_checkpoint_config(resolve_checkpoint(like)).data
        keep = ("layout", "direction", "label_nc", "palette", "palette_match", "palette_max_distance",
                "palette_void_id", "input_nc", "output_nc", "train_split", "val_split", "test_split", "load_size",
                "crop_size", "preprocess")
        d["data"].update({k: getattr(run, k) for k in keep})
    d["data"]["path"] = str(data)
    return config_from_dict(apply_overrides(d, list(overrides or [])))


def load_segmenter(path: str | Path, device: str | torch.device = "cpu") -> Segmenter:
    """A trained segmenter from its run or checkpoint folder (in eval mode); its folder is
    :attr:`~pairgan.methods.base.Method.checkpoint`."""
    seg = load_method(path, device, mode="eval")
    if not isinstance(seg, Segmenter):
        assert seg.run_config is not None  # load_method sets it
        raise ConfigError(f"{path}: a {seg.run_config.method} checkpoint, expected a segmenter "
                          "(train one with `pairgan segmenter train`)")
    return seg
