"""CRN's ``--dynamic-size`` export: the module sizes are integer arithmetic on the input's (symbolic)
size, so one exported file is right at every multiple of the size multiple (the sizes and the export
hook itself: tests/unit/test_crn_export_hook.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnxruntime as ort  # noqa: E402

from pairgan.config import build_config  # noqa: E402
from pairgan.export import ExportedTranslator, export_method, read_metadata  # noqa: E402
from pairgan.infer import Translator  # noqa: E402
from pairgan.methods.build import build_method  # noqa: E402
from tests.helpers import tiny_overrides  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_crn(extra: list[str]):
    # the crn family's tiny sizes; every test here sets its own widths
    cfg = build_config("crn-demo", tiny_overrides("crn", loop=False) + extra)
    torch.manual_seed(0)
    return cfg, build_method(cfg, training=False)


@pytest.mark.slow
@pytest.mark.parametrize("extra, sizes", [
    # 3 modules (size multiple 4), k = 3, 9 classes: the crn-demo shape of tests/integration/test_export_methods.py
    (["model.widths=[8,8,8]"], [(1, 24, 40), (3, 48, 20)]),
    # 5 modules (size multiple 16) with instance edges; one size of a single multiple (1x1 first module)
    (["model.widths=[6,6,6,6,5]", "model.k=2", "data.instance=true"], [(2, 16, 16), (1, 80, 48)]),
])
def test_crn_dynamic_size_onnx_agrees_with_eager_at_other_sizes(tmp_path: Path, extra, sizes):
    cfg, m = tiny_crn(extra)
    out = tmp_path / "crn.onnx"
    res = export_method(m, cfg, out, dynamic_size=True)
    print(res.summary())
    assert res.max_abs_diff <= 1e-4 and len(res.checks) == 2  # the sample and another batch and size
    meta = read_metadata(out)
    mult = m.size_multiple
    assert meta["dynamic_size"] and meta["size_multiple"] == mult and meta["inputs"]["label"][2:] == ["height", "width"]
    G = m.generator.eval()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == [f"v{u}" for u in range(G.k)]
    g = torch.Generator().manual_seed(0)
    for n, h, w in sizes:
        assert h % mult == 0 and w % mult == 0 and (h, w) != tuple(res.size)
        batch = {"label": torch.randint(0, 9, (n, 1, h, w), generator=g)}
        if cfg.data.instance:
            batch["inst"] = batch["label"] * 1000 + torch.randint(0, 2, (n, 1, h, w), generator=g)
        cond = m.condition(batch).float()
        with torch.no_grad():
            want = G.split(G(cond))  # [n, k, 3, h, w]
        feeds = {"label": cond[:, :9].numpy()} | ({"edges": cond[:, 9:].numpy()} if cfg.data.instance else {})
        got = session.run(names, feeds)
        assert [o.shape for o in got] == [(n, 3, h, w)] * G.k
        diff = max(float((torch.from_numpy(o) - want[:, u]).abs().max()) for u, o in enumerate(got))
        print(f"onnxruntime vs eager at {n}x{h}x{w}: max abs diff {diff:.3g}")
        assert diff <= 1e-4, (n, h, w, diff)


def test_crn_dynamic_size_backend_pads_other_sizes(tmp_path: Path):
    """Through the onnxruntime backend at a size that is no multiple: padded, translated, cropped."""
    cfg, m = tiny_crn(["model.widths=[8,8,8]"])
    out = tmp_path / "crn.onnx"
    export_method(m, cfg, out, dynamic_size=True)
    eager = Translator(cfg, m, torch.device("cpu"), None)
    ort = ExportedTranslator.from_file(out)
    labels = {"label": torch.randint(0, 9, (2, 1, 30, 45), generator=torch.Generator().manual_seed(1))}
    for variant in ("all", 1):
        a, b = eager.translate_batch({**labels, "variant": variant}), ort.translate_batch({**labels, "variant": variant})
        assert a.shape == b.shape == (2, 9 if variant == "all" else 3, 30, 45)
        assert float((a - b).abs().max()) <= 1e-4
