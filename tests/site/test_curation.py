"""Curation services (in process, real PostgreSQL): undo, crop-box correction, merge, split,
consensus review with disputes, queue filters / orders / claims."""

from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.utils import timezone

from follows.following import follow
from identification.forms import ReviewFilterForm
from identification.models import Decision, Embedding, Individual, Suggestion, TrainingExample
from identification.review.curation import correct_box, merge_individuals, split_photo, undo_last_decision
from identification.review.decisions import confirm_match, name_new_individual, reject_photo
from identification.review.notify import send_decision_emails
from identification.review.queue import claim_next, review_queue
from ml.types import Box
from submissions.models import Photo
from tests.factories import IndividualFactory, ModelVersionFactory, PhotoFactory, SightingFactory, UserFactory

pytestmark = pytest.mark.django_db


def awaiting(**kw):
    return PhotoFactory(status=Photo.Status.AWAITING_REVIEW, **kw)


@pytest.fixture
def mods():
    return UserFactory(role="moderator"), UserFactory(role="moderator"), UserFactory(role="moderator")


@pytest.fixture
def admin():
    user = UserFactory(role="admin")
    return type(user).objects.get(pk=user.pk)


# --------------------------------------------------------------------------- undo


def test_undo_confirm_reverses_photo_and_removes_queued_example(mods):
    mod, other, _ = mods
    whale = IndividualFactory()
    photo = awaiting()
    decision = confirm_match(photo=photo, moderator=mod, individual=whale)
    assert TrainingExample.objects.filter(photo=photo).exists()
    with pytest.raises(ValidationError):
        undo_last_decision(moderator=other)  # nothing of theirs
    undone = undo_last_decision(moderator=mod)
    assert undone.pk == decision.pk and undone.undone_at is not None
    photo.refresh_from_db()
    assert photo.status == Photo.Status.AWAITING_REVIEW and photo.individual is None and photo.claimed_by == mod
    assert not TrainingExample.objects.filter(photo=photo).exists()
    assert photo not in Photo.objects.in_gallery()
    assert Decision.objects.filter(pk=decision.pk).exists()  # audit kept
    with pytest.raises(ValidationError):
        undo_last_decision(moderator=mod)  # already undone, nothing left
    # the decision can be made again
    reject_photo(photo=photo, moderator=mod, reason="poor_quality")
    undo_last_decision(moderator=mod)
    photo.refresh_from_db()
    assert photo.status == Photo.Status.AWAITING_REVIEW and photo.reject_reason == ""


def test_undo_new_individual_deletes_it_only_without_other_photos(mods):
    mod, _, _ = mods
    lonely, shared = awaiting(), awaiting()
    first = name_new_individual(photo=lonely, moderator=mod, nickname="Nova")
    undo_last_decision(moderator=mod)
    assert not Individual.objects.filter(pk=first.pk).exists()
    log = Decision.objects.get(photo=lonely, action=Decision.Action.NEW_INDIVIDUAL)
    assert log.undone_at and log.details["deleted_individual"] == first.catalogue_id

    second = name_new_individual(photo=shared, moderator=mod)
    other_photo = awaiting()
    confirm_match(photo=other_photo, moderator=UserFactory(role="moderator"), individual=second)
    undo_last_decision(moderator=mod)
    assert Individual.objects.filter(pk=second.pk).exists()  # it still has another photo
    shared.refresh_from_db()
    assert shared.status == Photo.Status.AWAITING_REVIEW


def test_undo_refuses_when_photo_changed_since(mods):
    mod, other, _ = mods
    a, b = IndividualFactory(), IndividualFactory()
    photo = awaiting()
    confirm_match(photo=photo, moderator=mod, individual=a)
    split_photo(photo=photo, moderator=other)
    with pytest.raises(ValidationError, match="changed"):
        undo_last_decision(moderator=mod)
    assert photo.pk and b.pk


# --------------------------------------------------------------------------- crop boxes


def test_correct_box_stores_moderator_box_logs_and_requeues(mods, django_capture_on_commit_callbacks):
    mod, _, _ = mods
    version = ModelVersionFactory(is_active=True)
    photo = awaiting(model_version=version)
    Embedding.objects.create(photo=photo, model_version=version, vector=np.ones(4, np.float32).tobytes())
    with django_capture_on_commit_callbacks() as callbacks:
        decision = correct_box(photo=photo, moderator=mod, box=Box(300, 190, 20, 10))
    assert len(callbacks) == 1  # rerank_photo queued (it would send; not executed here)
    photo.refresh_from_db()
    assert (photo.box_x0, photo.box_y0, photo.box_x1, photo.box_y1) == (20, 10, 300, 190)
    assert photo.box_source == Photo.BoxSource.MODERATOR and not photo.box_flagged
    assert decision.action == Decision.Action.BOX and decision.details["new"] == [20, 10, 300, 190]
    assert not Embedding.objects.filter(photo=photo).exists()  # re-embedded with the new crop
    assert list(Photo.objects.with_corrected_boxes()) == [photo]
    with pytest.raises(ValidationError):
        correct_box(photo=photo, moderator=mod, box=Box(5, 5, 8, 9))  # too small


@pytest.mark.slow
def test_rerank_after_box_correction_embeds_the_moderator_crop(active_model, demo_identifier):
    """The pipeline (rerank_photo, run in process) uses the stored moderator box as the given box."""
    from django.core.files.base import ContentFile

    from identification import pipeline
    from identification.tasks import rerank_photo
    from ml.images import load_image

    pipeline.reset()
    mod = active_model.users["moderator"]
    label = next(iter(active_model.held_out))
    data = active_model.held_out[label].read_bytes()
    photo = PhotoFactory(
        status=Photo.Status.AWAITING_REVIEW,
        model_version=active_model.version,
        sighting__species=active_model.species,
        image=ContentFile(data, name="q.jpg"),
    )
    box = Box(5, 5, photo.width * 0.6, photo.height * 0.7)
    correct_box(photo=photo, moderator=mod, box=box)
    assert rerank_photo(photo.pk) == "ok"
    photo.refresh_from_db()
    assert photo.box_source == Photo.BoxSource.MODERATOR and photo.crop
    stored = np.frombuffer(Embedding.objects.get(photo=photo, model_version=active_model.version).vector, np.float32)
    expected = demo_identifier.embed(
        [demo_identifier.prepare(load_image(data), box=photo.box, upside_down=False).crop]
    )[0]
    assert np.allclose(stored, expected, atol=1e-4)
    assert Suggestion.objects.filter(photo=photo, model_version=active_model.version).exists()


def test_box_fix_on_a_gallery_photo_replaces_its_crop_and_vector(active_model, demo_identifier):
    """A gallery photo's corrected box re-embeds it (reembed_gallery, run in process) and its crop
    PNG is redrawn from the new box, so the moderator sees what the model now sees."""
    import io

    from PIL import Image

    from identification import pipeline
    from identification.tasks import reembed_gallery
    from ml.images import load_image

    pipeline.reset()
    mod = active_model.users["moderator"]
    photo = next(iter(active_model.gallery.values()))[0]
    photo.crop.save("old.png", ContentFile(b"stale"), save=True)
    old_crop = photo.crop.name
    with photo.image.open("rb") as fh:
        width, height = Image.open(io.BytesIO(fh.read())).size
    box = Box(2, 2, width * 0.5, height * 0.6)
    correct_box(photo=photo, moderator=mod, box=box)
    assert reembed_gallery(active_model.version.pk, promote=False) == "embedded"
    photo.refresh_from_db()
    assert photo.box_source == Photo.BoxSource.MODERATOR and photo.crop.name != old_crop
    with photo.crop.open("rb") as fh:
        crop = Image.open(io.BytesIO(fh.read()))
    assert crop.mode == "L" and crop.size == (demo_identifier.image_size, demo_identifier.image_size)
    with photo.image.open("rb") as fh:
        data = fh.read()
    stored = np.frombuffer(Embedding.objects.get(photo=photo, model_version=active_model.version).vector, np.float32)
    expected = demo_identifier.embed(
        [demo_identifier.prepare(load_image(data), box=photo.box, upside_down=False).crop]
    )[0]
    assert np.allclose(stored, expected, atol=1e-4)


# --------------------------------------------------------------------------- merge and split


def test_merge_moves_photos_examples_suggestions_and_keeps_history(mods):
    mod, _, _ = mods
    source, target = IndividualFactory(nickname="Dup"), IndividualFactory()
    p1 = PhotoFactory(status=Photo.Status.CONFIRMED, individual=source)
    TrainingExample.objects.create(photo=p1, individual=source)
    query = awaiting()
    version = ModelVersionFactory()
    Suggestion.objects.create(photo=query, model_version=version, rank=1, individual=source, score=0.8)
    old = IndividualFactory(merged_into=source)
    decision = merge_individuals(source=source, target=target, moderator=mod)
    source.refresh_from_db()
    target.refresh_from_db()
    p1.refresh_from_db()
    assert source.merged_into == target and p1.individual == target
    assert TrainingExample.objects.get(photo=p1).individual == target
    assert Suggestion.objects.get(photo=query).individual == target
    assert Individual.objects.get(pk=old.pk).merged_into == target
    assert target.nickname == "Dup"
    assert decision.action == Decision.Action.MERGE
    assert decision.details["source_id"] == source.pk and decision.details["target_id"] == target.pk
    assert list(Individual.objects.active().filter(pk__in=[source.pk, target.pk])) == [target]
    with pytest.raises(ValidationError):
        merge_individuals(source=source, target=target, moderator=mod)
    # a later confirm of the merged-away id lands on the target
    later = awaiting()
    confirm_match(photo=later, moderator=mod, individual=source)
    later.refresh_from_db()
    assert later.individual == target


def test_split_sends_photo_back_to_review(mods, django_capture_on_commit_callbacks):
    mod, _, _ = mods
    whale = IndividualFactory()
    photo = PhotoFactory(status=Photo.Status.CONFIRMED, individual=whale)
    TrainingExample.objects.create(photo=photo, individual=whale, status=TrainingExample.Status.QUEUED)
    with django_capture_on_commit_callbacks() as callbacks:
        decision = split_photo(photo=photo, moderator=mod)
    assert len(callbacks) == 1  # re-ranked
    photo.refresh_from_db()
    assert photo.status == Photo.Status.AWAITING_REVIEW and photo.individual is None
    assert TrainingExample.objects.get(photo=photo).status == TrainingExample.Status.EXCLUDED
    assert not TrainingExample.objects.usable().filter(photo=photo).exists()
    assert photo not in Photo.objects.in_gallery()
    assert decision.action == Decision.Action.SPLIT and decision.individual == whale
    with pytest.raises(ValidationError):
        split_photo(photo=photo, moderator=mod)


# --------------------------------------------------------------------------- consensus


def test_consensus_two_agreeing_moderators(mods, settings, mailoutbox, django_capture_on_commit_callbacks):
    settings.REVIEW_CONSENSUS = 2
    a, b, _ = mods
    earlier = UserFactory()
    whale = IndividualFactory(nickname="Moby")
    PhotoFactory(status=Photo.Status.CONFIRMED, individual=whale, sighting=SightingFactory(submitted_by=earlier))
    follow(earlier, whale, automatic=True)  # as their own confirmed photo (or the follows migration) made them
    photo = awaiting()
    with django_capture_on_commit_callbacks() as callbacks:
        vote = confirm_match(photo=photo, moderator=a, individual=whale)
    assert callbacks == []  # no email, no re-rank: not final
    photo.refresh_from_db()
    assert vote.pending and vote.details["consensus"] == "1 of 2"
    assert photo.status == Photo.Status.AWAITING_REVIEW and not photo.needs_admin and photo.claimed_by is None
    assert not TrainingExample.objects.filter(photo=photo).exists()
    assert send_decision_emails(vote.pk) == 0  # a vote never emails
    with pytest.raises(ValidationError, match="already"):
        confirm_match(photo=photo, moderator=a, individual=whale)
    assert photo not in review_queue(a) and photo in review_queue(b)

    final = confirm_match(photo=photo, moderator=b, individual=whale)
    photo.refresh_from_db()
    assert not final.pending and final.details["votes"] == [vote.pk] and final.details["consensus"] == "2 of 2"
    assert photo.status == Photo.Status.CONFIRMED and photo.individual == whale
    assert TrainingExample.objects.get(photo=photo).status == TrainingExample.Status.QUEUED
    assert not Decision.objects.open_votes().filter(photo=photo).exists()
    assert send_decision_emails(final.pk) == 2  # the watcher, and "seen again" to the earlier one
    body = "\n".join(m.subject + m.body for m in mailoutbox)
    assert whale.catalogue_id in body and "Moby" in body and "seen again" in body
    assert f"/individuals/{whale.catalogue_id}/" in body and f"/{whale.pk}/" not in body


def test_consensus_new_individual_created_once_with_nickname(mods, settings):
    settings.REVIEW_CONSENSUS = 2
    a, b, _ = mods
    photo = awaiting()
    before = Individual.objects.count()
    assert name_new_individual(photo=photo, moderator=a, nickname="Nova") is None
    assert Individual.objects.count() == before
    created = name_new_individual(photo=photo, moderator=b)
    assert created.nickname == "Nova" and Individual.objects.count() == before + 1


@pytest.mark.parametrize("second", ["other_whale", "reject"])
def test_consensus_disagreement_goes_to_admin(mods, admin, settings, second):
    settings.REVIEW_CONSENSUS = 2
    a, b, c = mods
    x, y = IndividualFactory(), IndividualFactory()
    photo = awaiting()
    confirm_match(photo=photo, moderator=a, individual=x)
    if second == "reject":
        reject_photo(photo=photo, moderator=b, reason="poor_quality")
    else:
        confirm_match(photo=photo, moderator=b, individual=y)
    photo.refresh_from_db()
    assert photo.status == Photo.Status.AWAITING_REVIEW and photo.needs_admin
    assert list(Photo.objects.disputed()) == [photo]
    assert photo not in review_queue(c)
    with pytest.raises(ValidationError, match="administrator"):
        confirm_match(photo=photo, moderator=c, individual=x)
    final = confirm_match(photo=photo, moderator=admin, individual=y)
    photo.refresh_from_db()
    assert photo.status == Photo.Status.CONFIRMED and photo.individual == y and not photo.needs_admin
    assert final.details["admin_resolved"] and not Photo.objects.disputed().exists()
    assert TrainingExample.objects.get(photo=photo).individual == y


def test_undo_a_vote_clears_the_dispute(mods, settings):
    settings.REVIEW_CONSENSUS = 2
    a, b, _ = mods
    photo = awaiting()
    confirm_match(photo=photo, moderator=a, individual=IndividualFactory())
    reject_photo(photo=photo, moderator=b, reason="not_a_fluke")
    assert Photo.objects.disputed().exists()
    undo_last_decision(moderator=b)
    photo.refresh_from_db()
    assert not photo.needs_admin and photo.status == Photo.Status.AWAITING_REVIEW
    assert Decision.objects.open_votes().filter(photo=photo).count() == 1


# --------------------------------------------------------------------------- queue


def _scored(score, **kw):
    version = ModelVersionFactory()
    photo = awaiting(model_version=version, **kw)
    Suggestion.objects.create(photo=photo, model_version=version, rank=1, individual=None, score=0.5)
    Suggestion.objects.create(photo=photo, model_version=version, rank=2, individual=IndividualFactory(), score=score)
    return photo


def test_queue_filters_and_orders(mods):
    mod, _, _ = mods
    now = timezone.now()
    north = _scored(
        0.4,
        sighting__place_name="Húsavík Bay",
        sighting__latitude=66.05,
        sighting__longitude=-17.3,
        sighting__observed_at=now - timedelta(days=40),
    )
    south = _scored(
        0.9,
        sighting__place_name="Tonga",
        sighting__latitude=-18.6,
        sighting__longitude=-173.9,
        sighting__observed_at=now - timedelta(days=2),
    )
    mid = _scored(
        0.7,
        sighting__place_name="Azores",
        sighting__latitude=38.5,
        sighting__longitude=-28.0,
        sighting__observed_at=now - timedelta(days=10),
    )

    def run(**params):
        form = ReviewFilterForm(params)
        assert form.is_valid(), form.errors
        return list(form.apply(review_queue(mod)))

    assert run() == [north, south, mid]  # oldest uploaded first
    assert run(order="confident") == [south, mid, north]
    assert [p.top_score for p in run(order="confident")] == pytest.approx([0.9, 0.7, 0.4])
    assert run(place="húsavík") == [north]
    assert run(lat_min=30, lat_max=70, lon_min=-30, lon_max=0) == [north, mid]
    assert run(score_min=0.6, score_max=0.8) == [mid]
    assert run(date_from=(now - timedelta(days=15)).date().isoformat()) == [south, mid]
    assert run(date_to=(now - timedelta(days=15)).date().isoformat()) == [north]


def test_claims_two_moderators_never_get_the_same_photo(mods):
    a, b, c = mods
    p1, p2 = awaiting(), awaiting()
    first = claim_next(moderator=a, queue=review_queue(a))
    second = claim_next(moderator=b, queue=review_queue(b))
    assert {first, second} == {p1, p2}
    assert claim_next(moderator=c, queue=review_queue(c)) is None
    assert claim_next(moderator=a, queue=review_queue(a)) == first  # own claim stays
    Photo.objects.filter(pk=first.pk).update(claimed_at=timezone.now() - timedelta(minutes=16))  # expired
    assert claim_next(moderator=c, queue=review_queue(c)) == first
    first.refresh_from_db()
    assert first.claimed_by == c


@pytest.mark.django_db(transaction=True)
def test_claim_next_waits_for_a_row_a_worker_holds_for_a_moment(mods):
    """The last photo in the queue, locked for an instant by a worker writing its new suggestions, is
    still claimed: the queue must not look empty to the moderator (seen in the keyboard browser test)."""
    import threading
    import time

    from django.db import connection, transaction

    a, _, _ = mods
    photo = awaiting()
    locked, release = threading.Event(), threading.Event()

    def worker_holds_the_row():
        try:
            with transaction.atomic():
                Photo.objects.select_for_update().get(pk=photo.pk)
                locked.set()
                release.wait(5)
                time.sleep(0.3)
        finally:
            connection.close()

    thread = threading.Thread(target=worker_holds_the_row)
    thread.start()
    assert locked.wait(5)
    release.set()
    claimed = claim_next(moderator=a, queue=review_queue(a))
    thread.join()
    assert claimed == photo and claimed.claimed_by == a
