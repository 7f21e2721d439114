"""The README picture of pix2pixHD's multimodal editing: one label map, one car restyled through
each of its class's feature clusters while every other object keeps its features.

    # a pix2pixhd-demo run with instance features and its clusters (benchmarks/pix2pixhd_scenes.py
    # makes both), then:
    .venv/bin/python benchmarks/pix2pixhd_editing.py /tmp/pairgan-hd-scenes/runs/hd \\
        --data /tmp/pairgan-hd-scenes/scenes --out docs/images/pix2pixhd_editing.png

Picks the test label map whose largest car instance is the largest of the split (or ``--image``
and ``--instance``), then draws:

* row 1: the label map (colourised with the scenes' palette, the edited car outlined in white) |
  the real photo | ``pairgan translate RUN LABEL --features encode:PHOTO`` (every instance in the
  style E reads from the real photo) | ``--features random`` (a random cluster centre per
  instance) | ``--features cluster:0`` (centre 0 of every class);
* rows 2-3: ``pairgan.methods.pix2pixhd_features.edit(model.method, label, inst, {car: k}, base_features="encode:PHOTO")``
  for every cluster k of the car class: the encoded image with only that car's feature vector
  replaced by cluster centre k.

The whole-image columns go through the ``pairgan translate`` command; the edits through the
Python API. Also prints, for each edit, the mean absolute change (0..1 units) inside the edited
car, outside it, and more than 8 px away from it (only the car's feature vector changes, but G is
convolutional with instance norm, so the rest of the image may move a little), and checks that
``edit`` with no edits reproduces ``translate --features encode:PHOTO``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
CAR = 6  # the scenes' class id of "car" (classes.json)


def largest_car(label_dir: Path) -> tuple[Path, int, int]:
    """(label file, instance id, pixels) of the largest car instance in a split."""
    from pairgan.data.labels import find_partner, read_instance_map

    best = (None, 0, -1)
    for f in sorted(label_dir.glob("*.png")):
        inst = read_instance_map(find_partner(f, "inst"))
        ids, counts = np.unique(inst[inst // 1000 == CAR], return_counts=True)
        if len(ids) and counts.max() > best[2]:
            best = (f, int(ids[counts.argmax()]), int(counts.max()))
    if best[0] is None:
        raise SystemExit(f"{label_dir}: no car instance")
    return best  # type: ignore[return-value]


def u8(t: torch.Tensor) -> np.ndarray:
    """[1, 3, H, W] (or [3, H, W]) in [-1, 1] -> H x W x 3 uint8."""
    t = t.detach().cpu().float()
    if t.dim() == 4:
        t = t[0]
    return ((t.clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).byte().permute(1, 2, 0).numpy()


def outline(mask: np.ndarray) -> np.ndarray:
    """The 1-pixel inner border of a boolean mask."""
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner


def translate_cli(run: Path, label: Path, features: str, out: Path) -> np.ndarray:
    cmd = [str(Path(sys.executable).parent / "pairgan"), "translate", str(run), str(label), "--out", str(out),
           "--features", features, "--seed", "0", "--no-gallery"]
    print("$ pairgan " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    return np.asarray(Image.open(out / f"{label.stem}.png").convert("RGB"))


def sheet(panels: list[tuple[np.ndarray, str]], cols: int, scale: int, title: str) -> Image.Image:
    h, w = panels[0][0].shape[:2]
    pw, ph, cap, pad, top = w * scale, h * scale, 22, 6, 30
    rows = (len(panels) + cols - 1) // cols
    img = Image.new("RGB", (cols * pw + (cols + 1) * pad, top + rows * (ph + cap + pad) + pad), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=14)
    draw.text((pad, 8), title, fill="black", font=ImageFont.load_default(size=15))
    for i, (arr, text) in enumerate(panels):
        r, c = divmod(i, cols)
        x, y = pad + c * (pw + pad), top + r * (ph + cap + pad)
        img.paste(Image.fromarray(arr).resize((pw, ph), Image.NEAREST), (x, y))
        draw.text((x + 2, y + ph + 3), text, fill="black", font=font)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="A pix2pixhd run trained with model.use_features, clustered.")
    ap.add_argument("--data", type=Path, required=True, help="The scenes root (SPLIT_label/inst/img).")
    ap.add_argument("--split", default="test")
    ap.add_argument("--image", type=Path, default=None, help="A label file (default: the split's largest car).")
    ap.add_argument("--instance", type=int, default=None, help="The car instance id to edit (default: largest).")
    ap.add_argument("--scale", type=int, default=2, help="Pixel magnification of each panel.")
    ap.add_argument("--cols", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "pix2pixhd_editing.png")
    args = ap.parse_args()

    import pairgan
    from pairgan.data.labels import colorize, find_partner, load_palette, read_instance_map, read_label_map
    from pairgan.methods.pix2pixhd_features import attach_clusters, edit

    if args.image is None:
        f, iid, area = largest_car(args.data / f"{args.split}_label")
    else:
        f = args.image
        inst0 = read_instance_map(find_partner(f, "inst"))
        ids, counts = np.unique(inst0[inst0 // 1000 == CAR], return_counts=True)
        iid = args.instance if args.instance is not None else int(ids[counts.argmax()])
        area = int((inst0 == iid).sum())
    photo = find_partner(f, "img")
    print(f"image {f.name}, car instance {iid} ({area} px), photo {photo}")

    model = pairgan.load(args.run, device="cpu")
    clusters = attach_clusters(model.method)  # the run's features_clusters.npz
    n_car = int(clusters[CAR].shape[0])
    label = read_label_map(f, model.cfg.data.label_nc)
    inst = read_instance_map(find_partner(f, "inst"))
    mask = inst == iid
    # pixels more than 8 px from the car: G's changes there are the "rest of the image"
    near = torch.nn.functional.max_pool2d(torch.from_numpy(mask)[None, None].float(), 17, 1, 8)[0, 0].bool().numpy()

    palette = load_palette(args.data / "classes.json")
    lab = u8(colorize(torch.from_numpy(label), palette))
    lab[outline(mask)] = 255

    with tempfile.TemporaryDirectory() as tmp:
        enc = translate_cli(args.run, f, f"encode:{photo}", Path(tmp) / "encode")
        rnd = translate_cli(args.run, f, "random", Path(tmp) / "random")
        c0 = translate_cli(args.run, f, "cluster:0", Path(tmp) / "cluster0")

    base = f"encode:{photo}"
    same = u8(edit(model.method, label, inst, {}, base_features=base))
    diff_check = int(np.abs(same.astype(int) - enc.astype(int)).max())
    print(f"edit(..., {{}}, base_features=encode:PHOTO) vs translate --features encode:PHOTO: max |diff| "
          f"{diff_check} (of 255)")
    stats = []
    edits = []
    for k in range(n_car):
        out = u8(edit(model.method, label, inst, {iid: k}, base_features=base))
        d = np.abs(out.astype(np.float64) - same.astype(np.float64)).mean(-1) / 255
        stats.append({"cluster": k, "inside": round(float(d[mask].mean()), 4), "outside": round(float(d[~mask].mean()), 4),
                      "outside_max": round(float(d[~mask].max()), 4),
                      "beyond_8px": round(float(d[~near].mean()), 4), "beyond_8px_max": round(float(d[~near].max()), 4),
                      "car_mean_rgb": [round(float(x)) for x in out[mask].mean(0)]})
        edits.append((out, f"car -> cluster {k}"))
        print(json.dumps(stats[-1]))

    photo_arr = np.asarray(Image.open(photo).convert("RGB"))
    panels = [(lab, "label map (car outlined)"), (photo_arr, "real photo"), (enc, "encode:photo"),
              (rnd, "features random"), (c0, "cluster:0 (all classes)")] + edits
    cfg = json.loads((args.run / "train_summary.json").read_text()) if (args.run / "train_summary.json").is_file() else {}
    title = (f"pix2pixhd-demo + instance features, {cfg.get('steps', '?')} steps: {args.split} {f.name}, "
             f"car {iid} restyled through its {n_car} clusters (rest: encoded from the photo)")
    img = sheet(panels, args.cols, args.scale, title)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out, optimize=True)
    print(f"wrote {args.out} ({img.size[0]}x{img.size[1]})")
    print(json.dumps({"image": f.name, "instance": iid, "area": area, "edit_vs_translate_maxdiff": diff_check,
                      "edits": stats}))


if __name__ == "__main__":
    main()
