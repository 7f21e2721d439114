"""Networks and their building blocks; importing this package registers them."""

from pairgan.nets import patchgan, resnet, unet  # noqa: F401
from pairgan.nets import pix2pixhd  # noqa: F401
from pairgan.nets import ggb  # noqa: F401
from pairgan.nets import drpan  # noqa: F401
from pairgan.nets import crn  # noqa: F401
from pairgan.nets import feature_d  # noqa: F401
