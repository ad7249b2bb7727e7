"""ml.presets: the defaults are stated once, keep their values, and import without torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from ml import presets
from ml.presets import DEFAULT, PHOTOMETRIC, PRETRAINED, QUICK, RECIPES, SEED000, default_lr


def test_seed000_recipe_keeps_the_seed_000_values():
    assert (SEED000.arch, SEED000.image_size, SEED000.epochs, SEED000.batch_size) == ("resnet50", 224, 20, 32)
    assert (SEED000.optimizer, SEED000.lr, SEED000.embedding_dim, SEED000.head, SEED000.pooling) == (
        "adam",
        0.005,
        512,
        "arcface",
        "avg",
    )
    assert SEED000.trainable_blocks is None
    assert (QUICK.arch, QUICK.image_size, QUICK.epochs, QUICK.batch_size) == ("resnet18", 128, 10, 32)
    assert RECIPES == {"pretrained": PRETRAINED, "photometric": PHOTOMETRIC, "seed000": SEED000, "quick": QUICK}
    assert dataclasses.replace(PHOTOMETRIC, name="pretrained", photometric=False) == PRETRAINED
    assert PHOTOMETRIC.train_kwargs()["photometric"] is True and PRETRAINED.train_kwargs()["photometric"] is False
    assert default_lr("sgd") == 0.01 and default_lr("adam") == 0.005
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        default_lr("rmsprop")
    assert set(presets.ARCH_LABELS) == set(presets.ARCHS)


def test_default_recipe_is_the_measured_winner():
    """bench/real_reid.py: frozen EfficientNet-Lite0 at 224 px (+ RootSIFT re-ranking and fusion) won on real photos."""
    assert DEFAULT is PRETRAINED
    assert (DEFAULT.arch, DEFAULT.image_size, DEFAULT.trainable_blocks) == ("efficientnet_lite0", 224, 0)
    assert DEFAULT.epochs <= 5


def test_cli_recipe_selects_seed000_and_trainable_blocks():
    from ml.cli import _train_config, build_parser

    base = ["train", "--csv", "c", "--images", "i", "--out", "o"]
    config = _train_config(build_parser().parse_args(base + ["--recipe", "seed000"]))
    assert (config.arch, config.image_size, config.epochs, config.trainable_blocks) == ("resnet50", 224, 20, None)
    config = _train_config(build_parser().parse_args(base + ["--trainable-blocks", "all"]))
    assert (config.arch, config.trainable_blocks) == ("efficientnet_lite0", None)
    config = _train_config(build_parser().parse_args(base + ["--recipe", "seed000", "--arch", "resnet34"]))
    assert config.arch == "resnet34"  # a knob given on the command line wins over the recipe
    assert _train_config(build_parser().parse_args(base)).photometric is False
    assert _train_config(build_parser().parse_args(base + ["--recipe", "photometric"])).photometric is True
    assert _train_config(build_parser().parse_args(base + ["--photometric"])).photometric is True


def test_train_config_and_cli_read_the_default_recipe():
    from ml.cli import build_parser
    from ml.train import TrainConfig

    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for key, value in DEFAULT.train_kwargs().items():
        assert fields[key] == value, key
    args = build_parser().parse_args(["train", "--csv", "c", "--images", "i", "--out", "o"])
    parsed = (args.arch, args.image_size, args.epochs, args.batch_size, args.embedding_dim, args.head, args.optimizer)
    assert parsed == (
        DEFAULT.arch,
        DEFAULT.image_size,
        DEFAULT.epochs,
        DEFAULT.batch_size,
        DEFAULT.embedding_dim,
        DEFAULT.head,
        DEFAULT.optimizer,
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--csv", "c", "--images", "i", "--out", "o", "--arch", "vgg16"])


def test_recipe_builds_a_train_config():
    from ml.train import TrainConfig

    config = TrainConfig(csv="c", images_dir="i", out_dir="o", **QUICK.train_kwargs())
    assert (config.arch, config.image_size, config.epochs, config.lr) == ("resnet18", 128, 10, 0.005)


def test_presets_import_without_torch():
    code = "import sys, ml.presets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
