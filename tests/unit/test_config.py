from pathlib import Path

import pytest
import torch

from pairgan.config import (
    all_keys,
    apply_overrides,
    available_presets,
    build_config,
    config_from_dict,
    load_config,
    load_preset,
    save_config,
)
from pairgan.errors import ConfigError
from pairgan.runtime import resolve_device


def test_presets_exist_and_resolve():
    names = available_presets()
    for required in ("pix2pix", "pix2pix-paper", "demo"):
        assert required in names
        cfg = build_config(required)
        assert cfg.method == "pix2pix"


def test_reference_defaults():
    cfg = build_config("pix2pix")
    assert (cfg.model.generator, cfg.model.num_downs, cfg.model.ngf) == ("unet", 8, 64)
    assert (cfg.model.discriminator, cfg.model.n_layers_D, cfg.model.ndf) == ("patch", 3, 64)
    assert (cfg.train.lr, cfg.train.beta1, cfg.train.beta2) == (2e-4, 0.5, 0.999)
    assert cfg.model.lambda_L1 == 100.0 and cfg.model.gan_mode == "vanilla"
    assert (cfg.data.load_size, cfg.data.crop_size) == (286, 256)
    assert cfg.train.lr_policy == "linear"
    assert build_config("pix2pix-paper").train.lr_policy == "constant"


def test_required_override_keys_exist():
    keys = all_keys(build_config("pix2pix"))
    for k in ("seed", "train.max_steps", "train.batch_size", "train.save_every", "train.deterministic",
              "data.load_size", "data.crop_size", "data.direction", "model.ngf", "model.ndf", "model.num_downs"):
        assert k in keys


def test_overrides_are_typed():
    cfg = build_config("pix2pix", ["train.batch_size=4", "model.ngf=32", "data.direction=BtoA",
                                   "train.deterministic=true", "train.lr=1e-3", "seed=7"])
    assert cfg.train.batch_size == 4 and isinstance(cfg.train.batch_size, int)
    assert cfg.model.ngf == 32 and cfg.data.direction == "BtoA"
    assert cfg.train.deterministic is True and cfg.train.lr == 1e-3 and cfg.seed == 7


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        build_config("pix2pix", ["train.batchsize=4"])
    msg = str(e.value)
    assert "train.batchsize" in msg and "train.batch_size" in msg and "train.max_steps" in msg
    with pytest.raises(ConfigError, match="model.ngf"):
        build_config("pix2pix", ["model.nfg=4"])
    with pytest.raises(ConfigError, match="valid top-level keys"):
        build_config("pix2pix", ["sede=1"])


def test_bad_values_are_named():
    with pytest.raises(ConfigError, match=r"train.batch_size: expected an integer, got 'four'"):
        build_config("pix2pix", ["train.batch_size=four"])
    with pytest.raises(ConfigError, match=r"data.direction: 'AtoC' is not one of"):
        build_config("pix2pix", ["data.direction=AtoC"])
    with pytest.raises(ConfigError, match="crop_size"):
        build_config("pix2pix", ["data.crop_size=300"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.batch_size"])
    with pytest.raises(ConfigError, match="unknown preset"):
        load_preset("no-such-preset")


def test_unknown_method_lists_registered():
    with pytest.raises(ConfigError, match="pix2pix"):
        config_from_dict({"method": "pix3pix"})


def test_save_load_roundtrip(tmp_path: Path):
    cfg = build_config("demo", ["seed=3"], data_path="/some/where")
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg


def test_yaml_preset_file_with_base(tmp_path: Path):
    p = tmp_path / "mine.yaml"
    p.write_text("base: pix2pix\nmodel:\n  ngf: 16\n")
    cfg = build_config(str(p))
    assert cfg.model.ngf == 16 and cfg.model.ndf == 64


@pytest.mark.parametrize("override, message", [
    ("train.lr=nan", r"train.lr: expected a finite number, got 'nan'"),
    ("train.lr=.inf", r"train.lr: expected a finite number, got inf"),
    ("train.lr=-inf", r"train.lr: expected a finite number, got '-inf'"),
    ("train.lr=-0.1", r"train.lr: -0.1 is out of range; expected >= 0"),
    ("train.lr=-1e-4", r"train.lr: -0.0001 is out of range; expected >= 0"),
    ("train.beta1=1", r"train.beta1: 1.0 is out of range; expected >= 0 and < 1"),
    ("train.batch_size=-2", r"train.batch_size: -2 is out of range; expected >= 1"),
    ("train.max_steps=-1", r"train.max_steps: -1 is out of range; expected >= 0"),
    ("train.log_every=0", r"train.log_every: 0 is out of range; expected >= 1"),
    ("data.crop_size=0", r"data.crop_size: 0 is out of range; expected >= 1"),
    ("data.pose_sigma=0", r"data.pose_sigma: 0.0 is out of range; expected > 0"),
    ("model.lambda_L1=-1", r"model.lambda_L1: -1.0 is negative; expected a value >= 0"),
    ("model.ngf=-8", r"model.ngf: -8 is negative"),
    ("model.generator=nosuch", r"model.generator: unknown generator 'nosuch'; registered generators: .*unet"),
    ("train.device=meta", r"train.device: .meta. is not a device"),
    ("train.device=tpu9", r"train.device: 'tpu9' is not a device; expected one of auto, cpu, cuda, cuda:N, mps"),
    ("train=3", r"train: expected a section of keys \(train.max_steps, .*\), got 3"),
])
def test_out_of_range_values_are_named(override: str, message: str):
    with pytest.raises(ConfigError, match=message):
        build_config("pix2pix", [override])


def test_in_range_edges_are_accepted():
    cfg = build_config("pix2pix", ["train.beta1=0", "train.max_steps=0", "train.num_workers=0", "train.device=cuda:1",
                                   "model.lambda_L1=0"])
    assert cfg.train.beta1 == 0 and cfg.train.device == "cuda:1" and cfg.model.lambda_L1 == 0
    for name in available_presets():
        build_config(name)  # every shipped preset is in range


def test_preset_file_problems_name_the_file(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: pix2pix\ntrain:\n  lr: 1\n   batch_size: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line 4, column \d+: "):
        load_preset(str(bad))
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list.yaml: expected a mapping of config keys at the top level, got a list"):
        load_preset(str(listed))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ConfigError, match=r"binary.yaml: not a UTF-8 text file"):
        load_preset(str(binary))
    with pytest.raises(ConfigError, match=r"preset file '.*nope.yaml' does not exist"):
        load_preset(str(tmp_path / "nope.yaml"))
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"base: {loop}\n")
    with pytest.raises(ConfigError, match=r"loop.yaml: its base: chain comes back to itself"):
        load_preset(str(loop))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_preset(str(empty)) == {}
    saved = tmp_path / "config.yaml"
    saved.write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match=r"config.yaml: expected a mapping"):
        load_config(saved)


@pytest.mark.parametrize("name, message", [
    ("tpu9", r"device 'tpu9': expected one of auto, cpu, cuda, cuda:N, mps"),
    ("CPU", r"device 'CPU': expected one of"),
    ("cpu:1", r"device 'cpu:1': expected one of"),
    ("xla", r"device .xla.: expected one of"),
    ("cuda:x", r"device 'cuda:x': expected one of"),
])
def test_a_device_name_that_is_not_a_device_is_a_config_error(name: str, message: str):
    with pytest.raises(ConfigError, match=message):
        resolve_device(name)


def test_a_device_this_machine_lacks_is_a_config_error():
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"device 'cuda': CUDA is not available on this machine; expected one of"):
            resolve_device("cuda")
    else:
        with pytest.raises(ConfigError, match=r"device 'cuda:99': this machine has \d+ CUDA device"):
            resolve_device("cuda:99")
