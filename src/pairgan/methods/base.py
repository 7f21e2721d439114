"""The method seam: a method is networks + losses + what one training step does.

The :class:`~pairgan.train.trainer.Trainer` owns everything around the step (data order, devices,
precision, schedules, checkpoints, logging, signals); a method owns only its networks, its
optimisers and ``train_step``. pix2pix's D-then-G step, DRPAN's extra reviser step, pix2pixHD's
frozen-global phase and CRN's discriminator-free training are all just different ``train_step``s.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, NamedTuple, Sequence

import torch
from torch import nn

from pairgan.config import Config, DataConfig, TrainConfig
from pairgan.data.io import match_channels, read_image, to_unit_float
from pairgan.data.labels import dataset_classes
from pairgan.data.transforms import PairedTransform, to_tensor


class StepContext:
    """What a method's ``train_step`` gets from the Trainer: optimisers, precision and position.

    ``optimize(name, loss)`` is the one way a method updates parameters, so that mixed precision
    (autocast + a GradScaler for fp16), gradient accumulation and multi-process training stay
    the Trainer's concern and every method gets them unchanged.
    """

    def __init__(
        self,
        optimizers: dict[str, torch.optim.Optimizer],
        device: torch.device,
        precision: str = "fp32",
        scaler: "torch.amp.GradScaler | None" = None,
        *,
        accumulate: int = 1,
        world_size: int = 1,
        average_gradients: Callable[[list[nn.Parameter], int], None] | None = None,
    ) -> None:
        if world_size > 1 and average_gradients is None:
            raise ValueError("StepContext: world_size > 1 needs average_gradients (the Trainer passes "
                             "pairgan.train.distributed.average_gradients)")
        self.optimizers = optimizers
        self.device = device
        self.precision = precision
        self.scaler = scaler
        self.accumulate = accumulate
        self.world_size = world_size
        #: All-reduces the gradients across processes (given by the Trainer under torchrun).
        self.average_gradients = average_gradients
        self.step = 0
        self.epoch = 0
        #: Index of the current micro-batch within the step (0 .. accumulate - 1).
        self.micro = 0

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast for the forward passes when training in bf16/fp16; a no-op in fp32."""
        if self.precision == "fp32":
            yield
            return
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            yield

    @property
    def last_micro(self) -> bool:
        return self.micro == self.accumulate - 1

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` into the parameters of optimiser ``name`` and step it.

        Gradients are computed for exactly those parameters (``torch.autograd.grad``), so a
        loss that flows through another network never leaves gradients in it. With
        ``train.accumulate`` > 1 they are summed over the micro-batches and the optimiser steps
        on the last one; under torchrun they are then averaged across ranks first.
        """
        opt = self.optimizers[name]
        params = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
        scaled = loss
        if self.scaler is not None and self.scaler.is_enabled():
            scaled = self.scaler.scale(scaled)
        if self.accumulate > 1:
            scaled = scaled / self.accumulate
        grads = torch.autograd.grad(scaled, params, allow_unused=True)
        for p, g in zip(params, grads):
            if g is None:
                continue
            if self.micro == 0 or p.grad is None:
                p.grad = g
            else:
                p.grad += g
        if not self.last_micro:
            return
        if self.average_gradients is not None and self.world_size > 1:
            self.average_gradients(params, self.world_size)
        if self.scaler is not None and self.scaler.is_enabled():
            self.scaler.step(opt)
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)


class ExportGraph(NamedTuple):
    """A method's inference graph for export (ONNX, TorchScript) and exported-file backends.

    ``module`` takes tensors only (the values of ``inputs``, in order) and returns a tensor or a
    tuple of tensors named ``output_names``; ``inputs`` are its inputs for one batch: everything
    ``translate`` computes before the network (one-hot labels, edge maps, feature maps, pose heat
    maps) is computed here, eagerly, so eager PyTorch and an exported file share it.
    ``finish(outputs, batch)`` turns the graph's outputs into ``translate(batch)`` (None: the one
    output as it is). See :mod:`pairgan.export`.
    """

    module: nn.Module
    inputs: dict[str, torch.Tensor]
    output_names: tuple[str, ...] = ("output",)
    finish: Callable[[tuple[torch.Tensor, ...], dict[str, Any]], torch.Tensor] | None = None


def set_requires_grad(net: nn.Module, flag: bool) -> None:
    """Freeze or unfreeze a network (skips computing D's parameter grads during the G step)."""
    for p in net.parameters():
        p.requires_grad_(flag)


class Method:
    """Base class of a training method (pix2pix, pix2pixHD, ...).

    Subclasses set ``Config`` (the dataclass typing the ``model:`` config section), build their
    networks into ``self.nets`` in ``__init__`` and implement ``configure_optimizers``,
    ``train_step`` and ``translate``. Register them with ``@register("method", NAME)``.
    """

    #: Dataclass of this method's ``model:`` options.
    Config: ClassVar[type]
    #: The publication the method implements (authors, title, venue, link), cited by model cards.
    paper: ClassVar[str] = ""
    #: The networks needed at inference time (the only ones ``translate`` loads).
    inference_nets: ClassVar[tuple[str, ...]] = ("G",)
    #: Batch keys the inference path reads.
    input_keys: ClassVar[tuple[str, ...]] = ("A",)
    #: The data set item key holding the ground truth that outputs are scored against.
    target_key: ClassVar[str] = "B"
    #: Which weights the inference networks hold: ``raw`` (as trained) or ``ema`` (their moving
    #: average, ``train.ema``); set by :func:`pairgan.methods.build.restore_method`.
    weights_source: str = "raw"

    def __init__(self, cfg: Any, data: DataConfig, *, training: bool = True) -> None:
        self.cfg = cfg
        self.data = data
        self.nets = nn.ModuleDict()
        self.inference_mode = "eval"
        #: The whole config this method was built from (``build_method`` sets it; None when the
        #: method was constructed directly from its ``model:`` and ``data:`` sections).
        self.run_config: Config | None = None
        #: The checkpoint folder the inference weights came from (``load_method`` sets it): the
        #: method finds its run's extra files (pix2pixHD's feature clusters) next to it.
        self.checkpoint: Path | None = None
        self._class_info: dict[str, Any] | None = None

    # ----------------------------------------------------------------- training
    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, batch: dict[str, Any], ctx: StepContext) -> dict[str, float]:
        """One optimisation step on ``batch``; returns the scalar losses to log."""
        raise NotImplementedError

    def ema_net_names(self) -> tuple[str, ...]:
        """The networks the Trainer keeps a moving average of with ``train.ema``: the generator
        side of inference, by default every inference network (pix2pixHD's G and E; DRPAN's
        base's). A method whose inference networks include one that must not be averaged
        overrides this."""
        return tuple(self.inference_nets)

    # ----------------------------------------------------------------- inference
    @property
    def size_multiple(self) -> int:
        """Inputs' height and width must be multiples of this (inference pads to it)."""
        return 1

    def set_inference_mode(self, mode: str) -> None:
        """``eval``: eval() everywhere. Methods may offer others (pix2pix's ``paper``)."""
        if mode != "eval":
            raise ValueError(f"{type(self).__name__} supports inference mode 'eval' only, got {mode!r}")
        self.inference_mode = mode
        self.nets.eval()

    @property
    def per_image_inference(self) -> bool:
        """True when outputs depend on batch statistics (pix2pix's ``paper`` mode): the
        Translator then runs images one at a time so that batching never changes a result."""
        return False

    def translate(self, batch: dict[str, Any]) -> torch.Tensor:
        """Generated images in [-1, 1], NCHW, for the inputs in ``batch``.

        ``batch`` holds NCHW tensors (already padded to ``size_multiple``) and may carry
        non-tensor inference options of the method (e.g. a feature mode) under other keys.
        """
        raise NotImplementedError

    def load_inference_input(
        self, path: Path, *, aligned: bool = False, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], torch.Tensor | None]:
        """Read one input file into an (unbatched, CHW) batch item for ``translate``, plus the
        target when the file carries it (``aligned`` A|B files). Image-to-image methods read
        an image; label-map or pose methods override this."""
        d = self.data
        arr = to_unit_float(read_image(path))
        target = None
        if aligned:
            w = arr.shape[1] // 2
            left, right = arr[:, :w], arr[:, w : 2 * w]
            arr, b = (left, right) if d.direction == "AtoB" else (right, left)
            target = to_tensor(match_channels(b, d.output_nc, path, key="data.output_nc"))
        item = {"A": to_tensor(match_channels(arr, d.input_nc, path, key="data.input_nc"))}
        return item, target

    #: True when :meth:`load_inference_input` itself reads inputs through the evaluation geometry
    #: (GGB places the target pose's keypoints in that frame): :meth:`to_training_scale` then
    #: leaves its items as they are.
    reads_at_training_scale: ClassVar[bool] = False

    def inference_geometry(self, size_multiple: int | None = None) -> PairedTransform:
        """The test-time geometry of this model's data: ``data.preprocess``/``load_size``/``crop_size``
        without random crop or flip, sides rounded to ``size_multiple`` (default: the method's), as
        ``evaluate`` reads a split (:class:`~pairgan.data.transforms.PairedTransform`, ``train=False``)."""
        d = self.data
        m = int(self.size_multiple if size_multiple is None else size_multiple)
        return PairedTransform(d.preprocess, d.load_size, d.crop_size, d.flip, train=False, size_multiple=max(1, m))

    def resample_nearest(self, key: str) -> bool:
        """Whether the float tensor ``key`` of an inference item (``"target"``: the target) is a
        colour-coded label map, resampled with nearest neighbour as training resamples it (integer
        tensors, label and instance ids, always are)."""
        d = self.data
        if key == "A":
            return d.input_kind == "label"
        return key in ("target", self.target_key) and d.output_kind == "label"

    def to_training_scale(self, item: dict[str, Any], target: torch.Tensor | None = None, *,
                          size_multiple: int | None = None) -> tuple[dict[str, Any], torch.Tensor | None]:
        """An inference item (and its target) from :meth:`load_inference_input` or
        :meth:`item_from_upload`, resized to the size the model was trained at: every image tensor
        through :meth:`inference_geometry` with the kernel training used (nearest for ids and colour
        labels, bicubic for photos). THE one place translate, the Python API and the server fit
        inputs to the training scale."""
        if self.reads_at_training_scale:
            return item, target
        geometry = self.inference_geometry(size_multiple)
        fitted = {k: geometry.fit_tensor(v, self.resample_nearest(k)) if torch.is_tensor(v) and v.dim() == 3 else v
                  for k, v in item.items()}
        if target is not None:
            target = geometry.fit_tensor(target, self.resample_nearest("target"))
        return fitted, target

    def example_batch(self, batch_size: int, height: int, width: int) -> dict[str, Any]:
        """A random training batch of the right kinds and shapes (benchmarks, export tracing)."""
        d = self.data
        return {
            "A": torch.rand(batch_size, d.input_nc, height, width) * 2 - 1,
            "B": torch.rand(batch_size, d.output_nc, height, width) * 2 - 1,
        }

    def export_module(self, batch: dict[str, Any] | None = None) -> ExportGraph:
        """The inference graph with eval-mode semantics (the caller puts ``self.nets`` in eval)
        and its inputs for ``batch`` (a padded inference batch; None: an example batch of 2).
        Image-to-image methods: G on ``"A"``. Methods with other inputs or several outputs
        override this one hook; export, the onnxruntime backend and the server follow."""
        if batch is None:
            m = max(int(self.size_multiple), 16)
            batch = self.example_batch(2, m, m)
        return ExportGraph(self.nets["G"], {"A": batch["A"]})

    def display_input(self, batch: dict[str, Any]) -> torch.Tensor:
        """The input as a picture (NCHW in [-1, 1]); label-map methods colourise their ids."""
        return batch["A"]

    def visuals(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Named image columns (NCHW in [-1, 1]) for sample grids: input, output, target."""
        out = self.translate(batch)
        return {"input": self.display_input(batch), "output": out, "target": batch[self.target_key]}

    def to(self, device: torch.device) -> "Method":
        self.nets.to(device)
        return self

    # ----------------------------------------------------------------- outputs, state, serving
    @property
    def num_variants(self) -> int:
        """Outputs per input (CRN's k diverse images); ``translate`` returns all of them for
        ``batch["variant"] = "all"`` and :meth:`split_outputs` names them."""
        return 1

    def split_outputs(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        """``translate``'s output with every variant -> named images ``{column: NCHW}`` (one file
        and one gallery column each). One output: ``{"output": out}``."""
        return {"output": out}

    def class_info(self) -> dict[str, Any]:
        """The model's classes: ``{"palette": [[r, g, b], ...] or None, "classes": names or None,
        "thing_ids": countable class ids or None}`` — what an exported file records and the
        server offers its painters. Read from the data set (:func:`pairgan.data.labels.dataset_classes`)
        unless :meth:`load_extra_state` gave it."""
        if self._class_info is None:
            self._class_info = dataset_classes(self.data)
        return self._class_info

    def extra_state(self) -> dict[str, Any]:
        """What inference needs beyond the networks' weights, as plain JSON values: written into an
        exported file's metadata and given back to :meth:`load_extra_state` when the file is run.
        By default the classes (:meth:`class_info`); pix2pixHD adds its feature clusters."""
        return dict(self.class_info())

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Take back what :meth:`extra_state` returned (read from an exported file's metadata)."""
        self._class_info = {k: state.get(k) for k in ("palette", "classes", "thing_ids")}

    def request_schema(self) -> dict[str, Any]:
        """What a served model of this method takes (``pairgan serve``): ``{"kind": "image" |
        "label" | "pose", "options": {...}}``. ``kind`` says how uploads are read (an image; a
        label map, optionally with an instance map; a person image and a target pose); ``options``
        lists the request options the method offers beyond the seed, as the server describes them
        in ``GET /v1/models``: ``variant`` (``{"k", "values"}``), ``features`` (feature modes),
        ``edits`` (bool), ``clusters`` (centres per class), ``pose`` (keypoints, limbs, default)."""
        return {"kind": "image", "options": {}}

    def item_from_upload(self, files: Mapping[str, Path], options: Mapping[str, Any]) -> dict[str, Any]:
        """An unbatched inference item from a request's uploads, saved to ``files`` (``"image"``;
        ``"instance"`` for label maps with instance maps), and its parsed ``options`` (e.g.
        ``pose_keypoints``). Errors are :class:`~pairgan.errors.DataError` naming the file.
        Image methods read the image as :meth:`load_inference_input` does."""
        item, _ = self.load_inference_input(files["image"], aligned=False, options={})
        return item

    def apply_edits(self, batch: dict[str, Any], edits: Sequence[tuple[str, Any, int]]) -> dict[str, Any]:
        """Restyle objects of ``batch`` (pix2pixHD's instance features): ``edits`` are
        ``("id", instance_id, K)`` or ``("at", (y, x), K)`` (the instance under that pixel), each
        setting the instance to centre ``K`` of its class. Methods without features refuse."""
        raise ValueError(f"edits: {type(self).__name__} has no instance features to edit")
