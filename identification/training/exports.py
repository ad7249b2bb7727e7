"""Training data for administrators: the filterable list of ``TrainingExample``s, exclude /
include, and streamed exports for outside tools.

* Kaggle ZIP: ``train.csv`` (``Image,Id``; Id = catalogue id, merges resolved) + ``images/<photo id>.<ext>``.
* COCO JSON: ``images`` (id = photo id, file_name as in the ZIP, width, height), ``annotations``
  (one per photo with a trusted box: given, moderator-corrected or a confident localizer box;
  ``bbox`` = [x, y, w, h] in pixels, clipped to the image), ``categories``: one per species profile
  (``ml.profiles``: ``humpback_fluke``, ``dolphin_fin``, ...), ids fixed by the profiles' order so that two
  exports agree; each annotation's category is its whale's species' profile.

Both export the *included* (not excluded) examples matching the list's filters that are in the
training set of its species' runs (``dataset.all_training_photos``), so never a frozen holdout photo. Both
are generated while streaming: the ZIP is written entry by entry into the response (no temporary
file), the JSON object by object.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from django.core.files.storage import default_storage
from django.db import transaction

from ml.profiles import PROFILES

from ..forms import TrainingDataFilterForm
from ..models import Individual, TrainingExample
from ..permissions import MANAGE_MODELS_PERMISSION, require
from .dataset import all_holdout_photo_ids, all_training_photos, resolve_merged_id, trusted_box

CHUNK = 256 * 1024


def training_examples(params=None):
    """(form, queryset) of training examples filtered by ``params`` (a QueryDict or dict)."""
    form = TrainingDataFilterForm(params or None)
    qs = TrainingExample.objects.select_related("photo__sighting", "individual__species", "used_by").order_by(
        "-created_at", "-pk"
    )
    return form, form.apply(qs)


def _set_status(ids, user, *, exclude: bool) -> int:
    require(user, MANAGE_MODELS_PERMISSION)
    ids = [int(i) for i in ids]
    changed = 0
    with transaction.atomic():
        rows = TrainingExample.objects.select_for_update().filter(pk__in=ids)
        for ex in rows:
            if exclude and ex.status != TrainingExample.Status.EXCLUDED:
                ex.status = TrainingExample.Status.EXCLUDED
            elif not exclude and ex.status == TrainingExample.Status.EXCLUDED:
                ex.status = TrainingExample.Status.USED if ex.used_by_id else TrainingExample.Status.QUEUED
            else:
                continue
            ex.save(update_fields=["status"])
            changed += 1
    return changed


def exclude_training_examples(ids, user) -> int:
    """Leave these examples out of every future run and export. Returns how many changed."""
    return _set_status(ids, user, exclude=True)


def include_training_examples(ids, user) -> int:
    """Undo an exclusion: back to *used* (if a run used it before) or *queued*."""
    return _set_status(ids, user, exclude=False)


# --------------------------------------------------------------------------- exports


def export_rows(params=None) -> list[dict]:
    """The examples an export contains: included, filtered, and in the set a run trains on
    (each species' ``dataset.training_queryset``: so never a photo of any species' holdout)."""
    _, qs = training_examples(params)
    held = all_holdout_photo_ids()
    trained_on = all_training_photos().values("pk")
    merged = dict(Individual.objects.filter(merged_into__isnull=False).values_list("pk", "merged_into_id"))
    names = dict(Individual.objects.values_list("pk", "catalogue_id"))
    rows = []
    for ex in qs.exclude(status=TrainingExample.Status.EXCLUDED).filter(photo__in=trained_on).order_by("photo_id"):
        if ex.photo_id in held or not ex.photo.image:
            continue
        ind = resolve_merged_id(ex.individual_id, merged)
        photo = ex.photo
        ext = Path(photo.image.name).suffix.lower() or ".jpg"
        rows.append(
            {
                "photo": photo,
                "file_name": f"{photo.pk}{ext}",
                "label": names.get(ind, str(ind)),
                "profile": ex.individual.species.profile,
            }
        )
    return rows


class _Sink:
    """A write-only file object that hands what was written to the streaming generator."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.offset = 0

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def kaggle_zip_stream(rows):
    """Yield a ZIP (``train.csv`` + ``images/``) chunk by chunk."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["Image", "Id"])
        for row in rows:
            writer.writerow([row["file_name"], row["label"]])
        zf.writestr("train.csv", buf.getvalue())
        yield sink.take()
        for row in rows:
            try:
                src = default_storage.open(row["photo"].image.name, "rb")
            except FileNotFoundError:
                continue
            with src, zf.open(f"images/{row['file_name']}", "w", force_zip64=True) as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    if len(sink.parts) > 8:
                        yield sink.take()
            yield sink.take()
    yield sink.take()


COCO_CATEGORIES = [
    {"id": k, "name": p.key, "supercategory": p.common_name, "body_part": p.body_part}
    for k, p in enumerate(PROFILES.values(), start=1)
]
COCO_CATEGORY_IDS = {c["name"]: c["id"] for c in COCO_CATEGORIES}


def coco_document_stream(rows):
    """Yield a COCO detection JSON document (images, annotations, categories) piece by piece."""
    info = {
        "description": "Whalesite boxes: flukes, fins, heads and faces, one category per species profile",
        "version": "1.0",
        "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    yield '{"info": ' + json.dumps(info) + ', "categories": ' + json.dumps(COCO_CATEGORIES)
    yield ', "images": ['
    for n, row in enumerate(rows):
        p = row["photo"]
        image = {
            "id": p.pk,
            "file_name": f"images/{row['file_name']}",
            "width": p.width,
            "height": p.height,
            "individual": row["label"],
        }
        yield ("," if n else "") + json.dumps(image)
    yield '], "annotations": ['
    n = 0
    for row in rows:
        p = row["photo"]
        box = trusted_box(p)
        category = COCO_CATEGORY_IDS.get(row.get("profile") or "")
        if box is None or category is None or not p.width or not p.height:
            continue
        x0, y0 = max(0.0, min(box.x0, p.width)), max(0.0, min(box.y0, p.height))
        x1, y1 = max(0.0, min(box.x1, p.width)), max(0.0, min(box.y1, p.height))
        w, h = x1 - x0, y1 - y0
        if w <= 0 or h <= 0:
            continue
        n += 1
        ann = {
            "id": n,
            "image_id": p.pk,
            "category_id": category,
            "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)],
            "area": round(w * h, 2),
            "iscrowd": 0,
            "attributes": {"box_source": p.box_source},
        }
        yield ("," if n > 1 else "") + json.dumps(ann)
    yield "]}\n"
