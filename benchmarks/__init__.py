"""Benchmark scripts (run each with `python benchmarks/NAME.py`); a package so that tests import them:
``from benchmarks import serve_load, reference_pix2pix``."""
