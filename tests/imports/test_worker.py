"""The bulk import on the real Celery worker: a worker killed in the middle of a chunk (mid-row, its
transaction open) leaves the chunk's message unacknowledged; the restarted worker gets it again
(acks_late, the fixture's 10 s visibility timeout), skips the rows done and finishes, with every row
imported once. And the photos of one import, each in its own sighting, are matched against each other."""

import time

import psycopg
import pytest
from django.db import connection

from identification.models import Decision, Individual
from submissions.imports import run
from submissions.models import BulkImport, ImportRow, Photo
from tests.conftest import wait_for
from tests.factories import SpeciesFactory, UserFactory
from tests.imports.helpers import photos, photos_zip, row, sheet_csv

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROWS = 30  # two chunks of IMPORT_CHUNK_ROWS (25)


def _blocker():
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"] or "postgres", dbname=db["NAME"]
    )


def _lock_waiters(conn) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    ).fetchone()[0]


def test_an_import_resumes_after_its_worker_is_killed_mid_chunk_and_imports_each_row_once(celery_worker):
    SpeciesFactory()
    moderator = UserFactory(email="mod@example.org", role="moderator")
    rows = [row(f"p{i:04d}.jpg", catalogue_id=f"HW-{700 + i % 5:04d}") for i in range(ROWS)]
    bulk = run.create_import(user=moderator, sheet=sheet_csv(rows), archive=photos_zip(photos(ROWS)))

    def imported() -> int:
        return bulk.rows.filter(status=ImportRow.Status.IMPORTED).count()

    run.start_import(bulk, moderator)
    wait_for(lambda: imported() >= 3, timeout=120, interval=0.02, message="the first rows to be imported")
    # freeze the worker inside its next row: the audit log's INSERT waits on this lock, with the row's
    # sighting and photo written in its open transaction
    blocker = _blocker()
    watcher = _blocker()
    watcher.autocommit = True
    try:
        blocker.execute("LOCK TABLE identification_decision IN SHARE MODE")
        wait_for(lambda: _lock_waiters(watcher) >= 1, timeout=30, interval=0.05, message="the worker to block")
        done_before = imported()
        assert 3 <= done_before < ROWS, "the import finished before the worker could be killed"
        celery_worker.kill()  # SIGKILL mid-row: the chunk's message was never acknowledged
    finally:
        blocker.rollback()
        blocker.close()
        watcher.close()
    assert imported() == done_before  # the killed row's transaction was rolled back
    assert Photo.objects.filter(bulk_import=bulk).count() == done_before

    celery_worker.restart()
    started = time.monotonic()
    try:
        wait_for(
            lambda: BulkImport.objects.get(pk=bulk.pk).status == BulkImport.Status.DONE,
            timeout=180,
            interval=0.5,
            message="the redelivered chunk to finish the import",
        )
    except AssertionError:
        print(celery_worker.log_tail(4000))
        raise
    print(f"resumed and finished {time.monotonic() - started:.1f} s after the restart ({done_before} rows before)")
    assert imported() == ROWS
    photos_of = list(bulk.rows.values_list("photo_id", flat=True))
    assert len(set(photos_of)) == ROWS and None not in photos_of
    assert Photo.objects.filter(bulk_import=bulk).count() == ROWS
    assert Decision.objects.filter(details__bulk_import=bulk.pk).count() == ROWS
    assert Individual.objects.filter(catalogue_id__startswith="HW-07").count() == 5
    assert sorted(Photo.objects.in_gallery().values_list("individual__catalogue_id", flat=True)).count("HW-0700") == 6


def test_the_photos_of_one_import_are_matched_against_each_other(active_model, celery_worker):
    demo = active_model
    moderator = type(demo.users["moderator"]).objects.get(pk=demo.users["moderator"].pk)
    files = {f"new-{i}.jpg": path.read_bytes() for i, path in enumerate(demo.new_whale)}
    files["known.jpg"] = next(iter(demo.held_out.values())).read_bytes()
    rows = [row(name) for name in files]  # no ids: each goes through the pipeline, in a sighting of its own
    bulk = run.create_import(user=moderator, sheet=sheet_csv(rows), archive=photos_zip(files))
    run.start_import(bulk, moderator)

    def reviewed():
        statuses = list(Photo.objects.filter(bulk_import=bulk).values_list("status", flat=True))
        return len(statuses) == len(files) and all(s in ("awaiting_review", "failed") for s in statuses)

    wait_for(reviewed, timeout=240, interval=0.5, message="the imported photos to be processed")
    imported = list(Photo.objects.filter(bulk_import=bulk))
    assert all(p.status == Photo.Status.AWAITING_REVIEW for p in imported), [p.failure_reason for p in imported]
    assert len({p.sighting_id for p in imported}) == len(files)  # batch-mates across sightings: by the import
    ids = {p.pk for p in imported}
    for p in imported:
        mates = {m["photo_id"] for m in p.batch_matches}
        assert mates == ids - {p.pk}, (p.pk, p.batch_matches)
        assert [m["score"] for m in p.batch_matches] == sorted((m["score"] for m in p.batch_matches), reverse=True)
    assert all(p.suggestions.exists() for p in imported)  # and ranked against the gallery, as uploads are
