from pathlib import Path

import pytest

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
