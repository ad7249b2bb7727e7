"""Fluke localizer (seed 003): a small CNN that regresses the fluke's box.

Input: the photo in grayscale, letterboxed (aspect kept, centred, padded with the
image mean) onto an ``image_size`` square (default 128), standardised per image,
plus two coordinate channels (CoordConv: x and y in -1..1) that make position
regression easy for a small network.

Network: five conv3x3-BN-ReLU blocks with 2x max-pooling (8-16-32-64-96 channels),
adaptive average pooling to 4x4, a 128-unit hidden layer, then three heads
(~280k parameters in all). The first design (16-32-64-96-128, ~450k) boxed held-out photos
no better (bench/localizer_design.py: IoU 0.755 vs 0.762 and 0.757 vs 0.759 on two seeds), took
twice as long to train and 0.3 ms more per photo; files saved with it still load. The heads:

* box: ``(cx, cy, w, h)`` with sigmoid outputs, normalised to the letterbox canvas;
* upside-down logit: trained by rotating half the training photos by 180 degrees
  (boxes mapped accordingly), so the pipeline can turn such photos upright
  (seed 000, step 2) -- exposed as ``Localization.upside_down``;
* confidence = a **predicted-IoU head**: a sigmoid output trained (MSE) to predict
  the IoU between the predicted box and the true box of the same training
  sample. We chose it over flip-TTA agreement because it costs no extra forward
  pass and is directly in IoU units, so the threshold has a meaning ("the
  localizer expects its box to overlap the fluke by at least 50%").

When the confidence is below ``conf_threshold`` (default 0.5) ``predict`` falls back
to ``default_localization``: the central region x 5%..95%, y 15%..85% of the photo,
``flagged=True`` so that a moderator checks the box.

Loss: smooth-L1 on (cx, cy, w, h) + (1 - GIoU) + BCE(upside-down) + 0.5 * MSE(IoU head).
Augmentation: random 180-degree rotation (p=0.5), horizontal flip (p=0.5; fine for
*where* the fluke is, even though markings are not symmetric), random shift (+-12%) and
zoom (0.8..1.2) of the canvas, contrast/noise jitter.

Guard: a localizer that does not beat the default box on its validation photos is not
shipped (``metrics["shipped"] is False``): ``train_localizer`` sets its threshold to infinity,
``ml.train`` writes no ``localizer.pt``, and ``ml.identifier.Identifier`` ignores such a file,
so every photo gets the flagged default box.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from ml.types import Box, Localization, TrainProgress

FORMAT_VERSION = 1
MIN_STEPS = 400  # default training length floor for train_localizer (see its doc)
DEFAULT_FRACTIONS = (0.05, 0.15, 0.95, 0.85)  # x0, y0, x1, y1 of the default box


def default_localization(width: int, height: int, confidence: float = 0.0, upside_down: bool = False) -> Localization:
    """The documented fallback box: x 5%..95%, y 15%..85% of the photo; always flagged."""
    fx0, fy0, fx1, fy1 = DEFAULT_FRACTIONS
    box = Box(fx0 * width, fy0 * height, fx1 * width, fy1 * height)
    return Localization(box=box, confidence=float(confidence), source="default", flagged=True, upside_down=upside_down)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0.0 when either is empty)."""
    ix = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = ix * iy
    union = max(0.0, a.width) * max(0.0, a.height) + max(0.0, b.width) * max(0.0, b.height) - inter
    return float(inter / union) if union > 0 else 0.0


def _iou_cxcywh(p: torch.Tensor, t: torch.Tensor, generalized: bool = False) -> torch.Tensor:
    px0, py0, px1, py1 = p[:, 0] - p[:, 2] / 2, p[:, 1] - p[:, 3] / 2, p[:, 0] + p[:, 2] / 2, p[:, 1] + p[:, 3] / 2
    tx0, ty0, tx1, ty1 = t[:, 0] - t[:, 2] / 2, t[:, 1] - t[:, 3] / 2, t[:, 0] + t[:, 2] / 2, t[:, 1] + t[:, 3] / 2
    iw = (torch.minimum(px1, tx1) - torch.maximum(px0, tx0)).clamp(min=0)
    ih = (torch.minimum(py1, ty1) - torch.maximum(py0, ty0)).clamp(min=0)
    inter = iw * ih
    union = p[:, 2] * p[:, 3] + t[:, 2] * t[:, 3] - inter
    iou_ = inter / union.clamp(min=1e-6)
    if not generalized:
        return iou_
    # GIoU: minus the fraction of the enclosing box covered by neither (a gradient even without overlap)
    enclosing = (
        (torch.maximum(px1, tx1) - torch.minimum(px0, tx0)) * (torch.maximum(py1, ty1) - torch.minimum(py0, ty0))
    ).clamp(min=1e-6)
    return iou_ - (enclosing - union) / enclosing


# ---------------------------------------------------------------------- input
def _as_image(item) -> Image.Image:
    if isinstance(item, Image.Image):
        return item
    from ml.images import load_image

    return load_image(item)


def letterbox(image: Image.Image, size: int) -> tuple[np.ndarray, float, float, float]:
    """Grayscale, aspect-preserving resize onto a size x size canvas (centred, padded
    with the mean), standardised. Returns (canvas float32, scale, offset_x, offset_y):
    canvas pixel = original pixel * scale + offset."""
    gray = image if image.mode == "L" else image.convert("L")
    w, h = gray.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = np.asarray(gray.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.float32)
    mean = float(small.mean())
    canvas = np.full((size, size), mean, dtype=np.float32)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    canvas[oy : oy + nh, ox : ox + nw] = small
    canvas = (canvas - mean) / (float(small.std()) + 1e-6)
    return canvas, scale, float(ox), float(oy)


@functools.lru_cache(maxsize=8)
def _coord_channels(size: int) -> torch.Tensor:
    """(2, size, size): x and y in -1..1. Cached: built on every forward it cost ~0.05 ms a photo."""
    with torch.inference_mode(False):  # a normal tensor, so training may use it too
        lin = torch.linspace(-1, 1, size)
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        return torch.stack([xx, yy])


# ---------------------------------------------------------------------- network
WIDTHS = (8, 16, 32, 64, 96)
HIDDEN = 128
WIDTHS_V1 = (16, 32, 64, 96, 128)  # the first design; files saved without "widths" use it
HIDDEN_V1 = 128


class LocalizerNet(nn.Module):
    def __init__(self, widths: Sequence[int] = WIDTHS, hidden: int = HIDDEN):
        super().__init__()
        self.widths, self.hidden_size = tuple(int(w) for w in widths), int(hidden)
        layers, c = [], 3
        for w in widths:
            layers += [
                nn.Conv2d(c, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4))
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(c * 16, hidden), nn.ReLU(inplace=True))
        self.box = nn.Linear(hidden, 4)
        self.upside = nn.Linear(hidden, 1)
        self.conf = nn.Linear(hidden, 1)
        with torch.no_grad():  # start near the default box: centre, 90% x 70%
            self.box.bias.copy_(torch.logit(torch.tensor([0.5, 0.5, 0.9, 0.7])))

    def forward(self, x: torch.Tensor):
        """x: (B, 1, S, S) standardised canvases -> (box (B,4) in 0..1, upside logit (B,), conf (B,))."""
        coords = _coord_channels(x.shape[-1]).to(x.device, x.dtype).expand(x.shape[0], -1, -1, -1)
        h = self.hidden(self.features(torch.cat([x, coords], dim=1)))
        return torch.sigmoid(self.box(h)), self.upside(h).squeeze(1), torch.sigmoid(self.conf(h)).squeeze(1)


def _fused_for_inference(net: LocalizerNet) -> LocalizerNet:
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(net).eval()
    layers, fused, i = list(fast.features), [], 0
    while i < len(layers):
        block = layers[i : i + 4]
        if [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]:
            conv, bn = cast(nn.Conv2d, block[0]), cast(nn.BatchNorm2d, block[1])
            fused += [fuse_conv_bn_eval(conv, bn), block[3], nn.ReLU(inplace=True)]
            i += 4
        else:
            fused.append(layers[i])
            i += 1
    fast.features = nn.Sequential(*fused)
    return fast.to(memory_format=torch.channels_last)


# ---------------------------------------------------------------------- inference
class Localizer:
    def __init__(
        self,
        net: LocalizerNet | None = None,
        image_size: int = 128,
        conf_threshold: float = 0.5,
        metrics: dict | None = None,
        device: str | torch.device = "cpu",
    ):
        self.device = torch.device(device)
        self.net = (net or LocalizerNet()).to(self.device).eval()
        self.image_size = int(image_size)
        self.conf_threshold = float(conf_threshold)
        self.metrics = dict(metrics or {})
        self._fast: tuple | None = None  # (net, its parameters and buffers, their versions, inference copy)

    def _inference_net(self) -> nn.Module:
        """``net`` as predictions run it: BatchNorm folded into each convolution, each max-pool before
        its ReLU (the same numbers: ReLU is monotonic) and channels-last memory. About 3x faster on
        the CPU (4.1 -> 1.2-1.7 ms for one 128 px photo), where the localizer is a visible share of the
        pipeline. Rebuilt whenever the weights change (training, load_state_dict bump their versions);
        the tensors to watch are listed once per net (walking the modules each call cost ~0.2 ms cold).
        Assign a new ``net`` rather than new Parameter objects inside it."""
        cached = self._fast if self._fast is not None and self._fast[0] is self.net else None
        tensors = cached[1] if cached else tuple(itertools.chain(self.net.parameters(), self.net.buffers()))
        stamp = tuple(t._version for t in tensors)
        if cached is None or cached[2] != stamp:
            cached = self._fast = (self.net, tensors, stamp, _fused_for_inference(self.net))
        return cached[3]

    @torch.inference_mode()
    def _forward(self, canvases: np.ndarray, batch_size: int = 64):
        net = self._inference_net()
        boxes, ups, confs = [], [], []
        for i in range(0, len(canvases), batch_size):
            x = torch.from_numpy(canvases[i : i + batch_size]).unsqueeze(1).to(self.device)
            b, u, c = net(x)
            boxes.append(b.float().cpu())
            ups.append(torch.sigmoid(u).float().cpu())
            confs.append(c.float().cpu())
        return torch.cat(boxes).numpy(), torch.cat(ups).numpy(), torch.cat(confs).numpy()

    def predict_raw(self, images: Sequence) -> list[Localization]:
        """Predictions without the low-confidence fallback (used for evaluation)."""
        images = [_as_image(im) for im in images]
        if not images:
            return []
        lb = [letterbox(im, self.image_size) for im in images]
        boxes, ups, confs = self._forward(np.stack([c for c, *_ in lb]))
        out = []
        s = self.image_size
        for im, (_, scale, ox, oy), b, u, c in zip(images, lb, boxes.tolist(), ups.tolist(), confs.tolist()):
            w, h = im.size
            cx, cy, bw, bh = (v * s for v in b)
            x0, x1 = (cx - bw / 2 - ox) / scale, (cx + bw / 2 - ox) / scale
            y0, y1 = (cy - bh / 2 - oy) / scale, (cy + bh / 2 - oy) / scale
            box = Box(
                min(max(x0, 0.0), float(w)),
                min(max(y0, 0.0), float(h)),
                min(max(x1, 0.0), float(w)),
                min(max(y1, 0.0), float(h)),
            )
            out.append(Localization(box=box, confidence=c, source="localizer", flagged=False, upside_down=u > 0.5))
        return out

    def predict(self, images: Sequence) -> list[Localization]:
        """One ``Localization`` per photo (PIL images or paths), box in original pixels.

        Below ``conf_threshold`` (or for a degenerate box) the default box is returned,
        flagged, with source "default"; ``upside_down`` is kept from the network.
        """
        images = [_as_image(im) for im in images]
        out = []
        for im, loc in zip(images, self.predict_raw(images)):
            w, h = im.size
            tiny = loc.box.width < 0.02 * w or loc.box.height < 0.02 * h
            if loc.confidence < self.conf_threshold or tiny:
                out.append(default_localization(w, h, loc.confidence, loc.upside_down))
            else:
                out.append(loc)
        return out

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        torch.save(
            {
                "format": FORMAT_VERSION,
                "state_dict": state,
                "image_size": self.image_size,
                "widths": list(self.net.widths),
                "hidden": self.net.hidden_size,
                "conf_threshold": self.conf_threshold,
                "metrics": _plain(self.metrics),
            },
            str(path),
        )
        return path

    @classmethod
    def load(cls, path, device: str | torch.device = "cpu") -> Localizer:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unknown localizer format {data.get('format')!r}")
        net = LocalizerNet(data.get("widths", WIDTHS_V1), data.get("hidden", HIDDEN_V1))
        net.load_state_dict(data["state_dict"])
        return cls(
            net,
            image_size=data["image_size"],
            conf_threshold=data["conf_threshold"],
            metrics=data.get("metrics") or {},
            device=device,
        )


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


# ---------------------------------------------------------------------- training
def _targets(box: Box, scale: float, ox: float, oy: float, size: int) -> np.ndarray:
    x0, x1 = (box.x0 * scale + ox) / size, (box.x1 * scale + ox) / size
    y0, y1 = (box.y0 * scale + oy) / size, (box.y1 * scale + oy) / size
    x0, x1, y0, y1 = (float(np.clip(v, 0, 1)) for v in (x0, x1, y0, y1))
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, 1e-3), max(y1 - y0, 1e-3)], dtype=np.float32)


def _augment(x: torch.Tensor, t: torch.Tensor, gen: torch.Generator, shift_scale: bool = True):
    """Random 180-degree rotations (label 1) and horizontal flips; boxes mapped."""
    n = x.shape[0]
    rot = torch.rand(n, generator=gen) < 0.5
    flip = torch.rand(n, generator=gen) < 0.5
    x, t = x.clone(), t.clone()
    x[rot] = torch.flip(x[rot], dims=(2, 3))
    t[rot, 0], t[rot, 1] = 1 - t[rot, 0], 1 - t[rot, 1]
    x[flip] = torch.flip(x[flip], dims=(3,))
    t[flip, 0] = 1 - t[flip, 0]
    if shift_scale:
        x, t = _shift_scale(x, t, gen)
    contrast = 0.75 + 0.5 * torch.rand(n, 1, 1, 1, generator=gen)
    x = x * contrast + 0.1 * torch.randn(x.shape, generator=gen)
    return x, t, rot.float()


def _shift_scale(
    x: torch.Tensor,
    t: torch.Tensor,
    gen: torch.Generator,
    max_shift: float = 0.12,
    scale_range: tuple[float, float] = (0.8, 1.2),
):
    """Random zoom and translation of the canvas (padding = 0 = the standardised mean); boxes mapped
    and clipped to the canvas."""
    n = x.shape[0]
    s = scale_range[0] + (scale_range[1] - scale_range[0]) * torch.rand(n, generator=gen)  # >1: zoom out
    tx, ty = ((torch.rand(n, generator=gen) * 2 - 1) * max_shift * 2 for _ in range(2))
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = s, s, tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # input point v (in -1..1) lands at output u = (v - t) / s
    x0 = ((2 * (t[:, 0] - t[:, 2] / 2) - 1 - tx) / s + 1) / 2
    x1 = ((2 * (t[:, 0] + t[:, 2] / 2) - 1 - tx) / s + 1) / 2
    y0 = ((2 * (t[:, 1] - t[:, 3] / 2) - 1 - ty) / s + 1) / 2
    y1 = ((2 * (t[:, 1] + t[:, 3] / 2) - 1 - ty) / s + 1) / 2
    x0, x1, y0, y1 = (v.clamp(0, 1) for v in (x0, x1, y0, y1))
    t = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0).clamp(min=1e-3), (y1 - y0).clamp(min=1e-3)], dim=1)
    return x, t


def _canvases_and_targets(pil: list, boxes: Sequence[Box], image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Letterboxed (N, 1, S, S) canvases and their (N, 4) cx/cy/w/h box targets."""
    lb = [letterbox(im, image_size) for im in pil]
    x_all = torch.from_numpy(np.stack([c for c, *_ in lb])).unsqueeze(1)
    t_all = torch.from_numpy(np.stack([_targets(b, s, ox, oy, image_size) for b, (_, s, ox, oy) in zip(boxes, lb)]))
    return x_all, t_all


def _localizer_loss(net: nn.Module, x: torch.Tensor, t: torch.Tensor, up: torch.Tensor, giou: bool) -> torch.Tensor:
    """Box regression (smooth-L1 x4 + 1 - (G)IoU), upside-down logit, and the confidence as predicted IoU."""
    pb, pu, pc = net(x)
    ious = _iou_cxcywh(pb, t)
    overlap = _iou_cxcywh(pb, t, generalized=True) if giou else ious
    return (
        F.smooth_l1_loss(pb, t, beta=0.05) * 4
        + (1 - overlap).mean()
        + F.binary_cross_entropy_with_logits(pu, up)
        + 0.5 * F.mse_loss(pc, ious.detach())
    )


@dataclass
class _LocalizerFit:
    """The epoch loop of ``train_localizer`` (one-cycle lr, stepped per batch)."""

    net: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    gen: torch.Generator
    device: torch.device
    epochs: int
    steps_per_epoch: int
    total_steps: int
    batch_size: int
    shift_scale: bool
    giou: bool
    progress: Callable[[TrainProgress], None] | None
    step: int = 0

    @classmethod
    def one_cycle(cls, net, lr, gen, device, schedule, batch_size, shift_scale, giou, progress) -> _LocalizerFit:
        """AdamW with a one-cycle lr over ``schedule`` = (epochs, steps per epoch, total steps)."""
        epochs, steps_per_epoch, total_steps = schedule
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, total_steps), pct_start=0.15)
        args = (net, opt, sched, gen, device, epochs, steps_per_epoch, total_steps, batch_size, shift_scale, giou)
        return cls(*args, progress)

    def run(self, x_train: torch.Tensor, t_train: torch.Tensor) -> tuple[list[dict], int]:
        history = []
        for epoch in range(self.epochs):
            if self.step >= self.total_steps:
                break
            losses = self._epoch(epoch, x_train, t_train)
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan")})
        return history, self.step

    def _epoch(self, epoch: int, x_train: torch.Tensor, t_train: torch.Tensor) -> list[float]:
        self.net.train()
        perm = torch.randperm(len(x_train), generator=self.gen)
        losses: list[float] = []
        for i in range(self.steps_per_epoch):
            if self.step >= self.total_steps:
                break
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size]
            if len(idx) < 2:  # BatchNorm needs 2+
                continue
            x, t, up = _augment(x_train[idx], t_train[idx], self.gen, shift_scale=self.shift_scale)
            loss = _localizer_loss(self.net, x.to(self.device), t.to(self.device), up.to(self.device), self.giou)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            self.step += 1
            losses.append(float(loss.detach()))
            if self.progress:
                self.progress(
                    TrainProgress(
                        epoch=epoch + 1,
                        epochs=self.epochs,
                        step=i + 1,
                        steps_per_epoch=self.steps_per_epoch,
                        loss=losses[-1],
                        phase="localizer",
                    )
                )
        return losses


def _ship_if_better(localizer: Localizer, metrics: dict, n_val: int) -> None:
    """The guard: a localizer not better than the default box on its validation photos predicts the
    flagged default box (``shipped`` False); without validation photos the caller decides (None)."""
    if n_val > 0:
        metrics["shipped"] = bool(metrics["val_iou_mean"] > metrics["iou_default_mean"])
        if not metrics["shipped"]:
            localizer.conf_threshold = float("inf")  # predict() -> the flagged default box, always
    else:
        metrics["shipped"] = None  # not validated here: the caller must compare it with the default box
    localizer.metrics = metrics


def _split_indices(rng: np.random.Generator, n: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(validation, training) photo indices: a random ``val_fraction`` (at least one photo left to train on)."""
    order = rng.permutation(n)
    n_val = min(int(round(n * val_fraction)) if val_fraction > 0 else 0, n - 1)
    return order[:n_val], order[n_val:]


def _localizer_schedule(
    n_train: int, batch_size: int, epochs: int | None, min_steps: int, max_steps: int | None
) -> tuple[int, int, int]:
    """(steps per epoch, epochs, total steps): ``epochs`` defaults to 30, raised to reach ``min_steps``."""
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    if epochs is None:
        epochs = max(30, math.ceil(min_steps / steps_per_epoch))
    total_steps = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    return steps_per_epoch, epochs, total_steps


def train_localizer(
    images: Sequence,
    boxes: Sequence[Box],
    epochs: int | None = None,
    image_size: int = 128,
    seed: int = 0,
    progress: Callable[[TrainProgress], None] | None = None,
    val_fraction: float = 0.2,
    batch_size: int = 32,
    lr: float = 3e-3,
    conf_threshold: float = 0.5,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
    min_steps: int = MIN_STEPS,
    augment_shift_scale: bool = True,
    giou: bool = True,
    widths: Sequence[int] = WIDTHS,
    hidden: int = HIDDEN,
) -> tuple[Localizer, dict]:
    """Train on photos (PIL images or paths) with their fluke boxes (original pixels).

    Returns (Localizer, metrics): ``val_iou_mean`` (raw predicted box vs truth on the
    held-out photos), ``iou_default_mean`` (the default box on the same photos: the
    "before" number), ``val_iou_flipped_mean`` (same photos rotated 180 degrees),
    ``val_upside_accuracy`` (upright + rotated copies), ``val_flagged_fraction``,
    ``n_train``, ``n_val``, ``seconds``, ``history``, ``shipped``.

    ``epochs`` defaults to 30, raised so that training makes at least ``min_steps`` steps (small
    photo sets give only a few steps per epoch). Loss: smooth-L1 + (1 - GIoU) (``giou=False``: 1 - IoU);
    augmentation adds a random shift/zoom of the canvas (``augment_shift_scale``).

    Guard: with a validation split (``n_val > 0``), a localizer whose ``val_iou_mean`` is not above
    ``iou_default_mean`` is returned with ``shipped=False`` and ``conf_threshold=inf``, so its ``predict``
    always gives the flagged default box (``ml.train`` then writes no ``localizer.pt``).
    """
    if len(images) != len(boxes):
        raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
    if len(images) < 2:
        raise ValueError("train_localizer needs at least 2 photos")
    started = time.monotonic()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = torch.device(device)

    pil = [_as_image(im) for im in images]
    x_all, t_all = _canvases_and_targets(pil, boxes, image_size)

    val_idx, train_idx = _split_indices(rng, len(pil), val_fraction)
    n_val = len(val_idx)
    x_train, t_train = x_all[train_idx], t_all[train_idx]

    net = LocalizerNet(widths, hidden).to(device)
    steps_per_epoch, epochs, total_steps = _localizer_schedule(len(train_idx), batch_size, epochs, min_steps, max_steps)
    schedule = (epochs, steps_per_epoch, total_steps)
    fit = _LocalizerFit.one_cycle(net, lr, gen, device, schedule, batch_size, augment_shift_scale, giou, progress)
    localizer = Localizer(net, image_size=image_size, conf_threshold=conf_threshold, device=device)
    history, step = fit.run(x_train, t_train)

    metrics = evaluate_localizer(localizer, [pil[i] for i in val_idx], [boxes[i] for i in val_idx])
    if history:
        history[-1]["val_iou"] = metrics["val_iou_mean"]
    metrics.update(
        n_train=int(len(train_idx)),
        n_val=int(n_val),
        epochs=epochs,
        steps=step,
        image_size=image_size,
        seconds=round(time.monotonic() - started, 2),
        history=history,
    )
    _ship_if_better(localizer, metrics, n_val)
    if progress:
        progress(_done_progress(metrics, epochs, steps_per_epoch))
    return localizer, metrics


def _done_progress(metrics: dict, epochs: int, steps_per_epoch: int) -> TrainProgress:
    """The last report of a localizer fit: its held-out IoU beside the default box's."""
    history = metrics["history"]
    return TrainProgress(
        epoch=epochs,
        epochs=epochs,
        step=steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
        loss=history[-1]["loss"] if history else float("nan"),
        phase="localizer",
        message=f"localizer val IoU {metrics['val_iou_mean']:.3f} (default box {metrics['iou_default_mean']:.3f})",
    )


def evaluate_localizer(localizer: Localizer, images: Sequence, boxes: Sequence[Box]) -> dict:
    """IoU of the raw predictions and of the default box, upright and rotated 180 degrees."""
    pil = [_as_image(im) for im in images]
    if not pil:
        nan = float("nan")
        return {
            "val_iou_mean": nan,
            "iou_default_mean": nan,
            "val_iou_flipped_mean": nan,
            "val_upside_accuracy": nan,
            "val_flagged_fraction": nan,
        }
    raw = localizer.predict_raw(pil)
    rotated = [im.rotate(180) for im in pil]
    rot_boxes = [
        Box(im.size[0] - b.x1, im.size[1] - b.y1, im.size[0] - b.x0, im.size[1] - b.y0) for im, b in zip(pil, boxes)
    ]
    raw_rot = localizer.predict_raw(rotated)
    ious = [iou(p.box, b) for p, b in zip(raw, boxes)]
    default = [iou(default_localization(*im.size).box, b) for im, b in zip(pil, boxes)]
    ious_rot = [iou(p.box, b) for p, b in zip(raw_rot, rot_boxes)]
    upside = [not p.upside_down for p in raw] + [p.upside_down for p in raw_rot]
    flagged = [p.confidence < localizer.conf_threshold for p in raw]
    return {
        "val_iou_mean": float(np.mean(ious)),
        "iou_default_mean": float(np.mean(default)),
        "val_iou_flipped_mean": float(np.mean(ious_rot)),
        "val_upside_accuracy": float(np.mean(upside)),
        "val_flagged_fraction": float(np.mean(flagged)),
        "val_confidence_mean": float(np.mean([p.confidence for p in raw])),
    }


__all__ = [
    "Localizer",
    "LocalizerNet",
    "default_localization",
    "iou",
    "letterbox",
    "train_localizer",
    "evaluate_localizer",
]
