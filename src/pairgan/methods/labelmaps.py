"""The input side shared by the label-map methods (pix2pixHD, CRN): class-id maps, optionally with
instance maps, as the networks' conditioning input, as random batches, as pictures and as uploads.

With ``data.label_nc`` 0 these methods take images (``A``) like pix2pix, and every hook here falls
back to the image behaviour of :class:`~pairgan.methods.base.Method`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from pairgan.data.io import read_image
from pairgan.data.labels import (
    derive_instances,
    display_labels,
    label_ids,
    random_label_batch,
    read_instance_map,
)
from pairgan.errors import DataError
from pairgan.methods.base import Method
from pairgan.nets.labels import instance_edges, one_hot

__all__ = ["LabelMapMethod"]


class LabelMapMethod(Method):
    """A method conditioned on one_hot(label) [+ the instance boundary map] (or on the image ``A``
    when ``data.label_nc`` is 0). Subclasses set ``self.label_nc`` in ``__init__``."""

    label_nc: int = 0

    def condition(self, batch: dict[str, Any]) -> Tensor:
        """The networks' conditioning input: one_hot(label) [+ instance edges] (or the image A)."""
        if self.label_nc <= 0:
            return batch["A"]
        x = one_hot(batch["label"], self.label_nc)
        if self.data.instance:
            if "inst" not in batch:
                raise KeyError("data.instance is on but the batch has no 'inst' instance map")
            x = torch.cat([x, instance_edges(batch["inst"])], 1)
        return x

    def example_batch(self, batch_size: int, height: int, width: int) -> dict[str, Any]:
        """A random training batch (benchmarks, export tracing): blocky label maps (8x8 cells),
        instance ids (Cityscapes convention, a few instances per class) with ``data.instance``, and
        photos in [-1, 1]; image inputs (``label_nc`` 0): images A and B."""
        if self.label_nc <= 0:
            return super().example_batch(batch_size, height, width)
        return random_label_batch(batch_size, height, width, self.label_nc, instance=self.data.instance,
                                  output_nc=self.data.output_nc, target_key=self.target_key)

    def display_input(self, batch: dict[str, Any]) -> Tensor:
        if self.label_nc <= 0:
            return batch["A"]
        return display_labels(batch["label"], self.data)

    def request_schema(self) -> dict[str, Any]:
        schema = super().request_schema()
        if self.label_nc > 0:
            schema["kind"] = "label"
        return schema

    def item_from_upload(self, files: Mapping[str, Path], options: Mapping[str, Any]) -> dict[str, Any]:
        """A painted label map: 1-channel class ids, or colours of the model's palette
        (:meth:`class_info`); with ``data.instance`` the uploaded instance map, or one derived from
        the label map's connected regions of countable classes when none was sent."""
        if self.label_nc <= 0:
            return super().item_from_upload(files, options)
        d = self.data
        info = self.class_info()
        palette = np.asarray(info["palette"], np.uint8) if info["palette"] else None
        path = files["image"]
        arr = read_image(path, palette_indices=True)
        encoding = getattr(d, "label_encoding", "ids")
        if encoding != "ids" and (arr.ndim == 2 or arr.shape[-1] == 1):
            # painted ids are the data set's ids (e.g. Cityscapes labelIds), encoded as training encoded them;
            # colours are the model's palette (class_info), whose ids are the encoded ones already
            ids = label_ids(arr, path, d.label_nc, None, encoding=encoding)
        else:
            ids = label_ids(arr, path, d.label_nc, palette)
        item: dict[str, Any] = {"label": torch.as_tensor(ids).long().reshape(1, *ids.shape)}
        if d.instance:
            if "instance" in files:
                inst = read_instance_map(files["instance"])
                if inst.shape != ids.shape:
                    raise DataError(f"{files['instance']} is {inst.shape[1]}x{inst.shape[0]}, the label map "
                                    f"{ids.shape[1]}x{ids.shape[0]}; expected the same size")
            else:
                inst = derive_instances(ids, info["thing_ids"])
            item["inst"] = torch.as_tensor(inst).long().reshape(1, *inst.shape)
        return item
