"""Per worker process: the active model's ``Identifier`` (loaded once) and a ``GalleryIndex``
kept in step with the database incrementally.

Every task calls :func:`active` first: one cheap query finds the active ModelVersion; the
identifier is reloaded only when that changes (a promotion or rollback is picked up without a
worker restart). :func:`gallery` then syncs the index: it reads the (photo_id, individual_id)
pairs of gallery photos that have an embedding for the version, adds the missing ones (fetching
only their vectors) and removes the ones that left the gallery or changed individual.

A lock makes it safe for threads; prefork children each have their own copy (the state is
created lazily, after the fork).
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from django.conf import settings

log = logging.getLogger(__name__)

_lock = threading.RLock()
_identifiers: "OrderedDict[int, object]" = OrderedDict()  # version id -> Identifier (at most 2)
_gallery_state: dict = {"version_id": None, "index": None, "members": {}}


def model_dir(version) -> Path:
    path = Path(version.artifact_dir)
    return path if path.is_absolute() else Path(settings.ML_ROOT) / path


def active_version():
    from .models import ModelVersion

    return ModelVersion.objects.active().first()


def identifier(version):
    """The ``ml.identifier.Identifier`` of ``version``, loaded once per process."""
    from ml.identifier import Identifier

    with _lock:
        ident = _identifiers.get(version.pk)
        if ident is not None:
            _identifiers.move_to_end(version.pk)
            return ident
        device = None
        if settings.ML_DEVICE:
            from ml.device import pick_device

            device = pick_device(settings.ML_DEVICE)
        log.info("Loading model version %s from %s", version.name, model_dir(version))
        ident = Identifier.load(str(model_dir(version)), device=device)
        _identifiers[version.pk] = ident
        while len(_identifiers) > 2:
            _identifiers.popitem(last=False)
        return ident


def vector_from_bytes(data) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=np.float32)


def gallery(version):
    """A ``GalleryIndex`` of every gallery photo embedded by ``version`` (None while empty).

    Item ids are photo ids and labels individual ids, both as strings.
    """
    from ml.gallery import GalleryIndex
    from submissions.models import Photo

    from .models import Embedding

    with _lock:
        state = _gallery_state
        if state["version_id"] != version.pk:
            state.update(version_id=version.pk, index=None, members={})
        members: dict[int, int] = state["members"]
        current = dict(
            Photo.objects.in_gallery()
            .filter(embeddings__model_version=version)
            .values_list("id", "individual_id")
        )
        gone = [pid for pid, ind in members.items() if current.get(pid) != ind]
        if gone and state["index"] is not None:
            state["index"].remove([str(pid) for pid in gone])
        for pid in gone:
            members.pop(pid, None)
        missing = [pid for pid in current if pid not in members]
        if missing:
            rows = list(
                Embedding.objects.filter(model_version=version, photo_id__in=missing).values_list("photo_id", "vector")
            )
            if rows:
                vectors = np.stack([vector_from_bytes(v) for _, v in rows])
                if state["index"] is None:
                    state["index"] = GalleryIndex(vectors.shape[1])
                ids = [str(pid) for pid, _ in rows]
                labels = [str(current[pid]) for pid, _ in rows]
                state["index"].add(ids, labels, vectors)
                for pid, _ in rows:
                    members[pid] = current[pid]
        return state["index"]


def reset() -> None:
    """Forget everything (tests, or after a fork)."""
    with _lock:
        _identifiers.clear()
        _gallery_state.update(version_id=None, index=None, members={})
