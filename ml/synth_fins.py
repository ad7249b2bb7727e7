"""Synthetic bottlenose dolphin dorsal fins, for tests and the demo (a second species beside ``ml.synth``).

An *individual* (everything derived from ``individual_seed``) is a dorsal fin on the dolphin's back: a falcate
outline (height, base length, how far the tip rakes back, how convex the leading edge and how concave the
trailing edge), the notches and nicks cut out of the trailing edge (the main identifying feature, as in
photo-identification catalogues), sometimes a missing tip, and the skin tone. The trailing edge is one edge of a
thin fin, so its notches show from both sides (mirrored); the skin marks (rake marks, single scars, pale patches,
small dark lesions) are drawn for each side on its own, so a photo of the left side is never the mirror of the
right side (the profile's ``Mirror.NEVER``). Each individual is drawn once on a canonical canvas per side.

A *photo* (``photo_seed``) picks a side and puts that fin in a sea picture: scale, position, a small roll,
horizontal foreshortening (the fin seen at an angle), how much of the back is out of the water, a wavy water
line with foam, sometimes a bow-wave splash and glints of wet skin, then the sea, light, camera and JPEG steps
shared with the flukes (``ml.synth``). The true fin box (original pixels, x1/y1 exclusive) covers the fin above
the back and the water line, not the back.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .synth import (
    DEFAULT_IMAGE_SIZE,
    PhotoKind,
    SynthSummary,
    camera_effects,
    generate_dataset,
    jpeg_round_trip,
    light_subject,
    perspective_coeffs,
    render_sea,
    smooth_noise,
    write_dataset,
)
from .types import Box

FIN_CANVAS_W, FIN_CANVAS_H = 640, 300  # canonical canvas: the left side, the dolphin heading left
SIDES = ("left", "right")
_SS = 2  # supersampling of the outline masks (anti-aliased edges)

__all__ = [
    "FINS",
    "SYNTHESIZERS",
    "FIN_CANVAS_H",
    "FIN_CANVAS_W",
    "SIDES",
    "Fin",
    "FinSide",
    "generate_fin_dataset",
    "photo_side",
    "render_fin",
    "render_fin_mask",
    "render_fin_photo",
]


# --------------------------------------------------------------------------- individuals


@dataclass(frozen=True)
class FinSide:
    """One side of a fin on the canvas, (FIN_CANVAS_H, FIN_CANVAS_W) each: ``albedo`` 0..1, ``alpha`` 0..1 of
    the fin and the back, ``fin`` 0..1 of the fin alone (above the back line)."""

    albedo: np.ndarray
    alpha: np.ndarray
    fin: np.ndarray


@dataclass(frozen=True)
class Fin:
    """Both sides of one individual's fin; ``bbox`` is the fin's canvas box (the same on both sides, mirrored)."""

    left: FinSide
    right: FinSide
    bbox: tuple[float, float, float, float]
    base_y: float  # the back line's row under the fin
    back_edge_y: float  # the back line's row at the canvas edges (the higher one): a water line above it hides them

    def side(self, name: str) -> FinSide:
        return self.left if name == "left" else self.right


@dataclass(frozen=True)
class _Outline:
    """Shape parameters of a fin, in canvas pixels (left side: leading edge on the left)."""

    x_le: float  # leading-edge insertion
    base: float  # base length (leading to trailing insertion)
    height: float
    rake: float  # tip x behind the leading insertion, in base lengths
    convex: float  # leading-edge bulge
    concave: float  # trailing-edge hollow
    base_y: float  # back line at the fin
    back_curve: float  # how fast the back falls away ahead of and behind the fin
    back_peak: float  # x of the back's highest point

    @property
    def tip(self) -> tuple[float, float]:
        return self.x_le + self.rake * self.base, self.base_y - self.height

    def back_y(self, x: np.ndarray) -> np.ndarray:
        return self.base_y + self.back_curve * (x - self.back_peak) ** 2


def _outline(rng: np.random.Generator) -> _Outline:
    height = rng.uniform(120, 175)
    base = height * rng.uniform(0.8, 1.5)
    x_le = FIN_CANVAS_W * 0.5 - base * rng.uniform(0.5, 0.62)
    return _Outline(
        x_le=float(x_le),
        base=float(base),
        height=float(height),
        rake=float(rng.uniform(0.6, 1.1)),
        convex=float(rng.uniform(0.1, 0.35)),
        concave=float(rng.uniform(0.1, 0.6)),
        base_y=float(rng.uniform(205, 225)),
        back_curve=float(rng.uniform(0.0007, 0.0016)),
        back_peak=float(x_le + base * rng.uniform(0.2, 0.6)),
    )


def _bezier(p0, p1, p2, p3, n: int) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2, p3 = (np.asarray(p, float) for p in (p0, p1, p2, p3))
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _edges(o: _Outline) -> tuple[np.ndarray, np.ndarray]:
    """The leading edge (insertion -> tip) and the trailing edge (tip -> insertion) as point lists."""
    tx, ty = o.tip
    below = o.base_y + 30  # both edges start under the back line, so the fin grows out of the back
    lead = _bezier(
        (o.x_le - 0.15 * o.base, below),
        (o.x_le + 0.12 * o.base, o.base_y - o.height * (0.4 + o.convex)),
        (tx - o.base * (0.25 + 0.3 * o.convex), ty + o.height * 0.08),
        (tx, ty),
        120,
    )
    x_te = o.x_le + o.base
    trail = _bezier(
        (tx, ty),
        (tx - o.base * (0.05 + 0.25 * o.concave), ty + o.height * 0.3),
        (x_te - o.base * 0.3 * o.concave, o.base_y - o.height * 0.25),
        (x_te + 0.2 * o.base, below),
        160,
    )
    return lead, trail


def _notches(rng: np.random.Generator, trail: np.ndarray, o: _Outline) -> list[list[tuple[float, float]]]:
    """Polygons cut out of the trailing edge: V and U notches, shallow scallops, tiny nicks, sometimes the tip."""
    d = np.diff(trail, axis=0)
    seg = np.hypot(d[:, 0], d[:, 1])
    s = np.concatenate([[0], np.cumsum(seg)])
    tangent = d / seg[:, None]
    inward = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)  # to the left of tip -> base: into the fin
    usable = s[-1] * 0.8  # the lowest fifth meets the back
    cuts = []

    def cut(at: float, width: float, depth: float, shape: str) -> list[tuple[float, float]]:
        i = int(np.clip(np.searchsorted(s, at), 0, len(tangent) - 1))
        p, t, n = trail[i], tangent[i], inward[i]
        if shape == "v":
            pts = [
                p - t * width / 2 - n * 3,
                p + n * depth + t * rng.normal(0, width * 0.15),
                p + t * width / 2 - n * 3,
            ]
        else:  # "u": a bite with a rounded bottom
            a = np.linspace(0, np.pi, 9)
            pts = [p - t * width / 2 - n * 3]
            pts += [p + t * (-np.cos(ai) * width / 2) + n * (np.sin(ai) * depth) for ai in a]
            pts += [p + t * width / 2 - n * 3]
        return [(float(x), float(y)) for x, y in pts]

    for _ in range(int(rng.integers(1, 6))):  # notches that identify the fin
        shape = "v" if rng.random() < 0.5 else "u"
        cuts.append(cut(rng.uniform(0.06, 1.0) * usable, rng.uniform(5, 16), rng.uniform(4, 14), shape))
    for _ in range(int(rng.integers(0, 8))):  # small nicks
        cuts.append(cut(rng.uniform(0.03, 1.0) * usable, rng.uniform(2, 5), rng.uniform(1.5, 4), "v"))
    if rng.random() < 0.35:  # a long shallow scallop
        cuts.append(cut(rng.uniform(0.2, 0.9) * usable, rng.uniform(20, 45), rng.uniform(3, 7), "u"))
    if rng.random() < 0.15:  # the tip bitten off
        tx, ty = o.tip
        k = rng.uniform(8, 20)
        cuts.append([(tx - 2 * k, ty - 10), (tx + 2 * k, ty - 10), (tx + k, ty + k), (tx - 2.5 * k, ty + k * 0.6)])
    return cuts


def _masks(rng: np.random.Generator, o: _Outline) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased (alpha of fin + back, alpha of the fin above the back line) for the left side."""
    W, H = FIN_CANVAS_W * _SS, FIN_CANVAS_H * _SS
    lead, trail = _edges(o)
    fin = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(fin)
    draw.polygon([(float(x) * _SS, float(y) * _SS) for x, y in np.concatenate([lead, trail[1:]])], fill=255)
    fin = fin.filter(ImageFilter.GaussianBlur(2.5 * _SS)).point(lambda v: 255 if v >= 128 else 0)  # round the tip
    draw = ImageDraw.Draw(fin)
    for poly in _notches(rng, trail, o):
        draw.polygon([(x * _SS, y * _SS) for x, y in poly], fill=0)
    xs = (np.arange(W) + 0.5) / _SS
    ys = (np.arange(H) + 0.5)[:, None] / _SS
    back = (ys >= o.back_y(xs)[None, :]).astype(np.float32)
    f = np.asarray(fin, np.float32) / 255.0
    alpha = np.maximum(f, back)
    above = f * (1 - back)

    def down(a: np.ndarray) -> np.ndarray:
        return a.reshape(FIN_CANVAS_H, _SS, FIN_CANVAS_W, _SS).mean(axis=(1, 3)).astype(np.float32)

    return down(alpha), down(above)


def _blur(a: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of a 0..1 array (through 8 bits: PIL blurs no float images)."""
    img = Image.fromarray((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), np.float32) / 255.0


def _tone(rng: np.random.Generator, o: _Outline, alpha: np.ndarray, fin: np.ndarray) -> np.ndarray:
    """Skin: a dark grey fin over a slightly lighter back that pales towards the flank, a sheen along the
    leading edge (the rounder side), and smooth skin texture."""
    H, W = FIN_CANVAS_H, FIN_CANVAS_W
    fin_tone = rng.uniform(0.16, 0.3)
    back_tone = fin_tone * rng.uniform(1.0, 1.2)
    ys = (np.arange(H, dtype=np.float32) + 0.5)[:, None]
    below = np.clip((ys - o.back_y(np.arange(W) + 0.5)[None, :]) / 80.0, 0, 1)
    albedo = back_tone + rng.uniform(0.0, 0.12) * below  # paler flank under the cape
    toward_tip = np.clip((o.base_y - ys) / o.height, 0, 1)
    fin_albedo = fin_tone * (1 - rng.uniform(0, 0.2) * toward_tip)
    soft = _blur(fin, 5)  # the fin grows out of the back: no seam
    albedo = albedo * (1 - soft) + fin_albedo * soft
    u = (np.arange(W, dtype=np.float32)[None, :] - o.x_le) / o.base  # 0 at the leading insertion
    albedo *= 1 + soft * rng.uniform(0.05, 0.25) * np.clip(0.5 - u, -0.6, 0.6)  # the rounder leading side is lit
    lead_band = _blur(np.clip(fin - np.roll(fin, 6, axis=1), 0, 1), 3)  # a sheen just inside the leading edge
    albedo = albedo + rng.uniform(0.02, 0.07) * lead_band
    back_line = o.back_y(np.arange(W) + 0.5)[None, :]
    albedo = albedo + rng.uniform(0.02, 0.08) * (1 - soft) * np.exp(-np.clip(ys - back_line, 0, None) / 8)  # wet sheen
    albedo *= 1 + 0.06 * smooth_noise(rng, (H, W), (12, 20)) + 0.025 * smooth_noise(rng, (H, W), (60, 100))
    return albedo.astype(np.float32)


def _side_marks(rng: np.random.Generator, fin: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """One side's skin marks: -1..1 (darker..paler) per canvas pixel: rake marks (parallel tooth lines),
    single scars, pale patches and small dark lesions, mostly on the fin and a few on the back."""
    H, W = FIN_CANVAS_H, FIN_CANVAS_W
    marks = Image.new("L", (W, H), 128)  # 128 = nothing
    draw = ImageDraw.Draw(marks)
    fin_ys, fin_xs = np.nonzero(fin > 0.9)
    body_ys, body_xs = np.nonzero((alpha > 0.9) & (fin < 0.1))
    body_ys, body_xs = body_ys[body_ys < body_ys.min() + 45], body_xs[body_ys < body_ys.min() + 45]

    def point(on_fin: bool = True) -> tuple[float, float]:
        xs, ys = (fin_xs, fin_ys) if on_fin or not body_xs.size else (body_xs, body_ys)
        i = int(rng.integers(0, xs.size))
        return float(xs[i]), float(ys[i])

    for _ in range(int(rng.integers(1, 4))):  # rake marks: 2-5 parallel lines from another dolphin's teeth
        x, y = point(rng.random() < 0.8)
        ang, length, gap = (
            rng.uniform(-0.6, 0.6) + np.pi / 2 * (rng.random() < 0.3),
            rng.uniform(20, 60),
            rng.uniform(4, 7),
        )
        nx, ny, bow = -np.sin(ang), np.cos(ang), rng.normal(0, 4)
        fill, width = int(rng.integers(185, 245)), int(rng.integers(1, 3))
        for j in range(int(rng.integers(2, 6))):
            ox, oy = x + j * gap * nx, y + j * gap * ny
            pts = [
                (
                    ox + t * length * np.cos(ang) + bow * (1 - 4 * t * t) * nx,
                    oy + t * length * np.sin(ang) + bow * (1 - 4 * t * t) * ny,
                )
                for t in np.linspace(-0.5, 0.5, 6)
            ]
            draw.line(pts, fill=fill, width=width)
    for _ in range(int(rng.integers(0, 3))):  # single long scars
        x, y = point(rng.random() < 0.7)
        ang, length = rng.uniform(0, np.pi), rng.uniform(25, 70)
        pts = [
            (x + t * length * np.cos(ang) + rng.normal(0, 1.5), y + t * length * np.sin(ang) + rng.normal(0, 1.5))
            for t in np.linspace(-0.5, 0.5, 5)
        ]
        draw.line(pts, fill=int(rng.integers(200, 256)), width=int(rng.integers(2, 4)))
    if rng.random() < 0.4:  # a pale patch (healed wound, pox): a blob of overlapping spots
        x, y = point()
        size, fill = rng.uniform(6, 16), int(rng.integers(170, 215))
        for _ in range(int(rng.integers(4, 10))):
            ox, oy = rng.normal(0, 0.6, 2) * size
            r = rng.uniform(0.3, 0.7) * size
            draw.ellipse([x + ox - r, y + oy - r, x + ox + r, y + oy + r], fill=fill)
    for _ in range(int(rng.integers(0, 8))):  # small dark lesions and pale dots
        x, y = point(rng.random() < 0.6)
        r = rng.uniform(1.2, 3.0)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(0, 40)) if rng.random() < 0.6 else 230)
    m = (np.asarray(marks.filter(ImageFilter.GaussianBlur(0.6)), np.float32) - 128) / 127.0
    return m * (alpha > 0.5)


@lru_cache(maxsize=1024)
def render_fin(individual_seed: int) -> Fin:
    """Draw one individual's fin (deterministic in ``individual_seed``): one outline, two sides' marks."""
    rng = np.random.default_rng([int(individual_seed), 11])
    o = _outline(rng)
    alpha, fin = _masks(rng, o)
    tone = _tone(rng, o, alpha, fin)
    sides = []
    for k, name in enumerate(SIDES):
        a, f, t = (alpha, fin, tone) if name == "left" else (alpha[:, ::-1], fin[:, ::-1], tone[:, ::-1])
        m = _side_marks(np.random.default_rng([int(individual_seed), 12, k]), f, a)
        albedo = np.where(m > 0, t + 0.4 * m, t * (1 + 0.7 * m))  # scars are paler grey, not white
        sides.append(
            FinSide(np.clip(albedo, 0, 1).astype(np.float32), np.ascontiguousarray(a), np.ascontiguousarray(f))
        )
    cols = np.nonzero((fin > 0.5).any(axis=0))[0]
    rows = np.nonzero((fin > 0.5).any(axis=1))[0]
    bbox = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
    edge = float(min(o.back_y(np.array([0.0, float(FIN_CANVAS_W)]))))
    return Fin(left=sides[0], right=sides[1], bbox=bbox, base_y=o.base_y, back_edge_y=edge)


# --------------------------------------------------------------------------- photos


def _photo_rng(individual_seed: int, photo_seed: int) -> np.random.Generator:
    return np.random.default_rng([int(individual_seed), int(photo_seed), 13])


def photo_side(individual_seed: int, photo_seed: int) -> str:
    """Which side of the fin photo ``photo_seed`` of the individual shows: ``"left"`` or ``"right"``."""
    return SIDES[int(_photo_rng(individual_seed, photo_seed).random() < 0.5)]


def render_fin_photo(
    individual_seed: int,
    photo_seed: int,
    size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    grayscale: bool | None = None,
    jpeg_quality: int | None = None,
) -> tuple[Image.Image, Box]:
    """One photo of the fin of individual ``individual_seed``: ``(PIL image, true fin box)``; as
    :func:`ml.synth.render_photo` (``grayscale=None``: a quarter of the photos, from the seed; already
    through a JPEG round trip)."""
    pil, box, quality = _render_fin_photo(individual_seed, photo_seed, size, grayscale, jpeg_quality)
    return jpeg_round_trip(pil, quality), box


@dataclass(frozen=True)
class _Pose:
    inv: tuple  # photo -> canvas, for PIL
    water_y: float  # the water line's row in the photo
    heading_left: bool  # the left side shows when the dolphin swims to the left: the bow wave is there


def _pose(rng: np.random.Generator, fin: Fin, side: str, W: int, H: int) -> _Pose:
    """Where the fin goes: scale, roll and foreshortening, the box fitted inside the frame, the water line."""
    x0, y0, x1, y1 = fin.bbox
    if side == "right":
        x0, x1 = FIN_CANVAS_W - x1, FIN_CANVAS_W - x0
    # the water line in canvas rows under the fin: from a fin barely out of the water to a high back
    cut = float(min(fin.back_edge_y - 4, fin.base_y + rng.uniform(-0.06, 0.35) * (y1 - y0)))
    visible_bottom = min(cut, y1)
    scale = rng.uniform(0.3, 0.66) * H / (visible_bottom - y0)
    squash = rng.uniform(0.82, 1.05)  # the fin seen at an angle
    angle = np.deg2rad(np.clip(rng.normal(0, 3.5), -9, 9))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([(x0 + x1) / 2, visible_bottom])
    src = np.array([[0, 0], [FIN_CANVAS_W, 0], [FIN_CANVAS_W, FIN_CANVAS_H], [0, FIN_CANVAS_H]], float)
    box_pts = np.array([[x0, y0], [x1, y0], [x1, visible_bottom], [x0, visible_bottom]], float)
    for _ in range(6):
        pts = ((box_pts - centre) * [scale * squash, scale]) @ rot.T
        ext = pts.max(axis=0) - pts.min(axis=0)
        if ext[0] <= W * 0.9 and ext[1] <= H * 0.85:
            break
        scale *= 0.95 * min(W * 0.9 / ext[0], H * 0.85 / ext[1], 1.0)
    lo = -pts.min(axis=0) + [3, 3]
    hi = np.array([W, H]) - pts.max(axis=0) - [3, 3]
    t = np.array(
        [rng.uniform(lo[0], max(lo[0], hi[0])), rng.uniform(lo[1] + 0.35 * max(0, hi[1] - lo[1]), max(lo[1], hi[1]))]
    )
    jitter = rng.normal(0, 0.006, size=(4, 2)) * [W, H]
    dst = ((src - centre) * [scale * squash, scale]) @ rot.T + t + jitter
    water_y = float((((np.array([centre[0], cut]) - centre) * [scale * squash, scale]) @ rot.T + t)[1])
    return _Pose(inv=perspective_coeffs(dst, src), water_y=water_y, heading_left=side == "left")


@dataclass(frozen=True)
class _Layers:
    """A photo's subject before light and water: albedo, alpha (fin + back) and the fin's own alpha, warped
    into the photo and cut at the water line (row per column ``waves``), and the true fin box."""

    albedo: np.ndarray
    alpha: np.ndarray
    fin: np.ndarray
    waves: np.ndarray
    box: Box


def _warp(fs: FinSide, pose: _Pose, rng: np.random.Generator, W: int, H: int) -> _Layers:
    """The side warped into the photo and cut at a wavy water line; the true fin box."""
    stack = np.stack([fs.albedo * 255, fs.alpha * 255, fs.fin * 255], axis=-1).astype(np.uint8)
    warped = Image.fromarray(stack, "RGB").transform(
        (W, H), Image.Transform.PERSPECTIVE, pose.inv, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0)
    )
    wa = np.asarray(warped, np.float32) / 255.0
    waves = pose.water_y + 1.2 * smooth_noise(rng, (1, W), (1, max(2, W // 12)))[0]
    water = np.clip((waves[None, :] - (np.arange(H, dtype=np.float32) + 0.5)[:, None]) / 1.5, 0, 1)
    albedo, alpha, fin = wa[..., 0], wa[..., 1] * water, wa[..., 2] * water
    ys, xs = np.nonzero(fin > 0.5)
    box = Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return _Layers(albedo, alpha, fin, waves, box)


def _water(
    rng: np.random.Generator, img: np.ndarray, alpha: np.ndarray, waves: np.ndarray, pose: _Pose, box: Box
) -> np.ndarray:
    """Foam where the back meets the water, a bow-wave splash on the leading side, glints of wet skin."""
    H, W = alpha.shape
    k = W / DEFAULT_IMAGE_SIZE[0]  # foam and glints were sized for the default photo width
    over = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(over)
    rows = np.clip(np.round(waves - 2).astype(int), 0, H - 1)
    wet = alpha[rows, np.arange(W)] > 0.5  # columns where the body enters the water
    for x in np.nonzero(wet)[0][:: max(1, int(rng.integers(2, 6) * k))]:  # a broken band of foam
        y, rx, ry = waves[x] + rng.normal(0, 0.6) * k, rng.uniform(1.5, 5) * k, rng.uniform(0.5, 1.5) * k
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=int(rng.integers(30, 150)))
    if rng.random() < 0.5 and wet.any():  # bow wave where the back cuts the water on the leading side
        cols = np.nonzero(wet)[0]
        _spray(rng, draw, float(cols[0] if pose.heading_left else cols[-1]), pose.water_y, box)
    ys, xs = np.nonzero(alpha > 0.9)
    for _ in range(int(rng.integers(0, 4)) if xs.size else 0):  # specular glints on wet skin
        i = int(rng.integers(0, xs.size))
        r = rng.uniform(0.4, 1.2) * k
        draw.ellipse([xs[i] - r, ys[i] - r, xs[i] + r, ys[i] + r], fill=int(rng.integers(200, 256)))
    over = over.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.0) * k))
    o = np.asarray(over, np.float32)[..., None] / 255.0
    foam = np.float32(rng.uniform(0.85, 1.0))
    return img * (1 - o) + foam * o


def _spray(rng: np.random.Generator, draw: ImageDraw.ImageDraw, cx: float, cy: float, box: Box) -> None:
    """Droplets thrown up above (cx, cy) and a sheet of white water at their foot."""
    rx, ry = rng.uniform(0.1, 0.3) * box.width, rng.uniform(0.05, 0.25) * box.height
    for _ in range(int(rng.integers(10, 40))):
        ox, oy = rng.normal(0, 0.7, 2) * [rx, ry]
        r = rng.uniform(0.4, 1.6) * max(1.0, box.width / 100)  # droplets grow with the picture
        draw.ellipse([cx + ox - r, cy - abs(oy) - r, cx + ox + r, cy - abs(oy) + r], fill=int(rng.integers(120, 256)))
    for _ in range(int(rng.integers(0, 4))):
        ox = rng.normal(0, 0.5) * rx
        draw.ellipse([cx + ox - rx * 0.4, cy - ry * 0.3, cx + ox + rx * 0.4, cy + 1], fill=int(rng.integers(90, 180)))


def _layout(
    individual_seed, photo_seed, size, grayscale
) -> tuple[np.random.Generator, bool, np.ndarray, _Pose, _Layers]:
    """The draws every photo starts with, in order: side, grayscale, sea, pose, water line.
    Returns the generator (for what follows), grayscale, the sea, the pose and the warped layers."""
    W, H = int(size[0]), int(size[1])
    fin = render_fin(int(individual_seed))
    rng = _photo_rng(individual_seed, photo_seed)
    side = SIDES[int(rng.random() < 0.5)]  # photo_side() draws the same
    if grayscale is None:
        grayscale = bool(rng.random() < 0.25)
    sea, _horizon = render_sea(rng, W, H, not grayscale)
    pose = _pose(rng, fin, side, W, H)
    return rng, bool(grayscale), sea, pose, _warp(fin.side(side), pose, rng, W, H)


def render_fin_mask(
    individual_seed: int, photo_seed: int, size: tuple[int, int] = DEFAULT_IMAGE_SIZE
) -> tuple[np.ndarray, Box]:
    """The fin's alpha (0..1, (H, W)) in photo ``photo_seed`` of the individual, above the back and the water
    and before any splash, with the photo's box: what :func:`render_fin_photo` boxes, for tests and checks."""
    _rng, _gray, _sea, _pose_, layers = _layout(individual_seed, photo_seed, size, None)
    return layers.fin, layers.box


def _render_fin_photo(individual_seed, photo_seed, size, grayscale, jpeg_quality) -> tuple[Image.Image, Box, int]:
    """The picture before JPEG encoding, its box and the JPEG quality to use."""
    rng, grayscale, sea, pose, layers = _layout(individual_seed, photo_seed, size, grayscale)
    img = light_subject(rng, sea, layers.albedo, layers.alpha, not grayscale)
    img = _water(rng, img, layers.alpha, layers.waves, pose, layers.box)
    pil, quality = camera_effects(rng, img, grayscale, jpeg_quality)
    return pil, layers.box, quality


# --------------------------------------------------------------------------- data sets

FINS = PhotoKind(render=_render_fin_photo, id_prefix="d_", stream=(3, 17), desc="synthetic dorsal fins")


def generate_fin_dataset(
    out_dir,
    individuals: int,
    photos,
    seed: int = 0,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    progress: bool = True,
    workers: int | None = None,
    min_photos: int | None = None,
    new_whale_fraction: float = 0.0,
    grayscale_fraction: float = 0.25,
) -> SynthSummary:
    """Write a data set of synthetic bottlenose dolphin dorsal fins, laid out as :func:`ml.synth.generate_dataset`
    (``images/*.jpg``, ``train.csv`` ``Image,Id``, ``boxes.csv`` ``Image,x0,y0,x1,y1`` around the fin, original
    pixels, x1/y1 exclusive). Ids are ``d_`` + 7 hex digits; ``new_whale_fraction`` of the individuals are
    labelled ``new_whale`` (the unknown-animal label the ml code uses for every species). ``photos``,
    ``min_photos`` and ``workers`` as for flukes; each photo shows the left or the right side."""
    summary = write_dataset(
        FINS,
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
    render_fin.cache_clear()
    return summary


# the species profiles ml can synthesize, and their data set writers (the CLI, seed_demo and bench/ dispatch here)
SYNTHESIZERS = {"humpback_fluke": generate_dataset, "dolphin_fin": generate_fin_dataset}
