"""pairgan: paired image-to-image translation (pix2pix, pix2pixHD, CRN, DRPAN, GGB)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(checkpoint, device: str = "auto", mode: str | None = None, weights: str = "auto", backend: str = "auto"):
    """Load a model — a run folder, a checkpoint folder, a packaged model (``pairgan package``) or a Hub
    model ``"hf://OWNER/NAME[@REVISION]"`` (:mod:`pairgan.hub`) — as a :class:`pairgan.infer.Translator`
    (``weights``: ``auto`` takes the generator's moving average when the run kept one (``train.ema``),
    ``ema`` insists on it, ``raw`` takes the trained weights). ``backend``: ``auto`` runs a compiled
    graph (traced, frozen, cached beside the checkpoint) where it is exact for the mode, else eager
    PyTorch; ``torch`` is always eager (see :mod:`pairgan.compiled`).

    ``pairgan.load("runs/demo").translate(image)`` takes a PIL image, a NumPy array (HWC) or a
    tensor (CHW/NCHW in [-1, 1]) and returns the same kind of object.
    """
    # Deferred: `import pairgan` (and so every `pairgan.x` import and the pairgan command) stays
    # free of torch and the methods until a model is loaded.
    from pairgan.infer import Translator

    return Translator.from_checkpoint(checkpoint, device=device, mode=mode, weights=weights, backend=backend)
