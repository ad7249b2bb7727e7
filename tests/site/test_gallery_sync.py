"""The worker's gallery index follows the database through the GalleryChange log (database triggers),
without reading the whole gallery for every photo."""

import threading
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from identification import pipeline
from identification.models import Embedding, GalleryChange
from identification.pipeline import gallery_sync
from identification.tasks import prune_gallery_changes
from submissions.models import Photo
from tests.factories import IndividualFactory, ModelVersionFactory, SightingFactory, SpeciesFactory

pytestmark = pytest.mark.django_db(transaction=True)
DIM = 16


def unit(seed):
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def gallery_db():
    """A version, three whales and six gallery photos with embeddings; photo i has vector unit(i)."""
    version = ModelVersionFactory(is_active=True)
    whales = [IndividualFactory() for _ in range(3)]
    sighting = SightingFactory()
    photos = []
    for i in range(6):
        photos.append(add_photo(sighting, version, whales[i % 3], seed=i))
    pipeline.reset()
    yield version, whales, sighting, photos
    pipeline.reset()


def add_photo(sighting, version, whale, seed, status=Photo.Status.CONFIRMED):
    photo = Photo.objects.create(
        sighting=sighting,
        image=f"photos/{seed}.jpg",
        sha256=f"{seed:064d}",
        width=800,
        height=500,
        status=status,
        individual=whale,
    )
    Embedding.objects.create(photo=photo, model_version=version, vector=unit(seed).tobytes())
    return photo


def best(index, seed):
    """(photo id, individual id) of the gallery's best match for unit(seed)."""
    match = index.rank(unit(seed), k=1)[0]
    return int(match.best_item), int(match.label)


def test_triggers_log_every_change_that_can_move_a_photo_in_or_out(gallery_db):
    version, whales, sighting, photos = gallery_db
    GalleryChange.objects.all().delete()
    logged = lambda: sorted(GalleryChange.objects.values_list("photo_id", flat=True))  # noqa: E731

    Photo.objects.filter(pk=photos[0].pk).update(claimed_at=timezone.now())  # not a gallery change
    assert logged() == []
    photo = Photo.objects.get(pk=photos[1].pk)
    photo.status = Photo.Status.REJECTED  # save(): leaves the gallery
    photo.save()
    assert logged() == [photos[1].pk]
    Photo.objects.filter(pk__in=[photos[2].pk, photos[3].pk]).update(individual=whales[1])  # a merge: update()
    assert logged() == sorted([photos[1].pk, photos[2].pk, photos[3].pk])
    Embedding.objects.filter(photo=photos[4]).update(vector=unit(40).tobytes())  # re-embedded after a box fix
    Photo.objects.filter(pk=photos[5].pk).delete()  # cascades to its embedding
    assert logged().count(photos[4].pk) == 1 and logged().count(photos[5].pk) == 2
    assert all(
        abs((c - timezone.now()).total_seconds()) < 60
        for c in GalleryChange.objects.values_list("changed_at", flat=True)
    )


def test_worker_index_follows_changes_without_reading_the_whole_gallery(gallery_db):
    version, whales, sighting, photos = gallery_db
    index = gallery_sync.gallery(version)
    assert len(index) == 6 and best(index, 2) == (photos[2].pk, whales[2].pk)

    with CaptureQueriesContext(connection) as unchanged:
        assert gallery_sync.gallery(version) is index
    assert not any("submissions_photo" in q["sql"] for q in unchanged.captured_queries)  # no membership read

    new = add_photo(sighting, version, whales[1], seed=6)  # confirmed with its embedding
    Photo.objects.filter(pk__in=[photos[0].pk, photos[3].pk]).update(individual=whales[2])  # a merge
    photos[4].delete()
    Embedding.objects.filter(photo=photos[5]).update(vector=unit(50).tobytes())
    pending = add_photo(sighting, version, None, seed=7, status=Photo.Status.AWAITING_REVIEW)  # not in the gallery
    with CaptureQueriesContext(connection) as changed:
        index = gallery_sync.gallery(version)
    membership = [q["sql"] for q in changed.captured_queries if "submissions_photo" in q["sql"]]
    assert len(membership) == 1 and " IN (" in membership[0]  # only the changed photos were read

    assert len(index) == 6  # 6 + new - deleted; the pending photo is not in it
    assert best(index, 6) == (new.pk, whales[1].pk)
    assert best(index, 0) == (photos[0].pk, whales[2].pk) and best(index, 3) == (photos[3].pk, whales[2].pk)
    assert best(index, 50) == (photos[5].pk, whales[2].pk)  # its new vector
    assert str(photos[4].pk) not in index and str(pending.pk) not in index
    with CaptureQueriesContext(connection) as again:
        gallery_sync.gallery(version)
    assert not any("submissions_photo" in q["sql"] for q in again.captured_queries)  # each change applied once


def test_a_change_that_commits_after_a_sync_is_applied_by_the_next_one(gallery_db):
    """The change is logged (and timed) before the sync, but its transaction commits after it."""
    version, whales, sighting, photos = gallery_db
    gallery_sync.gallery(version)
    logged, commit = threading.Event(), threading.Event()

    def slow_merge():
        try:
            with transaction.atomic():
                Photo.objects.filter(pk=photos[1].pk).update(individual=whales[0])
                logged.set()
                commit.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_merge)
    thread.start()
    assert logged.wait(10)
    Photo.objects.filter(pk=photos[2].pk).update(individual=whales[0])  # logged after it, committed first
    index = gallery_sync.gallery(version)  # sees the second change, not the first (a lower id) yet
    assert best(index, 2) == (photos[2].pk, whales[0].pk) and best(index, 1) == (photos[1].pk, whales[1].pk)
    commit.set()
    thread.join()
    late = GalleryChange.objects.filter(photo_id=photos[1].pk).latest("id")
    assert late.id < GalleryChange.objects.filter(photo_id=photos[2].pk).latest("id").id
    index = gallery_sync.gallery(version)
    assert best(index, 1) == (photos[1].pk, whales[0].pk)


def test_a_new_version_and_an_hour_without_sync_read_the_whole_gallery(gallery_db):
    version, whales, sighting, photos = gallery_db
    gallery_sync.gallery(version)
    GalleryChange.objects.all().delete()  # as if pruned, or the edit bypassed the triggers
    Photo.objects.filter(pk=photos[0].pk).update(individual=whales[1])
    GalleryChange.objects.all().delete()
    assert best(gallery_sync.gallery(version), 0) == (photos[0].pk, whales[0].pk)  # the log is all it reads
    gallery_sync.expire_sync()
    assert best(gallery_sync.gallery(version), 0) == (photos[0].pk, whales[1].pk)

    other = ModelVersionFactory()
    Embedding.objects.create(photo=photos[2], model_version=other, vector=unit(2).tobytes())
    index = gallery_sync.gallery(other)
    assert len(index) == 1 and best(index, 2) == (photos[2].pk, whales[2].pk)


def test_each_species_has_its_own_index_and_taking_turns_never_rebuilds_them(gallery_db):
    """Issue 16: a dolphin's model ranks only dolphins, a humpback's only humpbacks, even where one photo's
    vector would match the other species; photos of the two taken in turn keep both indexes (no full read)."""
    humpback_version, whales, sighting, photos = gallery_db
    dolphin = SpeciesFactory(code="TT", common_name="Bottlenose dolphin", profile="dolphin_fin")
    dolphin_version = ModelVersionFactory(is_active=True, species=dolphin)
    fin_whale = IndividualFactory(species=dolphin, catalogue_id="TT-0001")
    fin = add_photo(sighting, dolphin_version, fin_whale, seed=2)  # the very vector of a humpback photo
    Embedding.objects.create(photo=photos[0], model_version=dolphin_version, vector=unit(0).tobytes())  # stray

    humpbacks = gallery_sync.gallery(humpback_version)
    dolphins = gallery_sync.gallery(dolphin_version)
    assert set(humpbacks.labels) == {str(w.pk) for w in whales} and len(humpbacks) == 6
    assert list(dolphins.item_ids) == [str(fin.pk)] and best(dolphins, 0) == (fin.pk, fin_whale.pk)
    with CaptureQueriesContext(connection) as turns:
        assert gallery_sync.gallery(humpback_version) is humpbacks
        assert gallery_sync.gallery(dolphin_version) is dolphins
    assert not any("submissions_photo" in q["sql"] for q in turns.captured_queries)  # no membership read


def test_prune_drops_log_rows_older_than_a_day(gallery_db):
    GalleryChange.objects.all().delete()
    old = GalleryChange.objects.create(photo_id=1, changed_at=timezone.now() - timedelta(hours=25))
    recent = GalleryChange.objects.create(photo_id=2, changed_at=timezone.now() - timedelta(hours=23))
    assert prune_gallery_changes() == 1
    assert list(GalleryChange.objects.values_list("pk", flat=True)) == [recent.pk] and old.pk != recent.pk


SQLITE_SCRIPT = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
import numpy as np
from django.utils import timezone
from identification import pipeline
from identification.models import Embedding, GalleryChange, Individual, ModelVersion, Species
from identification.pipeline import gallery_sync
from submissions.models import Photo, Sighting
sp = Species.objects.create(common_name="Humpback", code="HW")
v = ModelVersion.objects.create(name="v", artifact_dir="v", is_active=True)
a, b = (Individual.objects.create(catalogue_id=f"HW-{i}", species=sp) for i in (1, 2))
s = Sighting.objects.create(species=sp, observed_at=timezone.now())
def vec(i):
    x = np.random.default_rng(i).standard_normal(8).astype(np.float32)
    return x / np.linalg.norm(x)
ps = []
for i in range(3):
    p = Photo.objects.create(sighting=s, image=f"{i}.jpg", sha256=f"{i:064d}", width=10, height=10,
                             status=Photo.Status.CONFIRMED, individual=a)
    Embedding.objects.create(photo=p, model_version=v, vector=vec(i).tobytes())
    ps.append(p)
before = len(gallery_sync.gallery(v))
Photo.objects.filter(pk=ps[0].pk).update(individual=b)
ps[2].delete()
index = gallery_sync.gallery(v)
m = index.rank(vec(0), k=1)[0]
relabelled = m.best_item == str(ps[0].pk) and m.label == str(b.pk)
print("RESULT", before, len(index), relabelled, GalleryChange.objects.count())
"""


@pytest.mark.django_db(transaction=False)
def test_sqlite_first_run_database_has_the_same_triggers(tmp_path):
    """``make run``'s SQLite database: the triggers' text timestamps compare with Django's."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "whalesite.settings.dev",
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "WHALESITE_VAR_DIR": str(tmp_path / "var"),
    }
    (tmp_path / "check.py").write_text(SQLITE_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(tmp_path / "check.py")], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    result = [line for line in out.stdout.splitlines() if line.startswith("RESULT")]
    assert result, out.stderr[-2000:]
    # 3 members, then 2 with the relabel applied; 3 inserts + 1 relabel + a delete and its cascade logged
    assert result[0].split()[1:] == ["3", "2", "True", "6"]


@pytest.fixture
def snapshots(gallery_db, settings, tmp_path, monkeypatch):
    """Snapshots for any gallery size, under a fresh ML_ROOT."""
    settings.ML_ROOT = tmp_path / "ml"
    monkeypatch.setattr(gallery_sync, "GALLERY_SNAPSHOT_MIN", 1)
    return gallery_db


def embedding_fetches(queries):
    """The photo ids of each vector fetch (``Embedding ... photo_id IN (...)``) among captured queries."""
    out = []
    for q in queries:
        sql = q["sql"]
        if sql.startswith("SELECT") and "identification_embedding" in sql and 'photo_id" IN (' in sql:
            inside = sql.split('photo_id" IN (', 1)[1].split(")", 1)[0]
            out.append(sorted(int(v) for v in inside.split(",")))
    return out


def test_a_fresh_worker_starts_from_the_snapshot_and_catches_up(snapshots, caplog):
    version, whales, sighting, photos = snapshots
    gallery_sync.gallery(version)  # builds the index and saves its snapshot
    assert (gallery_sync.snapshot_dir(version) / "latest.json").is_file()

    new = add_photo(sighting, version, whales[1], seed=6)
    Photo.objects.filter(pk=photos[0].pk).update(individual=whales[2])
    photos[4].delete()
    Embedding.objects.filter(photo=photos[5]).update(vector=unit(50).tobytes())
    other = ModelVersionFactory()  # re-embedding for another version does not concern this one
    Embedding.objects.create(photo=photos[1], model_version=other, vector=unit(60).tobytes())

    pipeline.reset()  # a new worker process
    with (
        caplog.at_level("INFO", logger="identification.pipeline.gallery_sync"),
        CaptureQueriesContext(connection) as cq,
    ):
        index = gallery_sync.gallery(version)
    assert any("from its snapshot" in r.getMessage() for r in caplog.records)
    # vectors fetched only for what changed after the snapshot: not the whole gallery
    assert embedding_fetches(cq.captured_queries) == [sorted([photos[0].pk, photos[5].pk, new.pk])]
    assert len(index) == 6 and str(photos[4].pk) not in index
    assert best(index, 6) == (new.pk, whales[1].pk) and best(index, 0) == (photos[0].pk, whales[2].pk)
    assert best(index, 50) == (photos[5].pk, whales[2].pk) and best(index, 1) == (photos[1].pk, whales[1].pk)


def test_a_snapshot_the_change_log_no_longer_covers_is_rebuilt(snapshots, caplog):
    import json

    version, whales, sighting, photos = snapshots
    gallery_sync.gallery(version)
    pointer_file = gallery_sync.snapshot_dir(version) / "latest.json"
    pointer = json.loads(pointer_file.read_text())
    pointer["saved_at"] = (timezone.now() - timedelta(seconds=gallery_sync.GALLERY_CHANGE_RETENTION_S)).isoformat()
    pointer_file.write_text(json.dumps(pointer))
    Photo.objects.filter(pk=photos[0].pk).update(individual=whales[1])
    GalleryChange.objects.all().delete()  # pruned: the snapshot cannot learn of that change

    pipeline.reset()
    with caplog.at_level("INFO", logger="identification.pipeline.gallery_sync"):
        index = gallery_sync.gallery(version)
    assert not any("from its snapshot" in r.getMessage() for r in caplog.records)
    assert best(index, 0) == (photos[0].pk, whales[1].pk)
    assert json.loads(pointer_file.read_text())["folder"] != pointer["folder"]  # a new snapshot
    assert len([p for p in gallery_sync.snapshot_dir(version).iterdir() if p.is_dir()]) == 2  # the two newest kept


def test_a_damaged_snapshot_is_skipped_not_fatal(snapshots):
    import json

    version, whales, sighting, photos = snapshots
    gallery_sync.gallery(version)
    folder = (
        gallery_sync.snapshot_dir(version)
        / json.loads((gallery_sync.snapshot_dir(version) / "latest.json").read_text())["folder"]
    )
    (folder / "items.npz").write_bytes(b"not a numpy file")
    pipeline.reset()
    index = gallery_sync.gallery(version)
    assert len(index) == 6 and best(index, 2) == (photos[2].pk, whales[2].pk)


@pytest.mark.django_db(transaction=False)
def test_reembed_gallery_leaves_a_snapshot_that_the_next_worker_starts_from(active_model, monkeypatch, caplog):
    """Before a promotion, reembed_gallery builds the new version's index once and saves it, so the
    workers load it instead of each building it (run in process, with the real demo model)."""
    import shutil

    from identification.tasks import reembed_gallery

    monkeypatch.setattr(gallery_sync, "GALLERY_SNAPSHOT_MIN", 1)
    version = active_model.version
    photos = [p for ps in active_model.gallery.values() for p in ps]
    Embedding.objects.filter(photo__in=photos[:2], model_version=version).delete()  # to be embedded again
    pipeline.reset()
    try:
        assert reembed_gallery(version.pk, promote=False) == "embedded"
        assert (gallery_sync.snapshot_dir(version) / "latest.json").is_file()
        pipeline.reset()  # the next worker process
        with (
            caplog.at_level("INFO", logger="identification.pipeline.gallery_sync"),
            CaptureQueriesContext(connection) as cq,
        ):
            index = gallery_sync.gallery(version)
        assert any("from its snapshot" in r.getMessage() for r in caplog.records)
        assert embedding_fetches(cq.captured_queries) == []  # every vector came from the snapshot
        assert sorted(index.item_ids) == sorted(str(p.pk) for p in photos)
    finally:
        shutil.rmtree(gallery_sync.snapshot_dir(version), ignore_errors=True)
        pipeline.reset()


def test_prune_removes_the_snapshots_of_inactive_versions_the_log_no_longer_covers(snapshots):
    import json

    version, whales, sighting, photos = snapshots
    old, recent = ModelVersionFactory(), ModelVersionFactory()
    for v in (version, old, recent):
        Embedding.objects.bulk_create(
            [
                Embedding(photo=p, model_version=v, vector=unit(p.pk).tobytes())
                for p in photos
                if not Embedding.objects.filter(photo=p, model_version=v).exists()
            ]
        )
        pipeline.reset()
        gallery_sync.gallery(v)  # saves its snapshot
    stale = (timezone.now() - timedelta(seconds=gallery_sync.GALLERY_CHANGE_RETENTION_S)).isoformat()
    for v in (version, old):  # the active one and an inactive one, both older than the log
        pointer = gallery_sync.snapshot_dir(v) / "latest.json"
        pointer.write_text(json.dumps({**json.loads(pointer.read_text()), "saved_at": stale}))
    assert prune_gallery_changes() >= 0
    assert not gallery_sync.snapshot_dir(old).exists()
    assert (gallery_sync.snapshot_dir(recent) / "latest.json").is_file()  # a rollback could still start from it
    assert (gallery_sync.snapshot_dir(version) / "latest.json").is_file()  # active: refreshed by its workers
