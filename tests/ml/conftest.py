"""Fixtures for the Django-free ``ml`` tests (no Django, no database, no network)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


@pytest.fixture
def textured_rgb() -> Image.Image:
    """A 240x160 RGB picture with structure at several scales (deterministic)."""
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:160, 0:240]
    base = 128 + 60 * np.sin(xx / 17.0) * np.cos(yy / 11.0)
    noise = rng.normal(0, 10, size=(160, 240))
    red = np.clip(base + noise, 0, 255)
    green = np.clip(255 - base, 0, 255)
    blue = np.clip((xx + yy) % 256, 0, 255)
    arr = np.stack([red, green, blue], axis=-1).astype(np.uint8)
    arr[40:90, 60:140] = (250, 250, 250)
    return Image.fromarray(arr, "RGB")


@pytest.fixture
def encode_image():
    return encode


# ------------------------------------------------------------- training fixtures (models/train/identifier/cli)

TINY = dict(arch="resnet18", image_size=64, embedding_dim=32)


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    """12 synthetic individuals x 4 photos (with boxes), generated once per session."""
    from ml.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth12x4")
    generate_dataset(out, individuals=12, photos=4, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_trained(synth_small, tmp_path_factory):
    """One tiny model (resnet18, 64 px, 32-d) trained for a few dozen steps, plus its localizer."""
    from ml.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny_model")
    progress = []
    config = TrainConfig(
        csv=str(synth_small / "train.csv"),
        images_dir=str(synth_small / "images"),
        out_dir=str(out),
        boxes_csv=str(synth_small / "boxes.csv"),
        epochs=6,
        batch_size=8,
        lr=0.001,
        num_workers=0,
        seed=0,
        localizer_epochs=1,
        aug_warmup_epochs=2,
        margin_warmup_epochs=2,
        cache_dir=str(synth_small / "cache"),
        **TINY,
    )
    result = train(config, progress=progress.append)
    return result, progress
