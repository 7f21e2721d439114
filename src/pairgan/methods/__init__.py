"""Training methods, one file per published system; importing this package registers them."""

from pairgan.methods import pix2pix  # noqa: F401
from pairgan.methods import pix2pixhd  # noqa: F401
from pairgan.methods import ggb  # noqa: F401
from pairgan.methods import drpan  # noqa: F401
from pairgan.methods import crn  # noqa: F401
from pairgan.methods import segmenter  # noqa: F401
from pairgan.methods.base import Method, StepContext

__all__ = ["Method", "StepContext"]
