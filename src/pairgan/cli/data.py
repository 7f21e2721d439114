"""``pairgan data check``, ``pairgan data pack`` and ``pairgan data synth scenes|poses``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from pairgan.cli.common import SET_HELP, user_errors_reported
from pairgan.config import build_config
from pairgan.data.check import check_dataset
from pairgan.data.shards import pack_shards
from pairgan.methods.build import build_method
from pairgan.synth.poses import synth_poses
from pairgan.synth.scenes import synth_scenes

__all__ = ["app"]

app = typer.Typer(help="Check data sets, pack them as WebDataset shards, make synthetic ones.", no_args_is_help=True)
synth_app = typer.Typer(help="Write procedural data sets (no download needed).", no_args_is_help=True)
app.add_typer(synth_app, name="synth")

#: Problems listed one per line before the rest is summed up.
_PROBLEMS_SHOWN = 50


@app.command("check")
def data_check(
    path: Path = typer.Argument(..., help="Data set root."),
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="Preset whose data settings apply."),
    set_: List[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    split: List[str] = typer.Option([], "--split", help="Splits to check (default: train, plus val/test if present)."),
    max_items: Optional[int] = typer.Option(
        None, "--max-items", min=1, help="Decode only the first N items of each split (data.max_items)."),
) -> None:
    """Validate a data set: missing partners, unreadable files, sizes, channels, crop fit.

    With data.palette set, also the palette fit of the colour-coded label maps: the share of
    pixels within data.palette_max_distance of a palette colour, the share far (void) and the
    pixels per class (e.g. --preset pix2pixhd-512 --set data.layout=aligned data.direction=BtoA
    data.palette=cityscapes data.palette_match=nearest data.label_nc=20 data.instance=false)."""
    with user_errors_reported():
        overrides = list(set_) + ([f"data.max_items={max_items}"] if max_items else [])
        cfg = build_config(preset, overrides, data_path=str(path))
        size_multiple = build_method(cfg, training=False).size_multiple
        report = check_dataset(cfg.data, splits=list(split) or None, size_multiple=size_multiple)
    Console().print(report.render())
    if not report.ok:
        for f, problem in report.problems[:_PROBLEMS_SHOWN]:
            typer.echo(f"{f}: {problem}", err=True)
        if len(report.problems) > _PROBLEMS_SHOWN:
            typer.echo(f"... and {len(report.problems) - _PROBLEMS_SHOWN} more problems", err=True)
        raise typer.Exit(1)
    typer.echo("ok: no problems found")


@app.command("pack")
def data_pack(
    root: Path = typer.Argument(..., help="Data set root, in any layout pairgan reads (aligned, folders, labels "
                                "with instance maps, pose pairs)."),
    out: Path = typer.Argument(..., help="Folder for the shards and their manifest (created if needed)."),
    shard_size: str = typer.Option("1GB", "--shard-size", help="Largest shard: 1GB, 500MB, 2GiB or bytes; a shard "
                                   "closes before it would pass it (a larger single sample gets a shard of its own)."),
    split: str = typer.Option("train", "--split", help="Split to pack: a folder name or a slice NAME[START:STOP] "
                              "such as train[:2700] (pose pairs: train, val, test, all or a pairs file's split)."),
    layout: str = typer.Option("auto", "--layout", help="auto (detected as training does), aligned, folders, "
                               "labels or poses."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the shards and the manifest (default: the "
                                       "split's folder name): OUT/NAME-000000.tar ... and OUT/NAME.json."),
    max_items: int = typer.Option(0, "--max-items", min=0, help="Pack only the first N samples (0 = all)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier pack of the same name in OUT."),
) -> None:
    """Write a split as WebDataset tar shards plus a manifest OUT/NAME.json.

    A sample is the pair's original files (not re-encoded) and a small JSON:
    its index, the layout, the original relative paths, pose keypoints.
    Shards and the manifest are written atomically, the manifest last: an
    interrupted pack leaves no manifest and no partial shard. Training reads
    the shards with the folder's decoding and augmentation:

      pairgan data pack data/cityscapes shards/ --shard-size 1GB

      pairgan train --data shards/train.json --set train.num_workers=4

      torchrun --nproc_per_node 2 -m pairgan train --data shards/train.json
    """
    with user_errors_reported():
        manifest = pack_shards(root, out, split=split, layout=layout, shard_size=shard_size, name=name,
                               max_items=max_items, overwrite=overwrite,
                               progress=lambda done, total: typer.echo(f"shard {done}/{total}", err=True))
    shards = manifest["shards"]
    total = sum(s["bytes"] for s in shards)
    path = out / f"{shards[0]['name'].rsplit('-', 1)[0]}.json"
    typer.echo(f"packed {manifest['samples']} samples ({manifest['layout']}) of {root} split {split} into "
               f"{len(shards)} shards, {total / 1e6:.1f} MB, in {out}; manifest {path}")
    typer.echo(f"train from it with: pairgan train --data {path} ...")


@synth_app.command("scenes")
def synth_scenes_cmd(
    out: Path = typer.Argument(..., help="Output folder."),
    n: int = typer.Option(500, "--n", help="Number of scenes (split 80/10/10 into train/val/test)."),
    size: int = typer.Option(256, help="Image height in pixels."),
    aspect: float = typer.Option(1.0, help="Width / height (2.0 for Cityscapes-like)."),
    seed: int = typer.Option(0, help="Same seed, same files."),
) -> None:
    """Street/facade-like scenes: label maps, instance maps and photos (aligned and folder layouts)."""
    with user_errors_reported(ValueError):
        result = synth_scenes(out, n=n, size=size, seed=seed, aspect=aspect)
    typer.echo(f"wrote {n} scenes to {out}: {result}")


@synth_app.command("poses")
def synth_poses_cmd(
    out: Path = typer.Argument(..., help="Output folder."),
    n: int = typer.Option(100, "--n", help="Number of identities (people); every 10th is test, every 10th val."),
    poses: int = typer.Option(4, "--poses", help="Images (poses) per identity; pairs are all ordered pairs of them."),
    size: int = typer.Option(128, help="Image height in pixels."),
    width: Optional[int] = typer.Option(None, help="Image width (default: square)."),
    seed: int = typer.Option(0, help="Same seed, same files."),
) -> None:
    """Articulated people in several poses with COCO-18 keypoints (images/, annotations.csv, pairs*.csv)."""
    with user_errors_reported(ValueError):
        result = synth_poses(out, n=n, poses=poses, size=size, seed=seed, width=width)
    typer.echo(f"wrote {result['images']} images of {n} identities and {result['pairs']} pairs to {out}: "
               + ", ".join(f"{k} {v}" for k, v in result["counts"].items()))
