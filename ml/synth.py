"""Synthetic humpback flukes, for tests and the demo.

An *individual* (everything derived from ``individual_seed``) is a fluke seen from below, the
side photographed for identification: the silhouette (span, sweep of the lobes, tip shape,
central notch, lobe asymmetry), the trailing edge (scalloped serrations and missing chunks), the
pigmentation (black/white patches, dark margins, speckles: the main identity signal) and scars
(white lines, rake marks, barnacle rings and spots). It is drawn once on a canonical canvas.

A *photo* (``photo_seed``) puts that fluke in a sea picture: scale, position, in-plane rotation,
mild perspective (yaw/pitch), how much of the tail stock shows above the water, lighting and
contrast (back-lit flukes lose their pattern), sea colour and waves, sometimes a horizon, water
running off the trailing edge, splash hiding part of the edge, blur, noise, colour or grayscale
and a JPEG quality of 50-95. The true fluke box (original pixels, x1/y1 exclusive) comes with it.

Identity lives at the scale human matchers use (large black/white patches, bold spots and scars,
the trailing-edge profile and its bites) and survives a 64-128 px crop; photo-to-photo variation is
kept in ranges where a person can still match two photos of one whale, yet pose, light and splash
make raw-pixel matching clearly worse than a trained network.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .io import atomic_path
from .types import Box

DEFAULT_IMAGE_SIZE = (320, 214)  # the Kaggle photos' most common 1050x700, scaled down
CANVAS_W, CANVAS_H = 480, 240  # canonical fluke canvas
_CX = CANVAS_W / 2
_HALF_SPAN = 215.0

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "FLUKES",
    "Individual",
    "PhotoKind",
    "SynthSummary",
    "apply_homography",
    "camera_effects",
    "generate_dataset",
    "jpeg_round_trip",
    "light_subject",
    "perspective_coeffs",
    "render_individual",
    "render_photo",
    "render_sea",
    "smooth_noise",
    "write_dataset",
]


# --------------------------------------------------------------------------- helpers


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Gaussian noise on a ``cells`` grid, bicubically upsampled to ``shape`` (h, w); unit-ish std."""
    small = rng.standard_normal((max(2, cells[0]), max(2, cells[1]))).astype(np.float32)
    img = Image.fromarray(small).resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> tuple:
    """PIL PERSPECTIVE data mapping output points ``dst`` (4x2) to input points ``src`` (4x2)."""
    a = []
    b = []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b.extend([u, v])
    return tuple(np.linalg.solve(np.asarray(a, float), np.asarray(b, float)).tolist())


def apply_homography(coeffs: tuple, pts: np.ndarray) -> np.ndarray:
    a, b, c, d, e, f, g, h = coeffs
    x, y = pts[:, 0], pts[:, 1]
    w = g * x + h * y + 1
    return np.stack([(a * x + b * y + c) / w, (d * x + e * y + f) / w], axis=1)


# --------------------------------------------------------------------------- individuals


@dataclass(frozen=True)
class Individual:
    """A fluke on the canonical canvas: ``albedo`` 0..1 and ``alpha`` 0..1, both (CANVAS_H, CANVAS_W)."""

    albedo: np.ndarray
    alpha: np.ndarray
    bbox: tuple[float, float, float, float]  # canvas box of the lobes (without the tail stock)
    trailing_edge: np.ndarray  # y of the trailing edge for every canvas column (nan outside)
    join_y: float  # where the tail stock meets the lobes


@dataclass
class _Canvas:
    """Per-pixel coordinates of the canonical canvas: columns ``xs``, rows ``ys`` (a column vector),
    ``signed_u`` -1..1 along the span (0 at the notch), ``u`` its magnitude, ``side`` 0 left / 1 right."""

    xs: np.ndarray
    ys: np.ndarray
    signed_u: np.ndarray
    u: np.ndarray
    side: np.ndarray


def _canvas() -> _Canvas:
    xs = np.arange(CANVAS_W, dtype=np.float32) + 0.5
    ys = (np.arange(CANVAS_H, dtype=np.float32) + 0.5)[:, None]
    signed_u = (xs - _CX) / _HALF_SPAN
    return _Canvas(xs, ys, signed_u, np.abs(signed_u), np.where(signed_u < 0, 0, 1))


@dataclass
class _Silhouette:
    """The fluke's outline on the canvas and what the pigmentation needs of it."""

    alpha: np.ndarray  # lobes + tail stock, anti-aliased 0..1
    lobe: np.ndarray
    ped: np.ndarray  # the tail stock (peduncle)
    top: np.ndarray  # trailing edge y per column (serrated)
    bottom: np.ndarray  # leading edge y per column
    uu: np.ndarray  # span position scaled to each lobe's length
    inside_span: np.ndarray
    join_y: float


def _trailing_edge_detail(rng: np.random.Generator, signed_u: np.ndarray) -> np.ndarray:
    """Broad scallops + fine serration + missing chunks (bites) deep enough to see at 64 px, per column."""
    W = CANVAS_W
    serr = np.zeros(W, np.float32)
    amp = rng.uniform(1.0, 3.5)
    for _ in range(2):
        freq = rng.uniform(3, 12)
        serr += amp * rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * freq * signed_u + rng.uniform(0, 2 * np.pi))
    serr += rng.uniform(0.3, 1.2) * np.sin(2 * np.pi * rng.uniform(20, 45) * signed_u + rng.uniform(0, 2 * np.pi))
    serr += rng.uniform(0.3, 1.5) * np.abs(smooth_noise(rng, (1, W), (1, int(rng.uniform(40, 120))))[0])
    for _ in range(int(rng.integers(0, 4))):  # bites, nicks out of the trailing edge
        c = rng.uniform(-0.9, 0.9)
        serr += rng.uniform(5, 16) * np.exp(-(((signed_u - c) / rng.uniform(0.02, 0.06)) ** 2))
    return serr


def _silhouette(rng: np.random.Generator, c: _Canvas) -> _Silhouette:
    """Per-lobe shape parameters (with some asymmetry), the central notch, the trailing edge and the tail stock."""
    xs, ys, signed_u, u, side = c.xs, c.ys, c.signed_u, c.u, c.side
    sweep = rng.uniform(8, 70)
    tip_y = rng.uniform(22, 40)
    p_sweep = rng.uniform(1.0, 2.2)
    chord0 = rng.uniform(58, 92)
    k_tip = rng.uniform(1.4, 3.5)  # blunt (large) or pointed (small) tips
    m_tip = rng.uniform(0.35, 0.75)
    bend = rng.uniform(-25, 25)  # S-curve of the trailing edge
    asym = 1 + rng.uniform(-0.12, 0.12, size=2)  # left/right lobe differences
    span_l, span_r = 1 - rng.uniform(0, 0.05, size=2)
    lobe_span = np.where(side == 0, span_l, span_r)
    uu = np.clip(u / lobe_span, 0, 1.2)
    inside_span = uu < 1.0
    top_smooth = (
        tip_y + sweep * asym[side] * (1 - uu**p_sweep) + bend * uu * (1 - uu) * (1 if rng.random() < 0.5 else -1)
    )
    chord = chord0 * asym[::-1][side] ** 0.5 * np.clip(1 - uu**k_tip, 0, 1) ** m_tip
    # central notch
    notch_depth = rng.uniform(6, 22)
    notch_w = rng.uniform(0.02, 0.07)
    notch = notch_depth * np.exp(-(((signed_u - rng.uniform(-0.01, 0.01)) / notch_w) ** 2))
    serr = _trailing_edge_detail(rng, signed_u)
    top = top_smooth + notch + serr
    bottom = top_smooth + chord + 2.0
    # anti-aliased lobe mask, column by column
    lobe = np.clip(ys - top + 0.5, 0, 1) * np.clip(bottom - ys + 0.5, 0, 1) * inside_span
    # tail stock (peduncle) from under the notch down to the canvas bottom, flaring into the lobes
    join_y = float(tip_y + sweep + chord0 * 0.55)
    pw0 = rng.uniform(16, 26)
    flare = 38 * np.exp(-np.clip(ys - join_y, 0, None) / rng.uniform(10, 20))
    half_w = pw0 + flare
    ped = np.clip(half_w - np.abs(xs - _CX) + 0.5, 0, 1) * np.clip(
        ys - (top_smooth[int(_CX)] + notch_depth) + 0.5, 0, 1
    )
    alpha = np.maximum(lobe, ped).astype(np.float32)
    return _Silhouette(alpha, lobe, ped, top, bottom, uu, inside_span, join_y)


def _pigmentation(
    rng: np.random.Generator, c: _Canvas, sil: _Silhouette
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A large-scale black/white patch layout (what human matchers use; it must survive a 64-128 px crop, so
    patches are tens of canvas pixels at least) and a dark trailing margin: (albedo, white, black, white level)."""
    H, W = CANVAS_H, CANVAS_W
    ys, signed_u, top, bottom, uu = c.ys, c.signed_u, sil.top, sil.bottom, sil.uu
    mask = sil.lobe > 0.5
    kind = rng.random()
    white_frac = (
        rng.uniform(0.05, 0.25) if kind < 0.3 else (rng.uniform(0.25, 0.6) if kind < 0.7 else rng.uniform(0.6, 0.88))
    )
    field = (
        1.0 * smooth_noise(rng, (H, W), (2, 4))
        + 0.8 * smooth_noise(rng, (H, W), (3, 7))
        + 0.35 * smooth_noise(rng, (H, W), (6, 12))
    )
    sym = rng.uniform(0.0, 0.6)  # left/right lobes partly mirror each other
    field = (1 - sym) * field + sym * 0.5 * (field + field[:, ::-1])
    dist_te = ys - top  # distance below the trailing edge
    dist_le = bottom - ys
    field -= rng.uniform(0.3, 1.2) * np.exp(-np.clip(dist_te, 0, None) / rng.uniform(5, 14))  # dark trailing margin
    field -= rng.uniform(0.0, 0.8) * np.exp(-np.clip(dist_le, 0, None) / rng.uniform(5, 15))  # dark leading edge
    field -= rng.uniform(0.0, 1.2) * np.exp(-((signed_u / rng.uniform(0.06, 0.16)) ** 2))  # dark centre
    field -= rng.uniform(0.0, 0.8) * np.clip(uu - 0.85, 0, None) * 6  # dark tips
    field += rng.uniform(0.05, 0.15) * smooth_noise(rng, (H, W), (24, 48))  # ragged patch boundaries
    values = field[mask]
    thr = np.quantile(values, 1 - white_frac) if values.size else 0.0
    white = _sigmoid((field - thr) / (0.04 * (values.std() + 1e-6)))
    black_level = rng.uniform(0.06, 0.14)
    white_level = rng.uniform(0.85, 0.95)
    albedo = black_level + (white_level - black_level) * white
    albedo *= 1 + 0.04 * smooth_noise(rng, (H, W), (30, 60))  # skin texture
    return albedo, white, black_level, white_level


def _marks(rng: np.random.Generator, mask: np.ndarray, white: np.ndarray) -> np.ndarray:
    """Bold spots, speckle, scars, rake marks and barnacle rings: -1..1 (darker..whiter) per canvas pixel."""
    H, W = CANVAS_H, CANVAS_W
    marks = Image.new("L", (W, H), 128)  # 128 = nothing; >128 whiter, <128 darker
    draw = ImageDraw.Draw(marks)
    lobe_ys, lobe_xs = np.nonzero(mask)

    def random_point():
        i = int(rng.integers(0, lobe_xs.size))
        return float(lobe_xs[i]), float(lobe_ys[i])

    if lobe_xs.size:
        for _ in range(int(rng.integers(1, 5))):  # big spots: black on white, white on black
            x, y = random_point()
            rx, ry = rng.uniform(6, 16), rng.uniform(5, 12)
            fill = int(rng.integers(0, 30)) if white[int(y), int(x)] > 0.5 else int(rng.integers(225, 256))
            draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=fill)
        for _ in range(int(rng.integers(0, 15))):  # dark speckles
            x, y = random_point()
            r = rng.uniform(1.0, 3.0)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(0, 50)))
        for _ in range(int(rng.integers(0, 12))):  # white speckles
            x, y = random_point()
            r = rng.uniform(1.0, 2.5)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(210, 256)))
        for _ in range(int(rng.integers(0, 4))):  # long scars (slightly curved), a few pixels wide
            x, y = random_point()
            ang = rng.uniform(0, np.pi)
            length = rng.uniform(30, 100)
            pts = [
                (x + t * length * np.cos(ang) + rng.normal(0, 2), y + t * length * np.sin(ang) + rng.normal(0, 2))
                for t in np.linspace(-0.5, 0.5, 5)
            ]
            draw.line(pts, fill=int(rng.integers(215, 256)), width=int(rng.integers(3, 6)))
        for _ in range(int(rng.integers(0, 2))):  # rake marks: parallel lines
            x, y = random_point()
            ang = rng.uniform(0, np.pi)
            length = rng.uniform(30, 70)
            gap = rng.uniform(6, 10)
            nx, ny = -np.sin(ang), np.cos(ang)
            for j in range(int(rng.integers(2, 5))):
                ox, oy = x + j * gap * nx, y + j * gap * ny
                draw.line(
                    [
                        (ox - length / 2 * np.cos(ang), oy - length / 2 * np.sin(ang)),
                        (ox + length / 2 * np.cos(ang), oy + length / 2 * np.sin(ang)),
                    ],
                    fill=int(rng.integers(215, 256)),
                    width=int(rng.integers(2, 4)),
                )
        for _ in range(int(rng.integers(0, 6))):  # barnacle rings
            x, y = random_point()
            r = rng.uniform(3, 6)
            draw.ellipse([x - r, y - r, x + r, y + r], outline=int(rng.integers(200, 256)), width=2)
    return (np.asarray(marks, np.float32) - 128) / 127.0


@lru_cache(maxsize=2048)
def render_individual(individual_seed: int) -> Individual:
    """Draw one individual's fluke (deterministic in ``individual_seed``): silhouette, pigmentation, marks."""
    rng = np.random.default_rng([int(individual_seed), 1])
    c = _canvas()
    sil = _silhouette(rng, c)
    albedo, white, black_level, white_level = _pigmentation(rng, c, sil)
    mask = sil.lobe > 0.5
    m = _marks(rng, mask, white)
    albedo = np.where(m > 0, albedo + (white_level - albedo) * m, albedo * (1 + m))
    # trailing edge: a thin dark rim (the edge seen against the sky)
    albedo = np.where(c.ys - sil.top < 2.5, np.minimum(albedo, black_level + 0.1), albedo)
    # tail stock: dark dorsal skin
    albedo = np.where((sil.lobe < 0.5) & (sil.ped > 0), black_level, albedo)
    albedo = np.clip(albedo, 0, 1).astype(np.float32)

    cols = np.nonzero(mask.any(axis=0))[0]
    rows = np.nonzero(mask.any(axis=1))[0]
    bbox = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
    te = np.where(sil.inside_span, sil.top, np.nan).astype(np.float32)
    return Individual(albedo=albedo, alpha=sil.alpha, bbox=bbox, trailing_edge=te, join_y=sil.join_y)


# --------------------------------------------------------------------------- photos


def render_sea(rng: np.random.Generator, W: int, H: int, colour: bool) -> tuple[np.ndarray, int | None]:
    """Sea background (H, W, 3) in 0..1 and the horizon row (or None)."""
    palettes = [(0.16, 0.28, 0.40), (0.30, 0.38, 0.45), (0.18, 0.30, 0.30), (0.42, 0.46, 0.50), (0.10, 0.16, 0.24)]
    base = (np.array(palettes[int(rng.integers(0, len(palettes)))]) * rng.uniform(0.7, 1.5)).astype(np.float32)
    if not colour:
        base = np.full(3, base.mean())
    yy = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    grad = 1 + np.float32(rng.uniform(-0.35, 0.35)) * (yy - 0.5)
    waves = (
        0.045 * smooth_noise(rng, (H, W), (max(2, H // 6), max(2, W // 60)))
        + 0.035 * smooth_noise(rng, (H, W), (max(2, H // 3), max(2, W // 25)))
        + 0.02 * rng.standard_normal((H, W), dtype=np.float32)
    )
    crests = np.clip(smooth_noise(rng, (H, W), (max(2, H // 4), max(2, W // 30))) - rng.uniform(1.3, 2.2), 0, None)
    sea = base[None, None, :] * grad + waves[..., None] * np.float32(rng.uniform(0.6, 1.4)) + 0.35 * crests[..., None]
    horizon = None
    if rng.random() < 0.2:
        horizon = int(rng.uniform(0.04, 0.2) * H)
        sky = np.array([0.75, 0.80, 0.86] if colour else [0.8] * 3) * rng.uniform(0.8, 1.15)
        sea[:horizon] = sky[None, None, :] + 0.02 * rng.standard_normal((horizon, W, 1))
    return np.clip(sea, 0, 1).astype(np.float32), horizon


def render_photo(
    individual_seed: int,
    photo_seed: int,
    size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    grayscale: bool | None = None,
    jpeg_quality: int | None = None,
) -> tuple[Image.Image, Box]:
    """One photo of individual ``individual_seed``: ``(PIL image, true fluke box)``.

    ``grayscale=None`` decides from ``photo_seed`` (half the photos); the picture has already been
    through a JPEG round trip at ``jpeg_quality`` (50-95 from the seed when ``None``), so saving it
    again at quality 95 keeps its look.
    """
    pil, box, quality = _render_photo(individual_seed, photo_seed, size, grayscale, jpeg_quality)
    return jpeg_round_trip(pil, quality), box


def jpeg_round_trip(pil: Image.Image, quality: int) -> Image.Image:
    """``pil`` encoded as a JPEG at ``quality`` and decoded again (what a saved photo looks like)."""
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def _pose(
    rng: np.random.Generator, ind: Individual, W: int, H: int, horizon: int | None
) -> tuple[np.ndarray, np.ndarray, tuple, float]:
    """Where the fluke goes: similarity + perspective, fitted inside the frame. Returns the canvas corners
    ``src``, their place in the photo ``dst``, the photo -> canvas coefficients for PIL, and the water line."""
    bx0, by0, bx1, by1 = ind.bbox
    cut = rng.uniform(ind.join_y + 5, min(CANVAS_H, ind.join_y + 60))  # water line on the tail stock, canvas rows
    angle = np.deg2rad(np.clip(rng.normal(0, 7), -15, 15))
    yaw = rng.uniform(-0.25, 0.25)  # one lobe nearer the camera
    pitch = rng.uniform(0.75, 1.1)  # vertical foreshortening
    width_frac = rng.uniform(0.5, 0.92)
    src = np.array([[0, 0], [CANVAS_W, 0], [CANVAS_W, CANVAS_H], [0, CANVAS_H]], float)
    fluke_pts = np.array([[bx0, by0], [bx1, by0], [bx1, cut], [bx0, cut], [_CX, cut]], float)

    def quad(scale: float) -> np.ndarray:
        q = (src - [_CX, CANVAS_H / 2]) * [scale, scale * pitch]
        q[:, 1] *= 1 + yaw * np.sign(q[:, 0]) * 0.5  # nearer lobe looks taller
        q[:, 0] *= 1 + yaw * np.sign(q[:, 0]) * 0.3
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return q @ rot.T

    scale = width_frac * W / (bx1 - bx0)
    jitter = rng.normal(0, 0.012, size=(4, 2)) * [W, H]
    for _ in range(6):
        dst = quad(scale) + jitter * scale * (bx1 - bx0) / W
        fwd = perspective_coeffs(src, dst)  # canvas -> photo (centred)
        pts = apply_homography(fwd, fluke_pts)
        ext = pts.max(axis=0) - pts.min(axis=0)
        if ext[0] <= W * 0.96 and ext[1] <= H * 0.94:
            break
        scale *= 0.9 * min(W * 0.96 / ext[0], H * 0.94 / ext[1], 1.0)
    lo = -pts.min(axis=0) + [2, 2]
    hi = np.array([W, H]) - pts.max(axis=0) - [2, 2]
    low_y = lo[1] + (0 if horizon is None else max(0, horizon - pts.min(axis=0)[1] - lo[1]) * 0)
    tx = rng.uniform(lo[0], max(lo[0], hi[0]))
    ty = rng.uniform(low_y + 0.3 * max(0, hi[1] - low_y), max(low_y, hi[1]))  # flukes sit low in the frame
    dst = dst + [tx, ty]
    inv = perspective_coeffs(dst, src)  # photo -> canvas, for PIL
    return src, dst, inv, cut


def _warp(ind: Individual, cut: float, inv: tuple, W: int, H: int) -> tuple[np.ndarray, np.ndarray, Box]:
    """The fluke's albedo and alpha (cut at the water line) warped into the photo, and its true box."""
    rows = (np.arange(CANVAS_H, dtype=np.float32) + 0.5)[:, None]
    water = np.clip((cut - rows) / 3.0, 0, 1)
    alpha_c = ind.alpha * water
    la = np.stack([ind.albedo * 255, alpha_c * 255], axis=-1).astype(np.uint8)
    warped = Image.fromarray(la, "LA").transform(
        (W, H), Image.Transform.PERSPECTIVE, inv, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0)
    )
    wa = np.asarray(warped, np.float32) / 255.0
    albedo, alpha = wa[..., 0], wa[..., 1]
    ys_a, xs_a = np.nonzero(alpha > 0.5)
    box = Box(float(xs_a.min()), float(ys_a.min()), float(xs_a.max() + 1), float(ys_a.max() + 1))
    return albedo, alpha, box


def light_subject(
    rng: np.random.Generator, sea: np.ndarray, albedo: np.ndarray, alpha: np.ndarray, colour: bool
) -> np.ndarray:
    """Lighting and contrast of the fluke (back-light flattens the pattern), composited over the sea."""
    H, W = albedo.shape
    contrast = rng.uniform(0.55, 1.05)
    brightness = rng.uniform(0.7, 1.12)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    light_dir = rng.normal(size=2)
    ramp = ((xx - W / 2) * np.float32(light_dir[0]) + (yy - H / 2) * np.float32(light_dir[1])) / np.float32(
        np.hypot(*light_dir) * W
    )
    shade = 1 + np.float32(rng.uniform(0, 0.5)) * ramp + 0.05 * smooth_noise(rng, (H, W), (6, 9))
    mid = np.float32(0.45)
    lum = np.clip((mid + (albedo - mid) * np.float32(contrast)) * np.float32(brightness) * shade, 0, 1)
    if colour:
        tint = (np.array([1.0, 1.0, 1.0]) + rng.normal(0, 0.04, 3)).astype(np.float32)
        dark_tint = (np.array([0.9, 0.95, 1.08]) * rng.uniform(0.9, 1.1, 3)).astype(np.float32)
        fluke = lum[..., None] * np.where(lum[..., None] > 0.5, tint, dark_tint)
    else:
        fluke = np.repeat(lum[..., None], 3, axis=2)
    a3 = alpha[..., None]
    img = sea * (1 - a3) + fluke.astype(np.float32) * a3
    return img


def _occluders(
    rng: np.random.Generator, img: np.ndarray, ind: Individual, src: np.ndarray, dst: np.ndarray, cut: float, box: Box
) -> np.ndarray:
    """Water running off the trailing edge, splash at the water line or on a lobe."""
    H, W = img.shape[:2]
    over = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(over)
    te = ind.trailing_edge
    good_cols = np.nonzero(np.isfinite(te))[0]
    for _ in range(int(rng.integers(0, 5))):  # sheets of water falling from the trailing edge
        c = int(rng.choice(good_cols))
        p0 = apply_homography(perspective_coeffs(src, dst), np.array([[c, te[c]]], float))[0]
        length = rng.uniform(0.1, 0.5) * H
        draw.line(
            [(p0[0], p0[1]), (p0[0] + rng.normal(0, 3), p0[1] + length)],
            fill=int(rng.integers(40, 130)),
            width=int(rng.integers(1, 3)),
        )
    fwd = perspective_coeffs(src, dst)
    base_pt = apply_homography(fwd, np.array([[_CX, cut]], float))[0]
    n_splash = int(rng.integers(1, 3)) if rng.random() < 0.5 else 0
    for _ in range(n_splash):
        if rng.random() < 0.8:  # at the water line
            cx, cy = base_pt + rng.normal(0, 1, 2) * [box.width * 0.15, box.height * 0.05]
        else:  # thrown over a lobe
            cx = rng.uniform(box.x0, box.x1)
            cy = rng.uniform(box.y0 + box.height * 0.3, box.y1)
        rx = rng.uniform(0.03, 0.1) * box.width
        ry = rng.uniform(0.05, 0.18) * box.height
        for _ in range(int(rng.integers(3, 9))):  # a blob made of droplets
            ox, oy = rng.normal(0, 0.5, 2) * [rx, ry]
            r = rng.uniform(0.3, 0.8)
            draw.ellipse(
                [cx + ox - rx * r, cy + oy - ry * r, cx + ox + rx * r, cy + oy + ry * r],
                fill=int(rng.integers(170, 256)),
            )
    over = over.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 2.5)))
    o = np.asarray(over, np.float32)[..., None] / 255.0
    foam = np.clip(np.float32(rng.uniform(0.8, 1.0)) + 0.1 * rng.standard_normal((H, W, 1), dtype=np.float32), 0, 1)
    img = img * (1 - o) + foam * o
    return img


def camera_effects(
    rng: np.random.Generator, img: np.ndarray, grayscale: bool, jpeg_quality: int | None
) -> tuple[Image.Image, int]:
    """Exposure, gamma, noise, blur, grayscale; and the JPEG quality to encode with."""
    img = np.clip(img, 0, 1, dtype=np.float32) ** np.float32(rng.uniform(0.85, 1.15))
    img += np.float32(rng.uniform(0.005, 0.02)) * rng.standard_normal(img.shape, dtype=np.float32)
    pil = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    blur = rng.uniform(0, 1.0) if rng.random() < 0.5 else 0.0
    if blur > 0.2:
        pil = pil.filter(ImageFilter.GaussianBlur(blur))
    if grayscale:
        pil = pil.convert("L")
    quality = int(jpeg_quality) if jpeg_quality is not None else int(rng.integers(50, 96))
    return pil, quality


def _render_photo(individual_seed, photo_seed, size, grayscale, jpeg_quality) -> tuple[Image.Image, Box, int]:
    """The picture before JPEG encoding, its box and the JPEG quality to use."""
    W, H = int(size[0]), int(size[1])
    ind = render_individual(int(individual_seed))
    rng = np.random.default_rng([int(individual_seed), int(photo_seed), 2])
    if grayscale is None:
        grayscale = bool(rng.random() < 0.5)
    colour = not grayscale
    sea, horizon = render_sea(rng, W, H, colour)
    src, dst, inv, cut = _pose(rng, ind, W, H, horizon)
    albedo, alpha, box = _warp(ind, cut, inv, W, H)
    img = light_subject(rng, sea, albedo, alpha, colour)
    img = _occluders(rng, img, ind, src, dst, cut, box)
    pil, quality = camera_effects(rng, img, grayscale, jpeg_quality)
    return pil, box, quality


# --------------------------------------------------------------------------- data sets


@dataclass(frozen=True)
class SynthSummary:
    out_dir: str
    n_images: int
    n_individuals: int
    csv_path: str
    boxes_path: str
    images_dir: str = ""
    n_new_whale: int = 0


@dataclass(frozen=True)
class PhotoKind:
    """What a synthetic data set is made of, for :func:`write_dataset`: ``render(individual_seed, photo_seed,
    size, grayscale, jpeg_quality) -> (picture before JPEG, box, quality)`` (a module-level function, so worker
    processes can pickle it), the label prefix, the random stream key and the progress bar's label."""

    render: Callable[..., tuple[Image.Image, Box, int]]
    id_prefix: str
    stream: tuple[int, ...]
    desc: str


FLUKES = PhotoKind(render=_render_photo, id_prefix="w_", stream=(3,), desc="synthetic flukes")


def _write_photo(task) -> Box:
    render, images_dir, name, ind_seed, photo_seed, gray, quality, size = task
    pil, box, _ = render(ind_seed, photo_seed, size, gray, quality)
    with atomic_path(os.path.join(images_dir, name)) as tmp:
        pil.save(tmp, "JPEG", quality=quality)
    return box


def _photo_counts(rng: np.random.Generator, individuals: int, photos, min_photos: int | None) -> np.ndarray:
    if isinstance(photos, (tuple, list)):
        lo, hi = int(photos[0]), int(photos[1])
    else:
        hi = int(photos)
        lo = hi if min_photos is None else int(min_photos)
    if lo < 1 or hi < lo:
        raise ValueError(f"photos per individual must satisfy 1 <= min <= max, got {lo}..{hi}")
    return rng.integers(lo, hi + 1, size=individuals)


def generate_dataset(
    out_dir,
    individuals: int,
    photos,
    seed: int = 0,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    grayscale_fraction: float = 0.5,
    progress: bool = True,
    min_photos: int | None = None,
    new_whale_fraction: float = 0.0,
    workers: int | None = None,
) -> SynthSummary:
    """Write a Kaggle-style data set of synthetic flukes.

    ``photos`` is the number of photos per individual, or a ``(min, max)`` pair (each individual gets
    a uniform count in that range; ``min_photos=k`` with an int ``photos`` does the same). Ids look
    like Kaggle's (``w_`` + 7 hex digits). With ``new_whale_fraction`` > 0 that share of the
    individuals is written with the label ``new_whale`` (as Kaggle's unknown animals).

    Writes ``images/*.jpg``, ``train.csv`` (``Image,Id``) and ``boxes.csv`` (``Image,x0,y0,x1,y1``,
    original pixels, x1/y1 exclusive). ``workers`` processes render in parallel (default: up to 4
    for 200 images or more); the output does not depend on it.
    """
    summary = write_dataset(
        FLUKES,
        out_dir,
        individuals,
        photos,
        seed,
        image_size,
        grayscale_fraction,
        progress,
        min_photos,
        new_whale_fraction,
        workers,
    )
    render_individual.cache_clear()
    return summary


def write_dataset(
    kind: PhotoKind,
    out_dir,
    individuals: int,
    photos,
    seed: int,
    image_size: tuple[int, int],
    grayscale_fraction: float,
    progress: bool,
    min_photos: int | None,
    new_whale_fraction: float,
    workers: int | None,
) -> SynthSummary:
    """The data set layout of :func:`generate_dataset` for any :class:`PhotoKind` (one home for ids, photo
    counts, file names, parallel rendering and the CSVs)."""
    from .types import NEW_WHALE

    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([int(seed), *kind.stream])
    counts = _photo_counts(rng, int(individuals), photos, min_photos)
    ind_seeds = rng.choice(16**7, size=int(individuals), replace=False)
    is_new = rng.random(int(individuals)) < float(new_whale_fraction)
    labels = [NEW_WHALE if new else f"{kind.id_prefix}{int(ind_seed):07x}" for ind_seed, new in zip(ind_seeds, is_new)]
    jobs = _plan_photos(rng, seed, ind_seeds, counts, labels, grayscale_fraction)
    # rendered individual by individual (the canvas cache stays warm); listed by file name
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(jobs) >= 200 else 1
    tasks = [
        (kind.render, str(images_dir), name, ind_seed, photo_seed, gray, quality, tuple(image_size))
        for name, _label, ind_seed, photo_seed, gray, quality in jobs
    ]
    rows, boxes = _render_all(jobs, tasks, workers, progress, kind.desc)
    csv_path, boxes_path = _write_csvs(out, sorted(rows), sorted(boxes, key=lambda nb: nb[0]))
    return SynthSummary(
        out_dir=str(out),
        n_images=len(rows),
        n_individuals=int(individuals),
        csv_path=str(csv_path),
        boxes_path=str(boxes_path),
        images_dir=str(images_dir),
        n_new_whale=int(is_new.sum()),
    )


def _plan_photos(
    rng: np.random.Generator, seed: int, ind_seeds: np.ndarray, counts, labels: list[str], grayscale_fraction: float
) -> list[tuple[str, str, int, int, bool, int]]:
    """(file name, label, individual seed, photo seed, grayscale, JPEG quality) of every photo, drawn in order."""
    jobs = []
    for ind_seed, n, label in zip(ind_seeds, counts, labels):
        for j in range(int(n)):
            photo_seed = int(rng.integers(0, 2**31))
            gray = bool(rng.random() < grayscale_fraction)
            name = hashlib.sha1(f"{seed}:{ind_seed}:{j}".encode()).hexdigest()[:9] + ".jpg"
            quality = int(rng.integers(50, 96))
            jobs.append((name, label, int(ind_seed), photo_seed, gray, quality))
    return jobs


def _render_all(jobs: list, tasks: list, workers: int, progress: bool, desc: str) -> tuple[list, list]:
    """Render and write every photo (in ``workers`` processes when > 1): (name, label) rows and (name, box)."""
    pool = None
    if workers > 1:
        import multiprocessing as mp

        # never plain fork: a caller with threads (torch, a test live server) can deadlock the child
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        pool = ctx.Pool(workers)
        results: Iterable[Box] = pool.imap(_write_photo, tasks, chunksize=16)
    else:
        results = map(_write_photo, tasks)
    if progress:
        from tqdm.auto import tqdm

        results = tqdm(results, total=len(tasks), desc=desc, unit="img")
    rows, boxes = [], []
    try:
        for (name, label, *_), box in zip(jobs, results):
            rows.append((name, label))
            boxes.append((name, box))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return rows, boxes


def _write_csvs(out: Path, rows: list, boxes: list) -> tuple[Path, Path]:
    csv_path = out / "train.csv"
    boxes_path = out / "boxes.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image", "Id"])
        w.writerows(rows)
    with open(boxes_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image", "x0", "y0", "x1", "y1"])
        for name, b in boxes:
            w.writerow([name, f"{b.x0:.1f}", f"{b.y0:.1f}", f"{b.x1:.1f}", f"{b.y1:.1f}"])
    return csv_path, boxes_path
