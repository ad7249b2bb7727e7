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
