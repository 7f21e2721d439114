"""Process-level settings: the device, seeds and determinism (:func:`resolve_device`,
:func:`seed_everything`, :func:`set_determinism`), and allocator tuning that makes PyTorch faster
on a host without changing any result.

:func:`tune_host_allocator` is the one that matters on CPU. A pix2pix step allocates and frees
activations of several MiB to tens of MiB. glibc's malloc hands large freed blocks back to the
kernel (trimming the heap top, or unmapping blocks it served with mmap), so the next step's
allocation of the same size page-faults again and the kernel zero-fills every page: profiling a
batch-8 U-Net forward showed copies and element-wise ops at a few GB/s on a machine that copies at
30 GB/s. Keeping freed memory in the process removes that. The price is that resident memory
stays at its high-water mark, which a training process reaches every step anyway.
"""

from __future__ import annotations

import ctypes
import os
import random
import sys

import numpy as np
import torch

from pairgan.errors import ConfigError

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_tuned: bool | None = None


def tune_host_allocator() -> bool:
    """Make glibc keep freed memory for reuse (heap trim threshold 1 GiB; blocks up to 32 MiB,
    glibc's maximum, served from the heap instead of fresh mappings).

    Returns True when the settings were applied: on Linux with glibc, unless the environment
    sets ``PAIRGAN_MALLOC_TUNING=0``. Safe to call more than once; affects the whole process
    (and processes it forks, such as data loader workers).
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if os.environ.get("PAIRGAN_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    return _tuned


#: What ``--device`` / ``train.device`` accept, for error messages.
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps"
#: Device types :func:`resolve_device` accepts: the user's choices, and ``meta`` (networks with shapes
#: but no storage), which pairgan itself asks for when it only needs a network's structure.
_DEVICE_TYPES = ("cpu", "cuda", "mps", "meta")


def check_device_name(name: str) -> torch.device | None:
    """The device ``name`` spells (None for ``auto``), without asking whether this machine has it.

    Raises :class:`ConfigError` naming the value and what is accepted, so a typo fails before any
    work starts (and a config with a typo is refused even on a machine that would not use it)."""
    if name == "auto":
        return None
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in _DEVICE_TYPES or (dev.type != "cuda" and dev.index not in (None, 0)):
        raise ConfigError(f"device {name!r}: expected one of {DEVICE_CHOICES}")
    return dev


def resolve_device(name: str = "auto") -> torch.device:
    """The device to run on: ``auto`` picks cuda, then mps, then cpu; any other name must be
    available here. Raises :class:`ConfigError` (one line naming the value and what is expected)
    for a name that is not a device or a device this machine lacks."""
    dev = check_device_name(name)
    if dev is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available on this machine; "
                              f"expected one of {DEVICE_CHOICES} (auto or cpu here)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                              f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps" and not _mps_available():
        raise ConfigError(f"device {name!r}: MPS is not available on this machine; "
                          f"expected one of {DEVICE_CHOICES} (auto or cpu here)")
    return dev


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_determinism(deterministic: bool, tf32: bool = False) -> None:
    """Deterministic kernels (bitwise-repeatable runs) or the fastest ones (cuDNN autotuning);
    ``tf32`` lets CUDA matmuls and convolutions use TensorFloat-32 (Ampere and newer: faster,
    10-bit mantissa inputs), never together with ``deterministic``."""
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32) and not deterministic
    torch.backends.cudnn.allow_tf32 = bool(tf32) and not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True
