"""Training methods, one file per published system; importing this package registers them."""

from pairgan.methods import pix2pix  # noqa: F401
from pairgan.methods.base import Method, StepContext

__all__ = ["Method", "StepContext"]
