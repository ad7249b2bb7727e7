"""Running an import's chunks (the task's body, called here in this process; the worker runs the same
in tests/imports/test_worker.py): rows with ids create or extend individuals, never twice; the others
wait for the pipeline; photos pass the upload's checks; a chunk run again changes nothing."""

import pytest
from django.core.files.base import ContentFile

from identification.models import Decision, Individual, TrainingExample
from submissions.imports import run
from submissions.models import BulkImport, ImportRow, Photo
from tests.factories import IndividualFactory, PhotoFactory, SpeciesFactory, UserFactory, jpeg_bytes
from tests.imports.helpers import photos, photos_zip, row, sheet_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator():
    SpeciesFactory()
    return UserFactory(email="mod@example.org", role="moderator")


def run_all(bulk) -> None:
    """Every chunk in order, as the worker's chain does (the chain's next message is queued on commit)."""
    for chunk in range(run.chunk_of(1 + bulk.rows.count()) + 1):
        run.run_chunk(bulk.pk, chunk)


def test_rows_with_ids_create_or_extend_individuals_once_and_the_rest_wait_for_review(moderator, settings):
    settings.IMPORT_CHUNK_ROWS = 2  # several chunks
    known = IndividualFactory(catalogue_id="HW-0100", nickname="")
    held = PhotoFactory(image=ContentFile(jpeg_bytes(seed=77), name="held.jpg"))
    files = photos(6) | {"held-again.jpg": jpeg_bytes(seed=77), "broken.jpg": b"\xff\xd8 not really a jpeg"}
    held.sha256 = __import__("hashlib").sha256(files["held-again.jpg"]).hexdigest()
    held.save()
    rows = [
        row("p0000.jpg", catalogue_id="HW-0500", nickname="Fresh"),
        row("p0001.jpg", catalogue_id="HW-0500"),  # the same new id again: extends, never a second whale
        row("p0002.jpg", catalogue_id="HW-0100", nickname="Notch"),  # extends the one held, names it
        row("p0003.jpg"),
        row("p0004.jpg", latitude="200"),  # invalid: not imported
        row("held-again.jpg"),  # a photo already held: flagged
        row("broken.jpg"),  # refused by the upload's checks, alone
        row("p0005.jpg", catalogue_id="HW-0500"),
    ]
    bulk = run.create_import(user=moderator, sheet=sheet_csv(rows), archive=photos_zip(files))
    assert run.start_import(bulk, moderator) == 7
    run_all(bulk)
    bulk.refresh_from_db()

    assert bulk.status == BulkImport.Status.DONE
    statuses = dict(bulk.rows.values_list("number", "status"))
    assert statuses == {2: "imported", 3: "imported", 4: "imported", 5: "imported", 6: "skipped"} | {
        7: "duplicate",
        8: "failed",
        9: "imported",
    }
    assert Individual.objects.filter(catalogue_id="HW-0500").count() == 1
    fresh = Individual.objects.get(catalogue_id="HW-0500")
    assert fresh.nickname == "Fresh" and fresh.created_by == moderator
    known.refresh_from_db()
    assert known.nickname == "Notch"
    assert Photo.objects.in_gallery().filter(individual=fresh).count() == 3
    assert Photo.objects.in_gallery().filter(individual=known).count() == 1
    imported = Photo.objects.filter(bulk_import=bulk)
    assert imported.count() == 5 and all(p.species == p.sighting.species for p in imported)  # each photo's own
    # the audit log names the importer; the photos are training data
    decisions = Decision.objects.filter(details__bulk_import=bulk.pk)
    assert decisions.count() == 4 and set(decisions.values_list("moderator", flat=True)) == {moderator.pk}
    assert list(decisions.filter(individual=fresh).values_list("action", flat=True)).count("new_individual") == 1
    assert TrainingExample.objects.filter(photo__bulk_import=bulk).count() == 4
    # no id: uploaded, waiting for the pipeline like an upload
    waiting = bulk.rows.get(number=5).photo
    assert waiting.status == Photo.Status.UPLOADED and waiting.bulk_import_id == bulk.pk
    assert waiting.sighting.observer_name == "A. Watcher" and waiting.licence == "CC-BY"
    assert bulk.rows.get(number=7).photo_id == held.pk
    assert "already held; it was not added again" in bulk.rows.get(number=7).errors[0]
    assert "broken.jpg: " in bulk.rows.get(number=8).errors[0]
    p = run.progress(bulk)
    assert (p.total, p.imported, p.duplicates, p.failed, p.left, p.skipped) == (7, 5, 1, 1, 0, 1)

    # a chunk delivered again (a worker died after its work but before its ack) changes nothing
    photos_before = Photo.objects.count()
    BulkImport.objects.filter(pk=bulk.pk).update(status=BulkImport.Status.RUNNING)
    run_all(bulk)
    assert Photo.objects.count() == photos_before
    assert Decision.objects.filter(details__bulk_import=bulk.pk).count() == 4


def test_two_imports_of_one_new_id_make_one_individual(moderator):
    for seed in (0, 100):
        bulk = run.create_import(
            user=moderator,
            sheet=sheet_csv([row("p0000.jpg", catalogue_id="HW-0900")]),
            archive=photos_zip(photos(1, seed=seed)),
        )
        assert bulk.rows.get().status == ImportRow.Status.VALID
        run.start_import(bulk, moderator)
        run_all(bulk)
    whale = Individual.objects.get(catalogue_id="HW-0900")
    assert whale.photos.count() == 2
    assert list(Decision.objects.filter(individual=whale).order_by("pk").values_list("action", flat=True)) == [
        "new_individual",
        "confirm",
    ]


def test_a_merged_id_extends_the_individual_it_was_merged_into(moderator):
    target = IndividualFactory(catalogue_id="HW-0001")
    IndividualFactory(catalogue_id="HW-0002", merged_into=target)
    bulk = run.create_import(
        user=moderator, sheet=sheet_csv([row("p0000.jpg", catalogue_id="HW-0002")]), archive=photos_zip(photos(1))
    )
    run.start_import(bulk, moderator)
    run_all(bulk)
    assert bulk.rows.get().photo.individual == target


def test_resume_sends_the_first_chunk_left_and_finishes_an_import_with_nothing_left(
    moderator, django_capture_on_commit_callbacks
):
    bulk = run.create_import(user=moderator, sheet=sheet_csv([row("p0000.jpg")]), archive=photos_zip(photos(1)))
    run.start_import(bulk, moderator)
    bulk.refresh_from_db()
    run.run_chunk(bulk.pk, 0)
    assert run.resume(bulk, moderator)
    bulk.refresh_from_db()
    assert bulk.status == BulkImport.Status.DONE and bulk.finished_at is not None


def test_the_command_checks_prints_each_error_and_starts_the_valid_rows(moderator, tmp_path):
    from io import StringIO

    from django.core.management import CommandError, call_command

    (tmp_path / "s.csv").write_bytes(sheet_csv([row("p0000.jpg"), row("p0001.jpg", species="Orca")]).read())
    (tmp_path / "p.zip").write_bytes(photos_zip(photos(2)).read())
    out = StringIO()
    call_command("import_sheet", str(tmp_path / "s.csv"), str(tmp_path / "p.zip"), user=moderator.email, stdout=out)
    assert "line 3: Unknown species 'Orca'" in out.getvalue() and "1 valid row(s), 1 with errors" in out.getvalue()
    assert BulkImport.objects.get().status == BulkImport.Status.CHECKED

    call_command(
        "import_sheet", str(tmp_path / "s.csv"), str(tmp_path / "p.zip"), user=moderator.email, start=True, stdout=out
    )
    assert BulkImport.objects.filter(status=BulkImport.Status.RUNNING).count() == 1
    assert "importing 1 row(s) on the workers" in out.getvalue()
    (tmp_path / "bad.csv").write_text("photo,when\np0000.jpg,2024-01-01\n")
    with pytest.raises(CommandError, match="missing columns: observed_at, species"):
        call_command("import_sheet", str(tmp_path / "bad.csv"), str(tmp_path / "p.zip"), user=moderator.email)
