"""Load a trained model folder once and turn photos into crops and embeddings."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ml.device import pick_device
from ml.model_folder import (  # noqa: F401 (ModelFolderError re-exported)
    ModelFolderError,
    load_calibration,
    load_localizer,
    load_model,
    load_ood,
)
from ml.models import embed_crops
from ml.profiles import folder_profile
from ml.types import Box, Localization


@dataclass(frozen=True)
class PreparedImage:
    crop: np.ndarray  # float32 (image_size, image_size), standardised grayscale
    localization: Localization
    upside_down: bool


DECODE_SHORT_SIDE = 768  # bench/decode_scale.py: embeddings barely move down to a short side of ~700


def _scale(img) -> int:
    return int(getattr(img, "info", {}).get("scale", 1) or 1)


def _scaled(box: Box, factor: float) -> Box:
    return Box(box.x0 * factor, box.y0 * factor, box.x1 * factor, box.y1 * factor)


def _to_photo_pixels(loc: Localization, img) -> Localization:
    """``loc`` measured on ``img`` as decoded, in the photo's own pixels (clipped to the photo)."""
    scale = _scale(img)
    if scale == 1:
        return loc
    width, height = img.info["original_size"]
    b = _scaled(loc.box, scale)
    return dataclasses.replace(loc, box=Box(min(b.x0, width), min(b.y0, height), min(b.x1, width), min(b.y1, height)))


class Identifier:
    """A trained FlukeNet (+ optional localizer) ready for inference.

    ``Identifier.load(model_dir)`` reads ``model.pt`` (and ``localizer.pt`` when present) once;
    the object can then be shared by threads (inference only).
    """

    def __init__(
        self,
        model,
        classes: Sequence[str],
        new_threshold: float,
        image_size: int,
        version: str,
        device: torch.device,
        localizer=None,
        config: dict | None = None,
        model_dir: str | None = None,
        batch_size: int = 64,
        calibration=None,
        ood=None,
    ):
        self.model = model.eval()
        self.classes = list(classes)
        self.new_threshold = float(new_threshold)
        self.image_size = int(image_size)
        self.version = str(version)
        self.device = device
        self.localizer = localizer
        self.config = dict(config or {})
        # the species profile the folder was trained for (ml.profiles; older folders: the humpback fluke)
        self.profile = folder_profile(self.config)  # with the local matching it recorded
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.embedding_dim = int(model.embedding_dim)
        # ml.calibration.MatchCalibration from calibration.json; None (older folders): rank by cosine as before
        self.calibration = calibration
        # ml.ood.OODDetector from ood.npz; None (older folders): no photo is flagged
        self.ood = ood
        self._lock = threading.Lock()
        from ml.preprocess import EvalTransform

        self._transform = EvalTransform(self.image_size)

    @classmethod
    def load(cls, model_dir: str | Path, device: str | torch.device | None = None) -> Identifier:
        """Read the folder (format: ``ml.model_folder``) once; ``ModelFolderError`` names what is wrong."""
        dev = device if isinstance(device, torch.device) else pick_device(device or "")
        saved, model = load_model(model_dir)
        model.to(dev).eval()
        return cls(
            model,
            saved.classes,
            saved.new_threshold,
            saved.image_size,
            saved.version,
            dev,
            localizer=load_localizer(model_dir, device=dev),
            config=saved.config,
            model_dir=str(model_dir),
            calibration=load_calibration(model_dir),
            ood=load_ood(model_dir),
        )

    @property
    def calibrated(self) -> bool:
        """True when the folder ships P(same individual) (``calibration.json``): rank with ``ml.fused_ranking``."""
        return self.calibration is not None

    # ----------------------------------------------------------------- images
    @staticmethod
    def open(source, short_side: int | None = DECODE_SHORT_SIDE):
        """Decode a photo (path, bytes or file) the way the pipeline needs it: checked like
        ``ml.images.load_image``, EXIF-oriented, grayscale (``gray=True``: a JPEG's luma plane is
        decoded directly). A camera-sized JPEG is decoded at 1/2, 1/4 or 1/8 scale while its short
        side stays at least ``short_side`` (``None``: full resolution): the passes over a 12 MP photo
        cost more than the model's forward on the CPU. Boxes in and out of :meth:`prepare` and
        :meth:`localize` stay in the photo's own pixels whatever the scale (``info["scale"]``)."""
        from ml.images import load_image

        return load_image(source, gray=True, short_side=short_side)

    @classmethod
    def _image(cls, image):
        from PIL import Image

        if isinstance(image, Image.Image):
            return image
        return cls.open(image)

    @staticmethod
    def _gray(img):
        """The localizer and the crop both work in grayscale: convert once, not once each."""
        if img.mode in ("L", "F"):
            return img
        from ml.preprocess import _grayscale

        return _grayscale(img)

    def localize(self, image) -> Localization:
        """Where the fluke is, in the photo's own pixels: the localizer's box, or the default box
        (``default_localization``, flagged for a moderator) when the folder has no localizer, or one
        that did not beat the default box on validation (``metrics["shipped"] is False``)."""
        img = self._image(image)
        return _to_photo_pixels(self._localize(img), img)

    def _localize(self, img) -> Localization:
        """:meth:`localize` in the pixels of ``img`` as decoded. A "full_frame" profile (right whale heads,
        seal faces: the photo is already the crop) takes the whole photo, not flagged."""
        if self.profile.localizer == "full_frame":
            width, height = img.size
            whole = Box(0.0, 0.0, float(width), float(height))
            return Localization(box=whole, confidence=1.0, source="full_frame", flagged=False, upside_down=False)
        if self.localizer is not None:
            with self._lock:
                return self.localizer.predict([img])[0]
        from ml.localizer import default_localization

        return default_localization(*img.size)

    def prepare(self, image, box: Box | None = None, upside_down: bool | None = None) -> PreparedImage:
        """Crop a photo (path, bytes, file or PIL image) for embedding.

        ``box`` (the photo's own pixels, e.g. drawn by a moderator) wins over the localizer; the
        returned localization is in the photo's own pixels too, however it was decoded.
        """
        from ml.preprocess import preprocess

        img = self._gray(self._image(image))
        scale = _scale(img)
        if box is not None:
            loc = Localization(box=box, confidence=1.0, source="given", flagged=False, upside_down=bool(upside_down))
            decoded_box = _scaled(box, 1 / scale)
        else:
            decoded = self._localize(img)
            loc, decoded_box = _to_photo_pixels(decoded, img), decoded.box
        flip = bool(loc.upside_down if upside_down is None else upside_down)
        crop_box = None if loc.source == "default" else decoded_box
        crop = np.asarray(
            preprocess(img, crop_box, size=self.image_size, upside_down=flip, crop=self.profile.crop),
            dtype=np.float32,
        )
        return PreparedImage(crop=crop, localization=loc, upside_down=flip)

    # ----------------------------------------------------------------- embeddings
    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings of prepared crops (batched, inference mode)."""
        crops = [c.crop if isinstance(c, PreparedImage) else c for c in crops]
        for c in crops:
            if np.asarray(c).shape[-2:] != (self.image_size, self.image_size):
                raise ValueError(
                    f"crop of shape {np.asarray(c).shape}, expected ({self.image_size}, {self.image_size})"
                )
        with self._lock:
            return embed_crops(self.model, list(crops), self.device, self.batch_size, self._transform)

    def embed_paths(self, paths: Sequence, boxes: Sequence[Box | None] | None = None) -> np.ndarray:
        boxes = list(boxes) if boxes is not None else [None] * len(paths)
        if len(boxes) != len(paths):
            raise ValueError("boxes must have one entry per path")
        crops = [self.prepare(p, b).crop for p, b in zip(paths, boxes)]
        return self.embed(crops)

    def pooled(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, F) L2-normalised backbone features of prepared crops (``ml.models.pooled_crops``): what
        ``ml.ood`` compares with the training photos' besides the embedding."""
        from ml.models import pooled_crops

        crops = [c.crop if isinstance(c, PreparedImage) else c for c in crops]
        with self._lock:
            return pooled_crops(self.model, list(crops), self.device, self.batch_size, self._transform)

    def familiarity(self, vector: np.ndarray, crop=None):
        """``ml.ood.Familiarity`` of one photo (is it like the training photos?), or None when the folder has no
        detector. With the prepared ``crop`` (and a detector that has a pooled-feature reference) the backbone's
        features are checked too, one more forward pass; without it the embedding alone (a stored vector
        re-ranked). A flagged photo's cosine is not trusted by ``ml.fused_ranking.suggest``."""
        if self.ood is None:
            return None
        pooled = self.pooled([crop])[0] if crop is not None and self.ood.uses_pooled else None
        return self.ood.check(vector, pooled)

    # ----------------------------------------------------------------- local features
    @property
    def uses_local_features(self) -> bool:
        """Whether this folder's profile lists RootSIFT re-ranking among its matchers (``ml.profiles``)."""
        return "local_features" in self.profile.matchers

    def local_features(self, crop):
        """RootSIFT features (``ml.local_features.LocalFeatures``) of a prepared crop, in crop pixels: what a
        gallery photo stores once and a query is verified with against the embedding's shortlist. ``None``
        when the profile's matchers leave local features out: the ranking is then the embedding's alone."""
        from ml.local_features import extract

        if not self.uses_local_features:
            return None
        picture = crop.crop if isinstance(crop, PreparedImage) else np.asarray(crop)
        return extract(picture, **self.profile.local_matching.extract_options())
