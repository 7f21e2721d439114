"""FID, KID and the Inception Score from Inception features, and the cache of real-set features.

* **FID** (Heusel et al. 2017): ``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` of the
  Gaussians fitted to the two feature sets (unbiased covariances, float64). The matrix square
  root's trace is computed as ``sum sqrt(eig(sqrt(S_r) S_g sqrt(S_r)))`` on symmetric matrices
  (``eigh``): real, stable, no complex parts to discard. Biased for small sets (it grows as the
  number of images shrinks): compare FIDs only at the same number of images.
* **KID** (Binkowski et al. 2018): unbiased MMD^2 with the kernel ``k(x, y) = (x.y / d + 1)^3``,
  averaged over ``subsets`` random subsets of ``subset_size`` images of each set (the defaults of
  torch-fidelity/torchmetrics: 100 subsets of 1000, capped at the set sizes; a seeded generator).
  Unbiased: it can be negative; the mean over subsets and their standard deviation are reported.
* **IS** (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))`` over ``splits`` splits (10),
  mean and standard deviation, from the 1008-way logits without bias (the original code's
  convention). Needs an Inception file with the classifier.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from pairgan.fsutil import atomic_write, atomic_write_text

__all__ = [
    "cache_dir",
    "feature_stats",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kid",
    "load_cached_features",
    "mmd2_unbiased",
    "save_cached_features",
]


def feature_stats(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (float64) of ``[N, D]`` features."""
    f = torch.as_tensor(feats).double()
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"features of shape {tuple(f.shape)}: FID needs at least 2 images")
    mu = f.mean(0)
    c = f - mu
    return mu, c.t() @ c / (f.shape[0] - 1)


def _clean_eigenvalues(w: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of a PSD matrix with the round-off ones (|w| below n * eps * max w) set to 0:
    their square roots would otherwise add up to a visible error (a covariance of N < D images
    has D - N + 1 of them)."""
    tol = w.abs().max().clamp_min(1e-300) * w.numel() * torch.finfo(w.dtype).eps
    return torch.where(w > tol, w, torch.zeros_like(w))


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((m + m.t()) / 2)
    return (v * _clean_eigenvalues(w).sqrt()) @ v.t()


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64)."""
    mu1, mu2 = torch.as_tensor(mu1).double(), torch.as_tensor(mu2).double()
    s1, s2 = torch.as_tensor(sigma1).double(), torch.as_tensor(sigma2).double()
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"statistics of different shapes: {tuple(mu1.shape)} vs {tuple(mu2.shape)}")
    r1 = _sqrt_psd(s1)
    inner = r1 @ s2 @ r1
    eig = _clean_eigenvalues(torch.linalg.eigvalsh((inner + inner.t()) / 2))
    tr_covmean = eig.sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean)


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    mu_r, s_r = feature_stats(real)
    mu_f, s_f = feature_stats(fake)
    return frechet_distance(mu_r, s_r, mu_f, s_f)


def _poly_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = x.shape[1]
    return (x @ y.t() / d + 1.0) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 (a U-statistic: diagonal terms excluded) with the cubic polynomial kernel."""
    x, y = torch.as_tensor(x).double(), torch.as_tensor(y).double()
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError("KID needs at least 2 images in each set")
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> dict[str, Any]:
    """KID: mean and std of :func:`mmd2_unbiased` over random subsets (drawn without replacement
    within a subset, by a generator seeded with ``seed``)."""
    real, fake = torch.as_tensor(real).double(), torch.as_tensor(fake).double()
    size = min(subset_size, real.shape[0], fake.shape[0])
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        r = real[torch.randperm(real.shape[0], generator=g)[:size]]
        f = fake[torch.randperm(fake.shape[0], generator=g)[:size]]
        vals.append(mmd2_unbiased(r, f))
    v = torch.tensor(vals, dtype=torch.float64)
    return {"mean": float(v.mean()), "std": float(v.std(unbiased=False)), "subsets": subsets, "subset_size": size}


def inception_score(logits: torch.Tensor, splits: int = 10) -> dict[str, Any]:
    """IS mean and std over ``splits`` consecutive splits of the images (at least 1 image each)."""
    logits = torch.as_tensor(logits).double()
    n = logits.shape[0]
    splits = max(1, min(splits, n))
    logp = torch.log_softmax(logits, dim=1)
    p = logp.exp()
    scores = []
    for idx in torch.tensor_split(torch.arange(n), splits):
        pk, lpk = p[idx], logp[idx]
        log_py = torch.log(pk.mean(0).clamp_min(1e-300))
        kl = (pk * (lpk - log_py)).sum(1).mean()
        scores.append(float(kl.exp()))
    s = torch.tensor(scores, dtype=torch.float64)
    return {"mean": float(s.mean()), "std": float(s.std(unbiased=False)), "splits": splits}


# --------------------------------------------------------------------------- the real-set cache


def cache_dir() -> Path:
    """``$PAIRGAN_CACHE/fid-stats`` (default ``~/.cache/pairgan/fid-stats``)."""
    return Path(os.environ.get("PAIRGAN_CACHE") or "~/.cache/pairgan").expanduser() / "fid-stats"


def files_key(files: Sequence[str | os.PathLike], extra: dict[str, Any]) -> str:
    """A key for a set of real images: sha256 over the protocol ``extra`` (protocol version, network,
    how the images are read) and each file's resolved path, size and modification time."""
    h = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for f in files:
        p = Path(f)
        try:
            st = p.stat()
            h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:32]


def load_cached_features(key: str, folder: Path | None = None) -> torch.Tensor | None:
    path = (folder or cache_dir()) / f"{key}.npy"
    if not path.is_file():
        return None
    try:
        return torch.from_numpy(np.load(path, allow_pickle=False)).double()
    except (OSError, ValueError):
        return None  # a damaged cache entry is recomputed


def save_cached_features(key: str, feats: torch.Tensor, meta: dict[str, Any], folder: Path | None = None) -> Path:
    """Write ``KEY.npy`` (float32 features) and ``KEY.json`` (what they are) atomically."""
    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.npy"
    atomic_write(path, lambda tmp: np.save(tmp, feats.float().numpy(), allow_pickle=False))
    atomic_write_text(folder / f"{key}.json", json.dumps(meta, indent=2, default=str) + "\n")
    return path
