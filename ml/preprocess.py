"""From a photo and a fluke box to the network's input — seed 000, exactly.

1. margins around the box: ``x0 -= 0.10*dx; x1 += 0.15*dx + 1; y0 -= 0.10*dy; y1 += 0.10*dy + 1``,
   clipped to the image (:func:`expand_box`);
2. widen to the fluke anisotropy 2.09: if ``dx > 2.09*dy`` grow y symmetrically to ``dx/2.09``,
   else grow x symmetrically to ``2.09*dy`` — *not* clipped, the outside is filled (:func:`widen_to_aspect`);
3. affine map of that box onto ``size x size``, bilinear, border filled with the image mean, in
   grayscale (:func:`affine_crop`);
4. per-image standardisation ``z = (x - mean) / (std + eps)`` (:func:`standardize`).

Geometry convention: continuous pixel coordinates, pixel ``i`` covers ``[i, i+1)``; the box
``[x0, x1) x [y0, y1)`` maps exactly onto the output ``[0, size) x [0, size)``, so output pixel
centre ``u + 0.5`` samples the input at ``x0 + (u + 0.5) * (x1 - x0) / size``.

One addition to the seed, on by default in :func:`affine_crop` (``antialias=True``): when the box is
at least twice as large as the output, the picture is first reduced by an integer factor with a box
filter (same geometry, coordinates divided by the factor), so that bilinear sampling of a large photo
does not alias. Training and inference go through the same function, so they stay consistent.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image

from .profiles import HUMPBACK_FLUKE, Crop
from .types import Box

FLUKE_CROP = HUMPBACK_FLUKE.crop  # seed 000: margins 10 % left, 15 % right, 10 % top and bottom; 2.09 aspect

ASPECT = 2.09  # the humpback fluke profile's (ml.profiles.HUMPBACK_FLUKE.crop)
DEFAULT_SIZE = 224

__all__ = [
    "ASPECT",
    "DEFAULT_SIZE",
    "expand_box",
    "widen_to_aspect",
    "crop_box",
    "flip_box_180",
    "affine_crop",
    "standardize",
    "preprocess",
    "EvalTransform",
    "TrainTransform",
]


def expand_box(box: Box, width: int, height: int, crop: Crop | None = None) -> Box:
    """Seed-000 error margins (+1 makes the right/bottom edge exclusive), clipped to the image; ``crop``
    (an ``ml.profiles.Crop``) gives another species profile's margins."""
    m = crop or FLUKE_CROP
    dx = box.x1 - box.x0
    dy = box.y1 - box.y0
    x0 = box.x0 - m.margin_left * dx
    x1 = box.x1 + m.margin_right * dx + 1
    y0 = box.y0 - m.margin_top * dy
    y1 = box.y1 + m.margin_bottom * dy + 1
    return Box(max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1))


def widen_to_aspect(box: Box, aspect: float = ASPECT) -> Box:
    """Grow the short direction symmetrically so that width / height == ``aspect``."""
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    dx, dy = x1 - x0, y1 - y0
    if dx > aspect * dy:
        grow = (dx / aspect - dy) / 2
        y0, y1 = y0 - grow, y1 + grow
    else:
        grow = (aspect * dy - dx) / 2
        x0, x1 = x0 - grow, x1 + grow
    return Box(x0, y0, x1, y1)


def crop_box(box: Box, width: int, height: int, aspect: float = ASPECT, crop: Crop | None = None) -> Box:
    """:func:`expand_box` then :func:`widen_to_aspect`: the region that becomes the network input (a species
    profile's ``crop`` sets both the margins and the aspect)."""
    if crop is not None:
        aspect = crop.aspect
    return widen_to_aspect(expand_box(box, width, height, crop), aspect)


def flip_box_180(box: Box, width: int, height: int) -> Box:
    """Where ``box`` lands after the picture is rotated by 180 degrees."""
    return Box(width - box.x1, height - box.y1, width - box.x0, height - box.y0)


def _to_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def _grayscale(image: Image.Image) -> Image.Image:
    if image.mode in ("L", "F"):
        return image
    if image.mode not in ("RGB",):
        from .images import to_rgb_or_l  # local import: images imports nothing from here

        image = to_rgb_or_l(image)
    return image.convert("L")


def affine_crop(image, box: Box, size: int = DEFAULT_SIZE, *, antialias: bool = True) -> np.ndarray:
    """Map ``box`` (already expanded/widened, may extend outside) onto a ``size x size`` grayscale
    float32 array (values 0..255), bilinear, outside filled with the picture's mean."""
    gray = _grayscale(_to_pil(image))
    if box.x1 <= box.x0 or box.y1 <= box.y0:
        raise ValueError(f"empty box {box}")
    width, height = gray.size
    inside = box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height
    mean = 0.0 if inside else _mean(gray)  # a box inside the photo never samples the fill: skip a pass
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    factor = int(min((x1 - x0) / size, (y1 - y0) / size)) if antialias else 1
    # Work on the part of the photo the sampling can reach: the result is the same to the bit, and
    # reduce / convert("F") / transform no longer pass over the rest of a large photo.
    gray, (ox, oy) = _reachable(gray, box, max(factor, 1))
    x0, y0, x1, y1 = x0 - ox, y0 - oy, x1 - ox, y1 - oy
    if factor >= 2:
        gray = gray.reduce(factor)
        x0, y0, x1, y1 = x0 / factor, y0 / factor, x1 / factor, y1 / factor
    fimg = gray.convert("F") if gray.mode != "F" else gray
    sx = (x1 - x0) / size
    sy = (y1 - y0) / size
    out = fimg.transform(
        (size, size),
        Image.Transform.AFFINE,
        (sx, 0.0, x0, 0.0, sy, y0),
        resample=Image.Resampling.BILINEAR,
        fillcolor=mean,
    )
    return np.asarray(out, dtype=np.float32).copy()


_LEVELS = np.arange(256, dtype=np.float64)


def _mean(gray: Image.Image) -> float:
    """The photo's mean grey level, exactly: for 8-bit pixels from PIL's histogram (one pass in C,
    no copy of the photo; a 12 MP photo 13.6 -> 5.2 ms right after a ResNet forward), else in float64."""
    if gray.mode == "L":
        counts = np.asarray(gray.histogram(), dtype=np.float64)  # integers < 2**53: the dot is exact
        return float(counts @ _LEVELS) / (gray.size[0] * gray.size[1])
    return float(np.asarray(gray).mean(dtype=np.float64))


def _reachable(gray: Image.Image, box: Box, factor: int) -> tuple[Image.Image, tuple[int, int]]:
    """The rectangle of ``gray`` that bilinear sampling inside ``box`` can touch, with a 2-pixel
    margin (so that no tap near the cut sees a missing neighbour), widened to whole ``factor``
    blocks aligned with the photo's origin (``reduce`` averages those blocks). Returns the
    rectangle and its top-left corner in the photo."""
    width, height = gray.size
    cx0 = max(0, math.floor(box.x0) - 2)
    cy0 = max(0, math.floor(box.y0) - 2)
    cx1 = min(width, math.ceil(box.x1) + 2)
    cy1 = min(height, math.ceil(box.y1) + 2)
    if cx1 <= cx0 or cy1 <= cy0:  # the box lies wholly outside: every output pixel is the fill
        return gray, (0, 0)
    cx0, cy0 = cx0 - cx0 % factor, cy0 - cy0 % factor
    cx1, cy1 = min(width, cx1 + (-cx1) % factor), min(height, cy1 + (-cy1) % factor)
    if (cx0, cy0, cx1, cy1) == (0, 0, width, height):
        return gray, (0, 0)
    return gray.crop((cx0, cy0, cx1, cy1)), (cx0, cy0)


def standardize(a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-image ``(a - mean) / (std + eps)`` as float32 (a flat image becomes zeros)."""
    a = np.asarray(a, dtype=np.float32)
    return ((a - a.mean()) / (a.std() + eps)).astype(np.float32)


def preprocess(
    image, box: Box | None = None, size: int = DEFAULT_SIZE, upside_down: bool = False, crop: Crop | None = None
) -> np.ndarray:
    """Photo (+ fluke box in its pixels, or ``None`` for the whole picture) → standardized float32
    ``(size, size)`` crop. ``upside_down`` rotates the picture by 180 degrees first (the box with it).
    ``crop``: a species profile's margins and aspect (``ml.profiles``; default: the humpback fluke's)."""
    pil = _to_pil(image)
    width, height = pil.size
    if box is None:
        box = Box(0.0, 0.0, float(width), float(height))
    if upside_down:
        pil = pil.rotate(180)
        box = flip_box_180(box, width, height)
    return standardize(affine_crop(pil, crop_box(box, width, height, crop=crop), size))


# --------------------------------------------------------------------------- tensor presets


def _as_tensor(crop, size: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(crop, dtype=np.float32)) if not isinstance(crop, torch.Tensor) else crop.float()
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] != 1:
        raise ValueError(f"expected a (size, size) crop, got shape {tuple(t.shape)}")
    if t.shape[-2:] != (size, size):
        t = torch.nn.functional.interpolate(t[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    return t.contiguous()


class EvalTransform:
    """Standardized ``(size, size)`` crop → ``torch.FloatTensor`` ``(1, size, size)``; no augmentation."""

    def __init__(self, size: int = DEFAULT_SIZE):
        self.size = int(size)

    def __call__(self, crop) -> torch.Tensor:
        return _as_tensor(crop, self.size)

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size})"


class PhotometricTransform:
    """Real-photo appearance changes on a standardized crop: contrast and gamma, blur, JPEG, sensor noise
    and occlusion (``torchvision.transforms.v2`` functionals; the noise from this transform's own generator, so
    a seed reproduces every draw), each applied with probability ``p``.

    Why: seed 000's augmentation is geometric only, and a real fluke photo differs from its twin mostly in
    light, haze, focus, compression and what covers part of the fluke (water, a bird, the boat's rail);
    issue 10 item 5. Each op works on the crop mapped to [0, 1] by its own min and max; the result is
    standardized again (zero mean, unit variance), as every crop the model sees is. ``strength`` scales the
    ranges (``ml.train``'s augmentation warm-up ramps it as it does the geometric ones).
    """

    def __init__(
        self,
        p: float = 0.5,
        contrast: float = 0.4,
        gamma: float = 0.4,
        blur_sigma: float = 1.5,
        jpeg_quality: tuple[int, int] = (25, 90),
        noise_sigma: float = 0.05,
        occlusion: float = 0.25,
        seed: int | None = None,
    ):
        self.p = float(p)
        self.contrast, self.gamma, self.blur_sigma = float(contrast), float(gamma), float(blur_sigma)
        self.jpeg_quality = (int(jpeg_quality[0]), int(jpeg_quality[1]))
        self.noise_sigma, self.occlusion = float(noise_sigma), float(occlusion)
        self.strength = 1.0
        self._rng = np.random.default_rng(seed)

    def reseed(self, seed) -> None:
        self._rng = np.random.default_rng(seed)

    def sample_params(self) -> dict:
        """One crop's draw: None for each op not applied this time."""
        rng, k = self._rng, self.strength

        def maybe(value):
            return value if rng.random() < self.p else None

        worst = round(self.jpeg_quality[1] - k * (self.jpeg_quality[1] - self.jpeg_quality[0]))
        side = float(np.sqrt(rng.uniform(0.02, max(0.02, k * self.occlusion))))
        return {
            "contrast": maybe(float(rng.uniform(1 - k * self.contrast, 1 + k * self.contrast))),
            "gamma": maybe(float(np.exp(rng.uniform(-k * self.gamma, k * self.gamma)))),
            "blur": maybe(float(rng.uniform(0.1, max(0.1, k * self.blur_sigma)))),
            "jpeg": maybe(int(rng.integers(min(worst, self.jpeg_quality[1]), self.jpeg_quality[1] + 1))),
            "noise": maybe(float(rng.uniform(0.0, k * self.noise_sigma))),
            "occlusion": maybe((side, float(rng.uniform(0, 1)), float(rng.uniform(0, 1)), float(rng.random()))),
        }

    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        """One standardized ``(1, S, S)`` (or ``(S, S)``) crop, photometrically changed and standardized again."""
        from torchvision.transforms.v2 import functional as TF

        t = torch.as_tensor(crop).float()
        t = t[None] if t.dim() == 2 else t
        lo, hi = float(t.min()), float(t.max())
        u = (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)
        q = self.sample_params()
        if q["contrast"] is not None:
            u = TF.adjust_contrast(u, q["contrast"])
        if q["gamma"] is not None:
            u = TF.adjust_gamma(u.clamp(0, 1), q["gamma"])
        if q["blur"] is not None:
            u = TF.gaussian_blur(u, kernel_size=2 * int(np.ceil(2 * q["blur"])) + 1, sigma=q["blur"])
        if q["jpeg"] is not None:
            u8 = (u.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
            u = TF.jpeg(u8, quality=q["jpeg"]).to(t.device).float() / 255
        if q["noise"] is not None and q["noise"] > 0:  # drawn from our generator (v2's uses torch's global one)
            noise = torch.as_tensor(self._rng.standard_normal(tuple(u.shape)), dtype=u.dtype, device=u.device)
            u = (u + q["noise"] * noise).clamp(0, 1)
        if q["occlusion"] is not None:
            side, fy, fx, value = q["occlusion"]
            h = max(1, int(side * u.shape[-2]))
            w = max(1, int(side * u.shape[-1]))
            u = TF.erase(u, int(fy * (u.shape[-2] - h)), int(fx * (u.shape[-1] - w)), h, w, torch.tensor(value))
        std = u.std()
        return ((u - u.mean()) / (std if float(std) > 1e-6 else 1.0)).contiguous()

    def apply_batch(self, x: torch.Tensor) -> torch.Tensor:
        """``__call__`` on each crop of a ``(B, 1, S, S)`` batch (JPEG is per image, so per crop)."""
        return torch.stack([self(c) for c in x]) if len(x) else x

    def __repr__(self) -> str:
        return (
            f"PhotometricTransform(p={self.p}, contrast={self.contrast}, gamma={self.gamma}, "
            f"blur_sigma={self.blur_sigma}, jpeg_quality={self.jpeg_quality}, noise_sigma={self.noise_sigma}, "
            f"occlusion={self.occlusion})"
        )


class TrainTransform:
    """Seed-000 augmentation on the standardized crop: rotation up to ``±rotation`` degrees, zoom
    ``1±zoom``, shift up to ``±shift`` of width/height, horizontal flip only when ``hflip`` (never a
    vertical flip). Bilinear, outside filled with 0 (the crop mean after standardisation).

    ``seed`` makes the sequence reproducible. In ``DataLoader`` workers the generator is re-seeded
    from the worker's own seed, so workers never repeat each other's augmentations.
    """

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        hflip: bool = False,
        rotation: float = 20,
        zoom: float = 0.2,
        shift: float = 0.2,
        seed: int | None = None,
        photometric: PhotometricTransform | None = None,
    ):
        self.size = int(size)
        self.photometric = photometric  # applied before the geometric warp (ml.train's photometric option)
        self.hflip = bool(hflip)
        self.rotation = float(rotation)
        self.zoom = float(zoom)
        self.shift = float(shift)
        self.seed = seed
        self.strength = 1.0  # scales all three ranges (ml.train's augmentation warm-up ramps it to 1)
        self._rng = np.random.default_rng(seed)
        self._pid = os.getpid()
        self._worker_seed: int | None = None

    def reseed(self, seed) -> None:
        """Restart the draw from ``seed`` (ml.train does it every epoch, so a resumed run draws the same
        augmentations as an uninterrupted one; loader worker processes keep their own generators)."""
        self._rng = np.random.default_rng(seed)
        self._pid = os.getpid()
        if self.photometric is not None:
            self.photometric.reseed([*np.atleast_1d(seed).tolist(), 7] if seed is not None else None)

    def _generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self._rng = np.random.default_rng([info.seed % (2**63), 0 if self.seed is None else int(self.seed)])
        elif info is None and os.getpid() != self._pid:  # forked by something else than a DataLoader
            self._pid = os.getpid()
            self._rng = np.random.default_rng(None if self.seed is None else [int(self.seed), self._pid])
        return self._rng

    def sample_params(self) -> dict:
        rng = self._generator()
        rotation, zoom, shift = (self.strength * v for v in (self.rotation, self.zoom, self.shift))
        return {
            "angle": float(rng.uniform(-rotation, rotation)),
            "scale": float(rng.uniform(1 - zoom, 1 + zoom)),
            "translate": [
                float(rng.uniform(-shift, shift) * self.size),
                float(rng.uniform(-shift, shift) * self.size),
            ],
            "flip": bool(self.hflip and rng.random() < 0.5),
        }

    def __call__(self, crop) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        t = _as_tensor(crop, self.size)
        if self.photometric is not None:
            self.photometric.strength = self.strength
            t = self.photometric(t)
        p = self.sample_params()
        if p["flip"]:
            t = torch.flip(t, dims=[-1])
        t = TF.affine(
            t,
            angle=p["angle"],
            translate=p["translate"],
            scale=p["scale"],
            shear=[0.0, 0.0],
            interpolation=InterpolationMode.BILINEAR,
            fill=0.0,
        )
        return t.contiguous().float()

    def apply_batch(self, x: torch.Tensor) -> torch.Tensor:
        """The same augmentation for a whole batch ``(B, 1, S, S)`` (or ``(B, S, S)``) in one
        ``affine_grid`` + ``grid_sample`` call: per-sample parameters from the same generator and
        distributions as ``__call__`` (rotation about the centre, zoom > 1 enlarges, shift in
        pixels, optional horizontal flip), bilinear, outside = 0. ``ml.train`` calls it on each
        batch in the training process, on the training device: one warp per batch instead of one
        per crop, and the generator stays in one process, so the warm-up's strength changes and a
        resumed run's draws need no loader workers to be restarted or re-seeded."""
        import math

        import torch.nn.functional as F

        x = torch.as_tensor(x).float()
        if x.dim() == 3:
            x = x[:, None]
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        n = x.shape[0]
        if n == 0:
            return x.contiguous()
        if self.photometric is not None:
            self.photometric.strength = self.strength
            x = self.photometric.apply_batch(x)
        params = [self.sample_params() for _ in range(n)]
        theta = torch.zeros(n, 2, 3, dtype=torch.float32)
        for i, p in enumerate(params):
            a = math.radians(p["angle"])
            c, s = math.cos(a) / p["scale"], math.sin(a) / p["scale"]
            fx = -1.0 if p["flip"] else 1.0  # flip first (input side), then the affine
            # output (normalised) -> input: in = R(-angle)/scale @ (out - t)
            tx, ty = 2 * p["translate"][0] / self.size, 2 * p["translate"][1] / self.size
            theta[i, 0] = torch.tensor([fx * c, fx * s, -fx * (c * tx + s * ty)])
            theta[i, 1] = torch.tensor([-s, c, -(-s * tx + c * ty)])
        grid = F.affine_grid(theta.to(x.device), [n, x.shape[1], self.size, self.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).contiguous()

    def __repr__(self) -> str:
        return (
            f"TrainTransform(size={self.size}, hflip={self.hflip}, rotation={self.rotation}, "
            f"zoom={self.zoom}, shift={self.shift}, seed={self.seed}, photometric={self.photometric!r})"
        )
