"""The review page's evidence for one candidate (the calibrated probability's words are
``Suggestion.probability_words``): the "matched points" picture (the query crop and the candidate's best
photo crop side by side, with a line between each pair of RootSIFT keypoints that RANSAC verified).

Why: a moderator should see *why* the model proposes a whale. The probability is the calibrated one stored
with the suggestion (never a cosine relabelled); the points are those the fused ranking counted, drawn
from the features stored when each photo was embedded (nothing is recomputed here).
"""

from __future__ import annotations

import io

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage

from ml.local_features import LocalFeatures, matched_pairs
from ml.model_folder import read_profile

from ..models import Embedding, Suggestion
from ..permissions import REVIEW_PERMISSION, require
from ..pipeline.cache import model_dir

GAP_PX = 8  # between the two crops
LINE_COLOURS = ((0, 200, 255), (255, 170, 0), (120, 255, 120), (255, 90, 200))


def _evidence_suggestion(photo, individual):
    suggestion = (
        Suggestion.objects.filter(
            photo=photo, individual=individual, best_photo__isnull=False, model_version_id=photo.model_version_id
        )
        .select_related("best_photo")
        .order_by("rank")
        .first()
    )
    if suggestion is None or suggestion.best_photo.individual_id != individual.pk:
        raise ValidationError("No suggested photo of this individual to compare with.")
    return suggestion


def _features(photo_ids, version_id) -> dict[int, LocalFeatures]:
    rows = Embedding.objects.filter(model_version_id=version_id, photo_id__in=photo_ids, features__isnull=False)
    return {pid: LocalFeatures.from_bytes(bytes(blob)) for pid, blob in rows.values_list("photo_id", "features")}


def _crop_image(photo):
    from PIL import Image

    if not photo.crop:
        raise ValidationError(f"Photo {photo.pk} has no crop yet.")
    with default_storage.open(photo.crop.name, "rb") as fh:
        return Image.open(fh).convert("RGB")


def draw_pairs(left, right, pairs, size: tuple[int, int]):
    """The two crops (resized to the features' picture ``size``) side by side, a line per verified pair."""
    from PIL import Image, ImageDraw

    w, h = size
    left, right = left.resize((w, h)), right.resize((w, h))
    canvas = Image.new("RGB", (2 * w + GAP_PX, h), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (w + GAP_PX, 0))
    draw = ImageDraw.Draw(canvas)
    for n, ((xq, yq), (xc, yc)) in enumerate(pairs):
        colour = LINE_COLOURS[n % len(LINE_COLOURS)]
        draw.line([(xq, yq), (xc + w + GAP_PX, yc)], fill=colour, width=1)
        for x, y in ((xq, yq), (xc + w + GAP_PX, yc)):
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], outline=colour)
    return canvas


def _matching(version):
    """How the version's folder verifies a pair (its profile's ``ml.profiles.LocalMatching``): the pairs drawn
    are the ones the worker counted, whatever the species' profile says today."""
    return read_profile(model_dir(version)).local_matching


def matched_points_png(*, photo, individual, user) -> bytes:
    """PNG of the RootSIFT-verified keypoint pairs between ``photo`` and ``individual``'s best photo, from
    the features stored with both embeddings by the photo's model version."""
    require(user, REVIEW_PERMISSION)
    suggestion = _evidence_suggestion(photo, individual)
    reference = suggestion.best_photo
    feats = _features([photo.pk, reference.pk], photo.model_version_id)
    if photo.pk not in feats or reference.pk not in feats:
        raise ValidationError("These photos were embedded before local features were stored.")
    query, candidate = feats[photo.pk], feats[reference.pk]
    pairs = matched_pairs(query, candidate, **_matching(photo.model_version).match_options())
    picture = draw_pairs(_crop_image(photo), _crop_image(reference), pairs, query.size)
    buf = io.BytesIO()
    picture.save(buf, "PNG")
    return buf.getvalue()


__all__ = ["draw_pairs", "matched_points_png"]
