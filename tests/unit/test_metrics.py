import pytest
import torch

from pairgan.metrics import METRICS, compute_metrics, l1, psnr, register_metric, ssim


def test_identical_images():
    x = torch.rand(2, 3, 32, 32)
    assert torch.all(l1(x, x) == 0)
    assert torch.all(torch.isinf(psnr(x, x)))
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)


def test_psnr_known_value():
    a = torch.zeros(1, 1, 8, 8)
    b = torch.full((1, 1, 8, 8), 0.1)  # mse 0.01 -> 20 dB
    assert psnr(a, b).item() == pytest.approx(20.0, abs=1e-4)
    assert l1(a, b).item() == pytest.approx(0.1)


def test_ssim_orders_degradation_and_is_symmetric():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 48, 48)
    small = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    large = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert ssim(x, small) > ssim(x, large)
    assert ssim(x, small).item() == pytest.approx(ssim(small, x).item(), abs=1e-6)


def test_ssim_matches_torchmetrics_when_available():
    tm = pytest.importorskip("torchmetrics.functional.image", reason="torchmetrics not installed")
    torch.manual_seed(1)
    x = torch.rand(2, 3, 40, 40)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    # torchmetrics averages over a reflect-padded full map; the standard (Wang et al.'s code,
    # scikit-image) and ours average over the valid interior: compare on that interior.
    _, full = tm.structural_similarity_index_measure(y, x, data_range=1.0, reduction="none",
                                                     return_full_image=True)
    ref = full[..., 5:-5, 5:-5].flatten(1).mean(1)
    assert torch.allclose(ssim(y, x), ref.float(), atol=1e-5)


def test_compute_metrics_maps_from_minus_one_one_and_registry():
    a = torch.full((3, 8, 8), -1.0)  # black
    b = torch.full((3, 8, 8), 1.0)  # white
    m = compute_metrics([a], [b], ("l1", "psnr"))
    assert m["l1"] == pytest.approx(1.0) and m["psnr"] == pytest.approx(0.0) and m["count"] == 1

    @register_metric("max_abs")
    def max_abs(f, r):
        return (f - r).abs().flatten(1).amax(1)

    assert "max_abs" in METRICS
    assert compute_metrics([a], [b], ("max_abs",))["max_abs"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        compute_metrics([a], [b[:, :4]], ("l1",))
