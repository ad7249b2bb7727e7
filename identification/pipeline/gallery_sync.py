"""Per worker process: a ``GalleryIndex`` of each species' active model version, kept in step with the
database incrementally (one state per version, so photos of two species taken in turn never rebuild each
other's index; each holds only its own species' gallery photos, ``Photo.objects.in_catalogue_of``).

After finding the active version (``pipeline.cache``), every pipeline task calls :func:`gallery`,
which syncs the index: on a worker's first task (and hourly) it
reads the whole membership, the (photo_id, individual_id) pairs of gallery photos embedded by the
version; on every other task only the photos that database triggers logged as changed
(``GalleryChange``) are re-read, and their vectors fetched again.

A lock makes it safe for threads; prefork children each have their own copy (the state is
created lazily, after the fork).
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import shutil
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Q

from ml.io import atomic_write_json
from submissions.models import Photo

from ..models import Embedding, GalleryChange, ModelVersion
from .cache import vector_from_bytes

log = logging.getLogger(__name__)

_lock = threading.RLock()


def _empty_gallery_state() -> dict:
    # seen: (changed_at, id, photo_id) of the log rows applied within the window, oldest first; top: the
    # highest log id applied; snapshot_at: when the snapshot this process loaded or saved was taken
    return {
        "version_id": None,
        "index": None,
        "members": {},
        "synced_at": None,
        "seen": [],
        "top": 0,
        "snapshot_at": None,
    }


GALLERY_STATES_KEPT = 8  # versions whose index a process keeps (one active per species; a promotion adds one)
_gallery_states: OrderedDict[int, dict] = OrderedDict()  # version id -> its state, least recently used first


def _state_of(version) -> dict:
    state = _gallery_states.get(version.pk)
    if state is None:
        state = _gallery_states[version.pk] = _empty_gallery_state()
    _gallery_states.move_to_end(version.pk)
    while len(_gallery_states) > GALLERY_STATES_KEPT:
        _gallery_states.popitem(last=False)
    return state


def gallery(version):
    """A ``GalleryIndex`` of every gallery photo embedded by ``version`` (None while empty).

    Item ids are photo ids and labels individual ids, both as strings. A task pays only for what
    changed since the worker's last sync: the ``GalleryChange`` rows the database triggers wrote
    (at 100k photos, reading the whole membership for every task cost 161 ms, 2.8x a ResNet50
    forward: ``python bench/gallery_sync.py``). The whole membership is read when the version
    changes, on a worker's first task, and every ``GALLERY_FULL_SYNC_S`` as a safety net for edits
    that bypass triggers (a restored backup, ``TRUNCATE``).
    """
    with _lock:
        state = _state_of(version)
        now = _database_now()
        stale = state["synced_at"] is None or (now - state["synced_at"]).total_seconds() > GALLERY_FULL_SYNC_S
        if state["version_id"] != version.pk or stale:
            _full_sync(state, version, now)
        else:
            _delta_sync(state, version, now)
        return state["index"]


# A change is logged when its statement runs and seen when its transaction commits. Every sync
# re-reads the changes of this window before the previous sync, so a transaction that committed
# late (up to this long after its change) is still applied; each change row is applied once.
GALLERY_CHANGE_WINDOW_S = 600
GALLERY_FULL_SYNC_S = 3600  # > the window
GALLERY_CHANGE_RETENTION_S = 24 * 3600  # prune_gallery_changes keeps the log this long
# A worker's first sync of a large gallery loads the last snapshot of its index (ML_ROOT/gallery-snapshots/
# <version id>) instead of building it: building a 100k-photo HNSW index took 105 s, loading one 1.6 s.
GALLERY_SNAPSHOT_MIN = 20_000  # smaller galleries build in about a second (exact search below 20k)
GALLERY_SNAPSHOT_MAX_AGE_S = 6 * 3600  # the hourly full sync saves a newer one after this


def _database_now():
    """The database's clock (the triggers' clock), as an aware datetime."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT clock_timestamp()")
        else:
            cursor.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
        value = cursor.fetchone()[0]
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _window(version, since):
    """The logged changes that matter to ``version``'s gallery (photo changes, and its own embeddings:
    re-embedding the gallery for a new version leaves the active one alone), from the window before
    ``since`` on."""
    return GalleryChange.objects.filter(
        Q(model_version_id__isnull=True) | Q(model_version_id=version.pk),
        changed_at__gte=since - timedelta(seconds=GALLERY_CHANGE_WINDOW_S),
    )


def _window_changes(version, since) -> list[tuple]:
    """``(changed_at, id, photo_id)`` of the window's changes, oldest first."""
    return sorted(_window(version, since).values_list("changed_at", "id", "photo_id"))


def _full_sync(state, version, now) -> None:
    if state["version_id"] != version.pk:
        state.update(version_id=version.pk, index=None, members={}, snapshot_at=None)
    built = state["index"] is None and not _start_from_snapshot(state, version, now)
    seen = _window_changes(version, now)  # read before the membership: all of these are in it already
    current = dict(
        Photo.objects.in_catalogue_of(version.species_id)
        .filter(embeddings__model_version=version)
        .values_list("id", "individual_id")
    )
    members: dict[int, int] = state["members"]
    gone = [pid for pid, ind in members.items() if current.get(pid) != ind]
    _remove(state, gone)
    _add(state, version, {pid: ind for pid, ind in current.items() if pid not in members})
    state.update(synced_at=now, seen=seen, top=max([c[1] for c in seen] + [state["top"]]))
    index = state["index"]
    old = state["snapshot_at"] is None or (now - state["snapshot_at"]).total_seconds() > GALLERY_SNAPSHOT_MAX_AGE_S
    if index is not None and len(index) >= GALLERY_SNAPSHOT_MIN and (built or old):
        _save_snapshot(state, version, now)


def snapshot_dir(version) -> Path:
    """Per version, not per model folder: two versions may share a folder (a re-registered model)."""
    return Path(settings.ML_ROOT) / "gallery-snapshots" / str(version.pk)


def _snapshot_pointer(version):
    """(folder, saved_at) of the version's last snapshot, from its ``latest.json``."""
    root = snapshot_dir(version)
    pointer = json.loads((root / "latest.json").read_text())
    return root / pointer["folder"], datetime.fromisoformat(pointer["saved_at"])


def _log_covers(saved_at, now) -> bool:
    """Whether the change log still holds every change since ``saved_at`` (so a snapshot is usable)."""
    return (now - saved_at).total_seconds() <= GALLERY_CHANGE_RETENTION_S - GALLERY_CHANGE_WINDOW_S


def _start_from_snapshot(state, version, now) -> bool:
    """Load the version's last index snapshot, if the change log still covers the time since it was
    saved, and drop the photos changed since then (the membership diff adds them back, with their
    current vectors). False when there is none to use."""
    from ml.gallery import GalleryIndex  # loads torch

    try:
        folder, saved_at = _snapshot_pointer(version)
        if not _log_covers(saved_at, now):
            return False
        index = GalleryIndex.load(folder)
        reflected = set(np.load(folder / "seen.npy").tolist())  # changes already in it
    except FileNotFoundError:
        return False
    except Exception as exc:  # a damaged or half-deleted snapshot: build the index instead
        log.warning("gallery snapshot of %s unusable (%s): building the index", version.name, exc)
        return False
    state["index"] = index
    state["members"] = {int(item): int(label) for item, label in zip(index.item_ids, index.labels)}
    state["snapshot_at"] = saved_at
    changed = {pid for _, change_id, pid in _window_changes(version, saved_at) if change_id not in reflected}
    _remove(state, [pid for pid in changed if pid in state["members"]])
    log.info("gallery of %s: %d photos from its snapshot of %s", version.name, len(index), saved_at)
    return True


def _save_snapshot(state, version, now, keep: int = 2) -> None:
    """Write the index under ``snapshot_dir`` (a new folder, then ``latest.json`` replaced atomically, so a
    worker never loads a half-written one); keep the ``keep`` newest folders."""
    root = snapshot_dir(version)
    folder = root / f"{now:%Y%m%dT%H%M%S%f}-{os.getpid()}"
    try:
        state["index"].save(folder, compact=False)  # compacting would rebuild the whole index
        np.save(folder / "seen.npy", np.array(sorted(c[1] for c in state["seen"]), dtype=np.int64))
        atomic_write_json(
            root / "latest.json", {"folder": folder.name, "saved_at": now.isoformat(), "photos": len(state["index"])}
        )
        state["snapshot_at"] = now
        for old in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:  # a read-only or full ML_ROOT costs the next worker a rebuild, nothing more
        log.warning("could not save the gallery snapshot of %s: %s", version.name, exc)


def prune_snapshots(now=None) -> int:
    """Delete the snapshots of inactive versions that the change log no longer covers: no worker can
    start from them any more (a rollback builds its index again). Returns how many versions lost theirs."""
    now = now or _database_now()
    removed = 0
    for version in ModelVersion.objects.filter(is_active=False):
        root = snapshot_dir(version)
        if not root.is_dir():
            continue
        try:
            expired = not _log_covers(_snapshot_pointer(version)[1], now)
        except (OSError, ValueError, KeyError):
            expired = True  # no usable pointer: nothing there can be loaded
        if expired:
            shutil.rmtree(root, ignore_errors=True)
            removed += 1
    return removed


def _delta_sync(state, version, now) -> None:
    """Apply the changes logged since the last sync, each once. New rows have ids above every row
    seen so far; a transaction that committed late has a lower id, and shows as a difference between
    the count of older rows in the window and the count seen (one COUNT, not the window's rows: after
    a gallery re-embedding the window can hold 100k rows, and reading them cost 0.5 s a task)."""
    since = state["synced_at"]
    window = _window(version, since)
    seen: list = state["seen"]
    cutoff = since - timedelta(seconds=GALLERY_CHANGE_WINDOW_S)
    del seen[: bisect.bisect_left(seen, (cutoff,))]  # out of the window now
    top = state["top"]
    fresh = sorted(window.filter(id__gt=top).values_list("changed_at", "id", "photo_id"))
    if window.filter(id__lte=top).count() != len(seen):  # a late commit below the top id
        known = {c[1] for c in seen}
        fresh += [c for c in _window_changes(version, since) if c[1] <= top and c[1] not in known]
    if fresh:
        changed = {c[2] for c in fresh}
        current = dict(
            Photo.objects.in_catalogue_of(version.species_id)
            .filter(pk__in=changed, embeddings__model_version=version)
            .values_list("id", "individual_id")
        )
        _remove(state, [pid for pid in changed if pid in state["members"]])  # its whale or vector may differ now
        _add(state, version, current)
        seen.extend(fresh)
        seen.sort()
        state["top"] = max(top, max(c[1] for c in fresh))
    state["synced_at"] = now


def _remove(state, photo_ids) -> None:
    if photo_ids and state["index"] is not None:
        state["index"].remove([str(pid) for pid in photo_ids])
    for pid in photo_ids:
        state["members"].pop(pid, None)


def _add(state, version, individual_of: dict) -> None:
    """Fetch the vectors of these photos (``{photo_id: individual_id}``) and add them."""
    from ml.gallery import GalleryIndex  # loads torch

    if not individual_of:
        return
    rows = list(
        Embedding.objects.filter(model_version=version, photo_id__in=list(individual_of)).values_list(
            "photo_id", "vector"
        )
    )
    if not rows:
        return
    vectors = np.stack([vector_from_bytes(v) for _, v in rows])
    if state["index"] is None:
        state["index"] = GalleryIndex(vectors.shape[1])
    state["index"].add([str(pid) for pid, _ in rows], [str(individual_of[pid]) for pid, _ in rows], vectors)
    for pid, _ in rows:
        state["members"][pid] = individual_of[pid]


def expire_sync() -> None:
    """Age the last sync by ``GALLERY_FULL_SYNC_S``, so the next :func:`gallery` call reads the whole
    membership as an hour without a sync would (tests)."""
    with _lock:
        for state in _gallery_states.values():
            if state["synced_at"] is not None:
                state["synced_at"] -= timedelta(seconds=GALLERY_FULL_SYNC_S + 1)


def reset() -> None:
    """Forget the gallery indexes (tests, or after a fork)."""
    with _lock:
        _gallery_states.clear()
