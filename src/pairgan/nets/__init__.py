"""Networks and their building blocks; importing this package registers them."""

from pairgan.nets import patchgan, resnet, unet  # noqa: F401
