"""The bad-input suite, configuration and devices (issue 14, item 4 except translate's file names, and
the CLI-wide user-error handling): ``--device`` values a machine cannot honour, broken preset YAML
files, ``--set`` values that are not finite or out of range, a bad data file met inside a DataLoader
worker, and ``info`` with an unknown preset. Each case is a ``pairgan`` command line with its exit
status and message (:mod:`tests.badinput`); the trained run a case points at must never change.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.badinput import Case, check_case
from tests.helpers import set_args, tiny_overrides, write_tiny_data

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = set_args(tiny_overrides("pix2pix") + ["train.max_steps=2"])
# A tiny, short training in the test's own folder: a case that wrongly went ahead would cost seconds, not hours.
TRAIN = ["train", "--data", "{data}", "--out", "{tmp}/r", *TINY]
DEVICES = "auto, cpu, cuda, cuda:N, mps"
NOT_A_DEVICE = rf"device 'tpu9': expected one of {DEVICES}"
NOT_A_TRAIN_DEVICE = rf"train.device: 'tpu9' is not a device; expected one of {DEVICES}"
NO_CUDA = rf"device 'cuda': CUDA is not available on this machine; expected one of {DEVICES}"
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def _case(*args, marks=(), **kwargs) -> pytest.param:  # type: ignore[valid-type]
    case = Case(*args, **kwargs)
    return pytest.param(case, id=case.id, marks=marks)


CASES = [
    # --device: a value that is not a device, and one this machine lacks, for every command that takes it.
    _case("train-device-tpu9", ["train", "--data", "{data}", "--device", "tpu9", "--out", "{tmp}/r", *TINY],
          2, NOT_A_TRAIN_DEVICE),
    _case("train-device-cuda", ["train", "--data", "{data}", "--device", "cuda", "--out", "{tmp}/r", *TINY],
          2, NO_CUDA, marks=needs_no_cuda),
    _case("train-resume-device-tpu9", ["train", "--resume", "{own_run}", "--device", "tpu9"], 2, NOT_A_TRAIN_DEVICE,
          unchanged=["{own_run}"]),
    _case("translate-device-tpu9", ["translate", "{run}", "{images}", "--out", "{tmp}/o", "--device", "tpu9"],
          2, NOT_A_DEVICE, unchanged=["{run}", "{images}"]),
    _case("translate-device-cuda", ["translate", "{run}", "{images}", "--out", "{tmp}/o", "--device", "cuda"],
          2, NO_CUDA, unchanged=["{run}", "{images}"], marks=needs_no_cuda),
    _case("translate-device-meta", ["translate", "{run}", "{images}", "--out", "{tmp}/o", "--device", "meta"],
          2, r"weights cannot be loaded onto the meta device", unchanged=["{run}", "{images}"]),
    _case("serve-device-tpu9", ["serve", "{run}", "--device", "tpu9"], 2, NOT_A_DEVICE, unchanged=["{run}"]),
    _case("serve-device-cuda", ["serve", "{run}", "--device", "cuda"], 2, NO_CUDA, unchanged=["{run}"],
          marks=needs_no_cuda),
    _case("evaluate-device-tpu9", ["evaluate", "{run}", "--data", "{data}", "--out", "{tmp}/e", "--device", "tpu9"],
          2, NOT_A_DEVICE, unchanged=["{run}"]),
    _case("evaluate-device-cuda", ["evaluate", "{run}", "--data", "{data}", "--out", "{tmp}/e", "--device", "cuda"],
          2, NO_CUDA, unchanged=["{run}"], marks=needs_no_cuda),
    _case("bench-device-tpu9", ["bench", "--device", "tpu9", "--steps", "1", "--warmup", "0", "--no-peak", *TINY],
          2, NOT_A_TRAIN_DEVICE),
    _case("bench-device-cuda", ["bench", "--device", "cuda", "--steps", "1", "--warmup", "0", "--no-peak", *TINY],
          2, NO_CUDA, marks=needs_no_cuda),
    _case("bench-device-cuda-index", ["bench", "--device", "cuda:99", "--steps", "1", "--warmup", "0", "--no-peak",
                                      *TINY], 2, r"device 'cuda:99': (CUDA is not available|this machine has \d+ CUDA)"),
    # Preset YAML files.
    _case("info-preset-unknown", ["info", "keys", "--preset", "nosuch"], 2, r"unknown preset 'nosuch'; shipped presets: "),
    _case("train-preset-unknown", ["train", "--preset", "nosuch", "--data", "{data}"], 2, r"unknown preset 'nosuch'"),
    _case("train-preset-file-missing", ["train", "--preset", "{tmp}/nope.yaml", "--data", "{data}"], 2,
          r"preset file '.*nope.yaml' does not exist; expected a shipped preset name"),
    _case("train-preset-yaml-syntax", ["train", "--preset", "{yaml_syntax}", "--data", "{data}"], 2,
          r"syntax.yaml: invalid YAML at line 4, column 14: mapping values are not allowed"),
    _case("info-preset-yaml-syntax", ["info", "keys", "--preset", "{yaml_syntax}"], 2,
          r"syntax.yaml: invalid YAML at line 4, column 14: mapping values are not allowed"),
    _case("data-check-preset-yaml-syntax", ["data", "check", "{data}", "--preset", "{yaml_syntax}"], 2,
          r"syntax.yaml: invalid YAML at line 4"),
    _case("bench-preset-yaml-syntax", ["bench", "--preset", "{yaml_syntax}", "--no-peak"], 2,
          r"syntax.yaml: invalid YAML at line 4"),
    _case("train-preset-yaml-list", ["train", "--preset", "{yaml_list}", "--data", "{data}"], 2,
          r"list.yaml: expected a mapping of config keys at the top level, got a list"),
    _case("train-preset-yaml-binary", ["train", "--preset", "{yaml_binary}", "--data", "{data}"], 2,
          r"binary.yaml: not a UTF-8 text file"),
    _case("train-preset-section-not-mapping", ["train", "--preset", "{yaml_section}", "--data", "{data}"], 2,
          r"train: expected a section of keys \(train.max_steps, .*\), got 3"),
    _case("info-preset-yaml-empty", ["info", "keys", "--preset", "{yaml_empty}"], 0, r"method = pix2pix"),
    # --set: syntax, keys, types, finite numbers and ranges.
    _case("set-no-equals", [*TRAIN, "--set", "train.lr"], 2,
          r"override 'train.lr': expected key=value"),
    _case("set-empty-key", [*TRAIN, "--set", "=3"], 2, r"override '=3': empty key"),
    _case("set-unknown-key", [*TRAIN, "--set", "train.nope=1"], 2,
          r"unknown config key 'train.nope'; valid keys under train: "),
    _case("set-not-a-section", [*TRAIN, "--set", "train.lr.x=1"], 2,
          r"override 'train.lr.x=1': 'lr' is not a section"),
    _case("set-section-scalar", [*TRAIN, "--set", "train=3"], 2,
          r"train: expected a section of keys"),
    _case("set-wrong-type", [*TRAIN, "--set", "train.batch_size=four"], 2,
          r"train.batch_size: expected an integer, got 'four'"),
    _case("set-not-a-choice", [*TRAIN, "--set", "data.direction=XtoY"], 2,
          r"data.direction: 'XtoY' is not one of 'AtoB', 'BtoA'"),
    _case("set-unknown-method", [*TRAIN, "--set", "method=nosuch"], 2,
          r"unknown method 'nosuch'; registered methods: "),
    _case("set-unknown-generator", [*TRAIN, "--set", "model.generator=nosuch"], 2,
          r"model.generator: unknown generator 'nosuch'; registered generators: "),
    _case("set-lr-nan", [*TRAIN, "--set", "train.lr=nan"], 2,
          r"train.lr: expected a finite number, got 'nan'"),
    _case("set-lr-inf", [*TRAIN, "--set", "train.lr=inf"], 2,
          r"train.lr: expected a finite number, got 'inf'"),
    _case("set-lr-yaml-inf", [*TRAIN, "--set", "train.lr=.inf"], 2,
          r"train.lr: expected a finite number, got inf"),
    _case("set-lr-negative", [*TRAIN, "--set", "train.lr=-0.001"], 2,
          r"train.lr: -0.001 is out of range; expected >= 0"),
    _case("set-beta1-one", [*TRAIN, "--set", "train.beta1=1"], 2,
          r"train.beta1: 1.0 is out of range; expected >= 0 and < 1"),
    _case("set-batch-size-zero", [*TRAIN, "--set", "train.batch_size=0"], 2,
          r"train.batch_size: 0 is out of range; expected >= 1"),
    _case("set-max-steps-negative", [*TRAIN, "--set", "train.max_steps=-5"], 2,
          r"train.max_steps: -5 is out of range; expected >= 0"),
    _case("set-log-every-zero", [*TRAIN, "--set", "train.log_every=0"], 2,
          r"train.log_every: 0 is out of range; expected >= 1"),
    _case("set-num-workers-negative", [*TRAIN, "--set", "train.num_workers=-1"], 2,
          r"train.num_workers: -1 is out of range; expected >= 0"),
    _case("set-crop-size-negative", [*TRAIN, "--set", "data.crop_size=-32"], 2,
          r"data.crop_size: -32 is out of range; expected >= 1"),
    _case("set-lambda-negative", [*TRAIN, "--set", "model.lambda_L1=-100"], 2,
          r"model.lambda_L1: -100.0 is negative; expected a value >= 0"),
    _case("set-lambda-nan", [*TRAIN, "--set", "model.lambda_L1=nan"], 2,
          r"model.lambda_L1: expected a finite number, got 'nan'"),
    _case("set-seed-nan", [*TRAIN, "--set", "seed=nan"], 2, r"seed: expected an integer, got 'nan'"),
    _case("bench-set-lr-nan", ["bench", "--set", "train.lr=nan", "--no-peak"], 2,
          r"train.lr: expected a finite number, got 'nan'"),
    _case("evaluate-outputs-set-nan", ["evaluate", "--data", "{data}", "--outputs", "{images}", "--set",
                                       "data.pose_sigma=nan"], 2, r"data.pose_sigma: expected a finite number"),
    _case("translate-option-no-equals", ["translate", "{run}", "{images}", "--out", "{tmp}/o", "-O", "variant"],
          2, r"--option 'variant': expected key=value", unchanged=["{run}", "{images}"]),
    # Data.
    _case("train-data-missing", ["train", "--data", "{tmp}/no-such-data", "--out", "{tmp}/r", *TINY], 2,
          r"no-such-data"),
    _case("train-no-data", ["train"], 2, r"--data PATH is required"),
    _case("train-bad-file-in-worker", ["train", "--data", "{bad_data}", "--out", "{tmp}/r", *TINY, "--set",
                                       "train.check_data=false", "--set", "train.num_workers=1"], 2,
          r"^error: \S+/train/002.png: not a readable image", unchanged=["{bad_data}"]),
    _case("train-bad-file-checked", ["train", "--data", "{bad_data}", "--out", "{tmp}/r", *TINY], 2,
          r"found 1 problem", unchanged=["{bad_data}"]),
    _case("info-unknown-topic", ["info", "nosuch"], 2, r"info 'nosuch': expected presets, keys, registry or all"),
    _case("synth-scenes-none", ["data", "synth", "scenes", "{tmp}/s", "--n", "0"], 2,
          r"--n 0: expected at least 1 scene"),
    _case("train-split-slice-malformed", ["train", "--data", "{data}", "--out", "{tmp}/r", *TINY, "--set",
                                          "data.train_split=train[5]"], 2, r"expected a folder name, or NAME\[START:STOP\]"),
    _case("train-split-slice-empty", ["train", "--data", "{data}", "--out", "{tmp}/r", *TINY, "--set",
                                      "data.train_split=train[999:]"], 2, r"found 1 problem"),
]


@pytest.fixture(scope="module")
def shared_files(tmp_path_factory: pytest.TempPathFactory, tiny_run: Callable[..., Path]) -> dict[str, Path]:
    """Files the cases only read: a trained run, its data, input images, broken YAML presets."""
    root = tmp_path_factory.mktemp("bad-config")
    run = tiny_run("pix2pix")
    data = write_tiny_data(root, "aligned")
    images = root / "images"
    shutil.copytree(data / "test", images)
    bad_data = write_tiny_data(root / "bad", "aligned")
    (bad_data / "train" / "002.png").write_bytes(b"not a png at all")
    yamls = {
        # line 4 is indented deeper than its sibling: "mapping values are not allowed" at line 4, column 14
        "yaml_syntax": "method: pix2pix\ntrain:\n  lr: 0.001\n   batch_size: 2\n",
        "yaml_list": "- method\n- pix2pix\n",
        "yaml_section": "train: 3\n",
        "yaml_empty": "",
    }
    paths = {"run": run, "data": data, "images": images, "bad_data": bad_data}
    for key, text in yamls.items():
        paths[key] = root / f"{key.split('_')[1]}.yaml"
        paths[key].write_text(text)
    paths["yaml_binary"] = root / "binary.yaml"
    paths["yaml_binary"].write_bytes(b"\xff\xfe\x00method: x")
    return paths


@pytest.mark.parametrize("case", CASES)
def test_bad_config_input(case: Case, shared_files: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a command that wrongly went ahead writes only here
    paths = dict(shared_files, tmp=tmp_path)
    if "{own_run}" in " ".join(case.argv):
        paths["own_run"] = tmp_path / "own_run"
        shutil.copytree(shared_files["run"], paths["own_run"])
    check_case(case, paths)


def test_the_table_is_large_and_its_ids_unique() -> None:
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 15
