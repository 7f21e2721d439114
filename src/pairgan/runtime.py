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


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return dev


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
