"""pix2pixHD instance features: k-means clusters per class, and multimodal editing.

A pix2pixHD model trained with ``model.use_features`` has an encoder E that gives every instance
(each car, each tree, the road...) one ``feat_num``-vector; G draws the instance in the style
that vector encodes. After training:

* :func:`cluster_features` (``pairgan features cluster RUN``) encodes the training images, keeps
  the instances larger than ``min_fraction`` of their image (1/64, as the reference) and runs
  k-means (K = 10, k-means++ start, fixed seed) on each class's vectors; the centres are written
  to ``features_clusters.npz`` (+ a readable ``features_clusters.json``) in the run folder (not
  safetensors: a run folder holding ``config.yaml`` and a ``*.safetensors`` would look like a
  checkpoint folder);
* ``pairgan translate RUN labels/ --features cluster:3`` (or ``random``, ``encode:PHOTO``) then
  picks the style of every instance, and :func:`edit` restyles one instance at a time, say one
  car, leaving every other instance's features, and so the rest of the image, alone;
  :func:`apply_cluster_edits` does the same for the server's edits (``Pix2PixHD.apply_edits``).

The functions take a pix2pixHD method (:class:`~pairgan.methods.pix2pixhd.Pix2PixHD`; a Translator's is
``translator.method``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from pairgan.data.datasets import build_dataset
from pairgan.fsutil import atomic_write, atomic_write_text
from pairgan.methods.base import Method
from pairgan.methods.build import load_method
from pairgan.nets.pix2pixhd import instance_means
from pairgan.padding import pad_batch
from pairgan.runtime import resolve_device

CLUSTERS_FILE = "features_clusters.npz"
CLUSTERS_JSON = "features_clusters.json"

__all__ = [
    "CLUSTERS_FILE",
    "apply_cluster_edits",
    "attach_clusters",
    "cluster_features",
    "edit",
    "encode_instances",
    "find_clusters_file",
    "instance_class",
    "instance_features",
    "kmeans",
    "load_clusters",
    "save_clusters",
]


# --------------------------------------------------------------------------- k-means


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: the first centre uniformly, each next one with probability ~ D^2."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centres = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:  # fewer distinct points than k (the caller prevents this)
            break
        r = float(torch.rand((), generator=gen, dtype=torch.float64)) * total
        idx = int(torch.searchsorted(torch.cumsum(d2, 0), torch.tensor([r], dtype=d2.dtype)).clamp(max=n - 1))
        centres.append(x[idx])
        d2 = torch.minimum(d2, ((x - x[idx]) ** 2).sum(1))
    return torch.stack(centres)


def kmeans(x: torch.Tensor, k: int, *, seed: int = 0, max_iter: int = 300,
           n_init: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means of ``x`` ``[n, d]``: ``(centres [k', d], assignment [n])``, deterministic per seed.

    k-means++ seeding and Lloyd iterations until the assignment stops changing; ``n_init``
    seedings from one generator, the lowest inertia wins. ``k' = min(k, distinct points)``
    (the reference uses min(k, n)); an emptied cluster is re-seeded with the point farthest from
    its centre. Computed in float64; centres are returned as float32.
    """
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"kmeans: expected a non-empty [n, d] tensor, got {tuple(x.shape)}")
    if k < 1:
        raise ValueError(f"kmeans: k must be >= 1, got {k}")
    x = x.detach().to("cpu", torch.float64)
    k = min(k, torch.unique(x, dim=0).shape[0])
    gen = torch.Generator().manual_seed(seed)
    best: tuple[float, Any, Any] | None = None
    for _ in range(max(1, n_init)):
        centres = _kmeans_pp(x, k, gen)
        assign = torch.full((x.shape[0],), -1, dtype=torch.long)
        for _ in range(max_iter):
            dist = torch.cdist(x, centres)
            new = dist.argmin(1)
            counts = torch.bincount(new, minlength=k)
            if (counts == 0).any():  # re-seed empty clusters with the worst-fitted points
                err = dist.gather(1, new[:, None]).squeeze(1)
                for c in torch.nonzero(counts == 0).flatten().tolist():
                    far = int(err.argmax())
                    new[far] = c
                    err[far] = -1.0
                counts = torch.bincount(new, minlength=k)
            if torch.equal(new, assign):
                break
            assign = new
            sums = torch.zeros_like(centres).index_add_(0, assign, x)
            centres = sums / counts.unsqueeze(1).to(x.dtype)
        inertia = float(((x - centres[assign]) ** 2).sum())
        if best is None or inertia < best[0] - 1e-12:
            best = (inertia, centres.clone(), assign.clone())
    assert best is not None
    return best[1].float(), best[2]


# --------------------------------------------------------------------------- cluster files


def instance_class(ids: torch.Tensor) -> torch.Tensor:
    """Class of Cityscapes-convention instance ids: ``id // 1000`` for ids >= 1000, else the id."""
    return torch.where(ids >= 1000, ids // 1000, ids)


def save_clusters(path: str | os.PathLike, centres: Mapping[int, torch.Tensor],
                  meta: dict[str, Any] | None = None) -> Path:
    """Write ``{class_id: [K, feat_num]}`` as ``.npz`` (arrays ``class_{id}``) plus a JSON sidecar
    with the centres and ``meta``; both atomically."""
    path = Path(path)
    arrays = {f"class_{int(c)}": v.detach().to("cpu").float().numpy() for c, v in centres.items()}
    meta = dict(meta or {})

    def write_npz(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write_npz)
    readable = {"centres": {str(c): [[round(float(x), 6) for x in row] for row in arrays[f"class_{c}"].tolist()]
                            for c in sorted(int(c) for c in centres)}, **meta}
    atomic_write_text(path.with_suffix(".json"), json.dumps(readable, indent=1) + "\n")
    return path


def load_clusters(path: str | os.PathLike) -> dict[int, torch.Tensor]:
    """``{class_id: centres [K, feat_num]}`` from a file written by :func:`save_clusters`."""
    path = Path(path)
    if path.is_dir():
        found = find_clusters_file(path)
        if found is None:
            raise FileNotFoundError(f"{path}: no {CLUSTERS_FILE}; make it with `pairgan features cluster {path}`")
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such clusters file; make it with `pairgan features cluster RUN`")
    with np.load(path, allow_pickle=False) as z:
        return {int(k.split("_", 1)[1]): torch.from_numpy(z[k].astype(np.float32)) for k in z.files
                if k.startswith("class_")}


def find_clusters_file(folder: str | os.PathLike) -> Path | None:
    """The clusters file of a checkpoint: in the checkpoint folder, else in its run folder."""
    folder = Path(folder)
    candidates = [folder / CLUSTERS_FILE]
    if folder.parent.name == "checkpoints":
        candidates += [folder.parent / CLUSTERS_FILE, folder.parent.parent / CLUSTERS_FILE]
    candidates.append(folder / "checkpoints" / CLUSTERS_FILE)
    for c in candidates:
        if c.is_file():
            return c
    return None


# --------------------------------------------------------------------------- encoding & clustering


def encode_instances(method: Method, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """E's vector of every instance of a batch: ``(batch_index, instance_id, vector [S, F],
    fraction [S])``, the fraction being the instance's share of its image's pixels."""
    if "E" not in method.nets:
        raise ValueError("this model has no feature encoder (train it with model.use_features=true)")
    E = method.nets["E"]
    ids = method.pooling_map(batch)
    image = batch[method.target_key]
    with torch.no_grad(), method._eval("E"):
        raw = E.model(image.float())
    b, inst, means, counts = instance_means(raw, ids)
    fraction = counts.double() / float(ids.shape[-2] * ids.shape[-1])
    return b, inst, means, fraction


def cluster_features(run_dir: str | os.PathLike, data_path: str | os.PathLike | None = None, k: int = 10,
                     min_fraction: float = 1 / 64, *, split: str | None = None, seed: int = 0,
                     device: str = "auto", max_items: int = 0) -> Path:
    """Encode a split (the training split by default) with the run's E, then k-means (``k``
    centres, k-means++ with ``seed``) each class's vectors of instances covering more than
    ``min_fraction`` of their image. Writes ``features_clusters.npz`` and ``.json`` into
    the run folder (or into the checkpoint folder when given one) and returns its path."""
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    method = load_method(run_dir, dev)
    cfg = method.run_config
    assert cfg is not None and method.checkpoint is not None  # load_method sets both
    data_cfg = dataclasses.replace(cfg.data, path=str(data_path or cfg.data.path), max_items=max_items)
    split = split or data_cfg.train_split
    ds = build_dataset(data_cfg, split, train=False, size_multiple=method.size_multiple, seed=cfg.seed)
    vectors: dict[int, list[torch.Tensor]] = {}
    n_instances = 0
    for i in range(len(ds)):
        item = ds[i]
        batch = {k2: v.unsqueeze(0).to(dev) for k2, v in item.items() if torch.is_tensor(v)}
        _, ids, means, fraction = encode_instances(method, batch)
        keep = fraction > min_fraction
        classes = instance_class(ids)
        for c, v in zip(classes[keep].tolist(), means[keep].cpu()):
            vectors.setdefault(int(c), []).append(v)
        n_instances += int(keep.sum())
    if not vectors:
        raise ValueError(f"{data_cfg.path} ({split}): no instance covers more than {min_fraction:.4g} of its image")
    centres: dict[int, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for c in sorted(vectors):
        x = torch.stack(vectors[c])
        centres[c], _ = kmeans(x, k, seed=seed)
        counts[str(c)] = int(x.shape[0])
    meta = {
        "k": k, "min_fraction": min_fraction, "seed": seed, "feat_num": method.cfg.feat_num,
        "checkpoint": str(method.checkpoint), "data": str(data_cfg.path), "split": split, "images": len(ds),
        "instances": n_instances, "instances_per_class": counts,
    }
    return save_clusters(run_dir / CLUSTERS_FILE, centres, meta)


def attach_clusters(method: Method, path: str | os.PathLike | None = None) -> dict[int, torch.Tensor]:
    """Load the clusters (from the run folder of the method's checkpoint, or ``path``) and keep
    them on the method for ``cluster:K``/``random``."""
    if path is None:
        if method.checkpoint is None:
            raise ValueError("attach_clusters: give the clusters file (this model has no checkpoint folder)")
        path = find_clusters_file(method.checkpoint)
        if path is None:
            raise FileNotFoundError(f"{method.checkpoint}: no {CLUSTERS_FILE}; make it with "
                                    "`pairgan features cluster RUN`")
    method.clusters = load_clusters(path)
    return method.clusters


# --------------------------------------------------------------------------- editing


def _ids4(t: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(t) if not torch.is_tensor(t) else t)
    if t.dim() == 3 and t.shape[-1] == 1 and t.shape[0] != 1:
        t = t[..., 0]
    while t.dim() < 4:
        t = t.unsqueeze(0)
    if t.shape[0] != 1 or t.shape[1] != 1:
        raise ValueError(f"{name}: expected one map (H x W), got shape {tuple(t.shape)}")
    return t.long()


def _prepare(method: Method, label: Any, inst: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if "E" not in method.nets:
        raise ValueError("this model has no instance features (train it with model.use_features=true)")
    device = next(method.nets["G"].parameters()).device
    label_t, inst_t = _ids4(label, "label").to(device), _ids4(inst, "inst").to(device)
    if label_t.shape != inst_t.shape:
        raise ValueError(f"label {tuple(label_t.shape[-2:])} and inst {tuple(inst_t.shape[-2:])} differ in size")
    return label_t, inst_t


def instance_features(method: Method, label: Any, inst: Any, mode: Any = None, *, image: Any = None,
                      seed: int | None = 0) -> torch.Tensor:
    """The per-instance feature map ``[1, feat_num, H, W]`` a translation would use: ``mode`` as
    ``translate --features`` (``random``, ``cluster:K``, ``encode:PATH``), ``encode`` with
    ``image`` (CHW/NCHW in [-1, 1]), or a ready feature map. ``seed`` fixes ``random``."""
    label_t, inst_t = _prepare(method, label, inst)
    if torch.is_tensor(mode):
        fm = mode if mode.dim() == 4 else mode.unsqueeze(0)
        return fm.to(label_t.device).float()
    batch: dict[str, Any] = {"label": label_t, "inst": inst_t}
    if image is not None:
        img = torch.as_tensor(image)
        batch[method.target_key] = (img if img.dim() == 4 else img.unsqueeze(0)).to(label_t.device).float()
        mode = mode or "encode"
    elif mode is None:
        mode = "random"
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            return method.instance_features(batch, mode)


def edit(method: Method, label: Any, inst: Any, edits: Mapping[int, int], base_features: Any = None, *,
         seed: int | None = 0, return_features: bool = False) -> Any:
    """Restyle instances: ``edits`` maps an instance id of ``inst`` to a cluster index of its
    class; every other instance keeps its vector of ``base_features`` (a feature map, a mode
    such as ``random``/``cluster:K``/``encode:PATH``, or None = ``random`` with ``seed``), so
    only the edited objects change. ``method``: a pix2pixHD method with clusters (set, attached
    with :func:`attach_clusters`, or found in its run folder).

    Returns the image ``[1, 3, H, W]`` in [-1, 1] (with ``return_features``: also the edited
    feature map, to chain further edits).
    """
    label_t, inst_t = _prepare(method, label, inst)
    base = instance_features(method, label_t, inst_t, base_features, seed=seed)
    clusters = method.find_clusters()
    fmap = base.clone()
    for iid, ci in edits.items():  # the few instances being edited
        mask = inst_t[0, 0] == int(iid)
        if not bool(mask.any()):
            raise ValueError(f"instance {iid} does not occur in the instance map")
        cls = int(iid) // 1000 if int(iid) >= 1000 else int(iid)
        if not clusters or cls not in clusters:
            raise ValueError(f"no feature clusters for class {cls} (instance {iid}); run `pairgan features cluster`")
        centres = clusters[cls]
        if not 0 <= int(ci) < centres.shape[0]:
            raise ValueError(f"cluster {ci} of class {cls}: the class has {centres.shape[0]} clusters")
        fmap[0][:, mask] = centres[int(ci)].to(fmap).unsqueeze(1)
    batch = {"label": label_t, "inst": inst_t, "feat_map": fmap}
    padded, size = pad_batch(batch, method.size_multiple)
    with torch.no_grad():
        out = method.translate(padded)
    if size is not None:
        out = out[..., : size[0], : size[1]]
    out = out.float().clamp(-1, 1)
    return (out, fmap) if return_features else out


def apply_cluster_edits(method: Method, batch: dict[str, Any],
                        edits: Sequence[tuple[str, Any, int]]) -> dict[str, Any]:
    """``batch`` with the feature map of its ``features`` option (default: random centres, drawn
    from torch's RNG) in which each edited instance's vector is replaced by centre K of its class
    (K modulo the class's centres); every other instance keeps its features, so the rest of the
    image stays as it was. ``edits``: ``("id", instance_id, K)`` or ``("at", (y, x), K)``, the
    instance under that pixel of the instance map (the label map without one)."""
    ids = batch.get("inst", batch.get("label"))
    clusters = method.find_clusters(batch)
    if not clusters:
        raise ValueError("edits: this model has no feature clusters (make them with `pairgan features cluster RUN`)")
    h, w = ids.shape[-2:]
    targets = []
    for how, where, k in edits:
        if how == "at":
            y, x = where
            if not (0 <= y < h and 0 <= x < w):
                raise ValueError(f"edits: pixel (x={x}, y={y}) is outside the {w}x{h} map")
            where = int(ids[0, 0, y, x])
        elif not bool((ids == where).any()):
            raise ValueError(f"edits: no instance {where} in the label/instance map")
        targets.append((where, k))
    feat = method.instance_features(dict(batch), batch.get("features"))
    for inst_id, k in targets:
        mask = ids == inst_id
        one = method.sample_features(ids, k, clusters)
        feat = torch.where(mask.expand_as(feat), one, feat)
    batch = dict(batch)
    batch["feat_map"] = feat
    return batch
