"""Image-quality metrics in a registry: a new metric is one decorated function."""

from pairgan.metrics.basic import METRICS, compute_metrics, l1, psnr, register_metric, ssim

__all__ = ["METRICS", "compute_metrics", "l1", "psnr", "register_metric", "ssim"]
