"""The moderator's review page in depth, through the Django test client on PostgreSQL:
candidate photo strips, keyboard wiring, explain heat-maps, undo, crop boxes, merge/split,
consensus notes, disputed list, queue filters and the audit log on photo and individual pages."""

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from identification.models import Decision, Embedding, Individual, Suggestion
from submissions.models import Photo
from tests.web.helpers import (
    IndividualFactory,
    PhotoFactory,
    SightingFactory,
    UserFactory,
    gallery_photo,
    login,
    make_user,
    review_setup,
)

pytestmark = pytest.mark.django_db


def test_review_page_shows_up_to_four_photos_per_candidate_best_first(client, moderator):
    photo, individuals, version = review_setup(n_candidates=2, new_rank=3)
    whale = individuals[0]
    extra = [gallery_photo(whale) for _ in range(4)]  # 5 gallery photos in all
    best = extra[1]
    Suggestion.objects.filter(photo=photo, individual=whale).update(best_photo=best)
    # embeddings for two photos: the more similar one comes right after the best photo
    import numpy as np

    Embedding.objects.create(photo=photo, model_version=version, vector=np.array([1, 0], np.float32).tobytes())
    Embedding.objects.create(photo=extra[0], model_version=version, vector=np.array([0.9, 0.1], np.float32).tobytes())
    Embedding.objects.create(photo=extra[3], model_version=version, vector=np.array([0.1, 0.9], np.float32).tobytes())
    response = client.get(reverse("identification:review_photo", args=[photo.pk]))
    row = next(r for r in response.context["candidates"] if r["suggestion"].individual_id == whale.pk)
    assert len(row["photos"]) == 4
    assert [p.pk for p in row["photos"][:3]] == [best.pk, extra[0].pk, extra[3].pk]
    html = response.content.decode()
    assert html.count('class="viewer viewer-sm" data-viewer') >= 4
    assert 'id="query-viewer"' in html and f'data-original-src="{photo.image.url}"' in html
    assert f'data-crop-src="{photo.crop.url}"' in html


def test_keyboard_shortcut_wiring_is_in_the_page(client, moderator):
    photo, individuals, _ = review_setup()
    html = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    for key in "12345":
        assert f'data-shortcut="{key}"' in html
    assert 'id="new-form"' in html and 'id="skip-form"' in html and 'id="reject-form"' in html
    assert 'id="undo-form" data-shortcut="U"' in html
    for key, reason in (("F", "not_a_fluke"), ("Q", "poor_quality"), ("D", "duplicate"), ("O", "other_species")):
        assert f'value="{reason}" data-reason-key="{key}"' in html
    assert f'data-candidate="{individuals[0].pk}"' in html
    assert reverse("identification:explain", args=[photo.pk, individuals[0].pk]) in html
    assert 'data-action="toggle-view" data-key="V"' in html and 'data-action="edit-box" data-key="B"' in html
    assert 'id="box-form"' in html and 'name="x0"' in html
    assert "js/viewer.js" in html and "js/review.js" in html
    static = Path(__file__).resolve().parents[2] / "static" / "js"
    js = (static / "review.js").read_text()
    for needle in ("ArrowDown", '"u"', '"h"', "data-reason-key", "WhaleViewer", "undo-form"):
        assert needle in js
    viewer = (static / "viewer.js").read_text()
    assert "wheel" in viewer and "naturalWidth" in viewer and "explainUrl" in viewer


@pytest.mark.slow
def test_explain_endpoint_png_for_moderator_403_for_watcher(client, active_model):
    from identification import pipeline

    pipeline.reset()
    label = next(iter(active_model.held_out))
    whale = active_model.individuals[label]
    data = active_model.held_out[label].read_bytes()
    photo = PhotoFactory(
        status=Photo.Status.AWAITING_REVIEW,
        model_version=active_model.version,
        sighting__species=active_model.species,
        image=ContentFile(data, name="q.jpg"),
    )
    Suggestion.objects.create(
        photo=photo,
        model_version=active_model.version,
        rank=1,
        individual=whale,
        score=0.8,
        best_photo=active_model.gallery[label][0],
    )
    url = reverse("identification:explain", args=[photo.pk, whale.pk])

    login(client, active_model.users["watcher"])
    assert client.get(url).status_code == 403
    client.logout()
    login(client, active_model.users["moderator"])
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(response.content)).size == (64, 64)  # the model's crop size
    cached = default_storage.listdir(f"explain/{active_model.version.pk}")[1]
    assert len(cached) == 1
    assert client.get(url).content == response.content  # served from the storage cache
    other = IndividualFactory(species=active_model.species)  # no gallery photo: nothing to compare
    assert client.get(reverse("identification:explain", args=[photo.pk, other.pk])).status_code == 404


def test_undo_through_the_view(client, moderator):
    photo, individuals, _ = review_setup()
    client.post(
        reverse("identification:review_decide", args=[photo.pk]), {"action": "confirm", "individual": individuals[0].pk}
    )
    response = client.post(reverse("identification:undo"), follow=True)
    assert response.redirect_chain[0][0] == reverse("identification:review_photo", args=[photo.pk])
    photo.refresh_from_db()
    assert photo.status == Photo.Status.AWAITING_REVIEW and photo.individual is None
    assert "Undid your decision" in response.content.decode()
    response = client.post(reverse("identification:undo"), follow=True)
    assert "no decision of yours to undo" in response.content.decode()


def test_box_correction_through_the_view(client, moderator, django_capture_on_commit_callbacks):
    photo, _, _ = review_setup()
    url = reverse("identification:correct_box", args=[photo.pk])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url, {"x0": 12, "y0": 8, "x1": 250, "y1": 160}, follow=True)
    assert len(callbacks) == 1
    assert "crop box saved" in response.content.decode()
    photo.refresh_from_db()
    assert photo.box_source == Photo.BoxSource.MODERATOR and photo.box_x1 == 250
    page = response.content.decode()
    assert 'data-box="12.0,8.0,250.0,160.0"' in page
    # until the worker has cropped and ranked it again, the page says so, shows the original and polls itself
    assert Photo.objects.being_rematched().filter(pk=photo.pk).exists()
    assert "data-rematching" in page and "data-poll-reload" in page and 'data-crop-src=""' in page
    Embedding.objects.create(photo=photo, model_version=photo.model_version, vector=b"\0" * 8)
    page = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert "data-rematching" not in page and "data-poll-reload" not in page
    bad = client.post(url, {"x0": 1}, follow=True)
    assert "Draw a box" in bad.content.decode()


def test_merge_and_split_ui(client, moderator):
    source, target = IndividualFactory(nickname="Twin"), IndividualFactory()
    moved = gallery_photo(source)
    page = client.get(reverse("identification:individual_detail", args=[source.catalogue_id])).content.decode()
    assert 'id="merge-form"' in page
    response = client.post(
        reverse("identification:merge", args=[source.catalogue_id]), {"target": target.catalogue_id}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("identification:individual_detail", args=[target.catalogue_id])
    moved.refresh_from_db()
    assert moved.individual == target
    # the source's page now redirects to the target; the merge is in the target's audit log
    again = client.get(reverse("identification:individual_detail", args=[source.catalogue_id]))
    assert again["Location"] == reverse("identification:individual_detail", args=[target.catalogue_id])
    html = client.get(again["Location"]).content.decode()
    assert f"{source.catalogue_id} → {target.catalogue_id}" in html and "Merged individuals" in html

    photo_page = client.get(reverse("identification:photo_detail", args=[moved.pk])).content.decode()
    assert 'id="split-form"' in photo_page
    client.post(reverse("identification:split", args=[moved.pk]))
    moved.refresh_from_db()
    assert moved.status == Photo.Status.AWAITING_REVIEW and moved.individual is None
    public = client.get(reverse("identification:individual_detail", args=[target.catalogue_id]))
    assert moved not in [p for entry in public.context["profile"].timeline for p in entry.photos]


def test_audit_log_on_photo_and_individual_pages(client, moderator):
    photo, individuals, version = review_setup()
    client.post(
        reverse("identification:review_decide", args=[photo.pk]), {"action": "confirm", "individual": individuals[1].pk}
    )
    html = client.get(reverse("identification:photo_detail", args=[photo.pk])).content.decode()
    for text in (
        "Audit log",
        "Confirmed a match",
        "mod@example.org",
        version.name,
        individuals[1].catalogue_id,
        individuals[0].catalogue_id + " 0.900",
    ):
        assert text in html, text
    ind_html = client.get(
        reverse("identification:individual_detail", args=[individuals[1].catalogue_id])
    ).content.decode()
    assert "Audit log" in ind_html and "Confirmed a match" in ind_html and "mod@example.org" in ind_html

    # the photo's watcher sees its status, not the log; another watcher is refused; the public sees no log
    owner = photo.sighting.submitted_by
    client.logout()
    client.force_login(owner)
    own = client.get(reverse("identification:photo_detail", args=[photo.pk])).content.decode()
    assert "Confirmed" in own and individuals[1].catalogue_id in own
    assert "Audit log" not in own and "mod@example.org" not in own
    client.force_login(make_user("watcher", "stranger@example.org"))
    assert client.get(reverse("identification:photo_detail", args=[photo.pk])).status_code == 403
    client.logout()
    public = client.get(
        reverse("identification:individual_detail", args=[individuals[1].catalogue_id])
    ).content.decode()
    assert "Audit log" not in public and "mod@example.org" not in public


def test_consensus_note_and_disputed_list(client, settings):
    settings.REVIEW_CONSENSUS = 2
    photo, individuals, _ = review_setup()
    a = UserFactory(email="a@example.org", role="moderator")
    b = UserFactory(email="b@example.org", role="moderator")
    admin = UserFactory(email="boss@example.org", role="admin")
    decide = reverse("identification:review_decide", args=[photo.pk])
    client.force_login(a)
    response = client.post(decide, {"action": "confirm", "individual": individuals[0].pk}, follow=True)
    assert "1 of 2 agreeing decisions" in response.content.decode()
    photo.refresh_from_db()
    assert photo.status == Photo.Status.AWAITING_REVIEW
    client.force_login(b)
    page = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert "1 of 2 agreeing decisions" in page and "a@example.org" in page
    client.post(decide, {"action": "confirm", "individual": individuals[1].pk})
    photo.refresh_from_db()
    assert photo.needs_admin
    assert client.get(reverse("identification:disputed")).status_code == 403
    blocked = client.get(reverse("identification:review_photo", args=[photo.pk]))
    assert blocked.context["reviewable"] is False
    client.force_login(admin)
    listing = client.get(reverse("identification:disputed")).content.decode()
    assert reverse("identification:review_photo", args=[photo.pk]) in listing
    assert individuals[0].catalogue_id in listing and individuals[1].catalogue_id in listing
    assert "Disputed (1)" in client.get(reverse("identification:review_queue")).content.decode()
    client.post(decide, {"action": "confirm", "individual": individuals[1].pk})
    photo.refresh_from_db()
    assert photo.status == Photo.Status.CONFIRMED and photo.individual == individuals[1] and not photo.needs_admin
    assert "No disputed photos" in client.get(reverse("identification:disputed")).content.decode()


def test_queue_view_filters_order_and_two_moderators_get_different_photos(client):
    first, _, _ = review_setup()
    second, _, _ = review_setup()
    Photo.objects.filter(pk=second.pk).update(
        sighting=SightingFactory(place_name="Tonga", latitude=-18.6, longitude=-173.9)
    )
    Suggestion.objects.filter(photo=second, individual__isnull=False, rank=1).update(score=0.99)
    a = UserFactory(email="a@example.org", role="moderator")
    b = UserFactory(email="b@example.org", role="moderator")
    client.force_login(a)
    queue = reverse("identification:review_queue")
    assert client.get(queue, {"place": "tong"}).context["count"] == 1
    assert client.get(queue, {"lat_min": -30, "lat_max": 0}).context["count"] == 1
    assert client.get(queue, {"score_min": 0.95}).context["count"] == 1
    assert list(client.get(queue, {"order": "confident"}).context["photos"]) == [second, first]
    assert "0.990" in client.get(queue).content.decode()
    client.get(queue)  # clear the session filters
    got_a = client.post(reverse("identification:review_start"))["Location"]
    client.force_login(b)
    client.get(queue)
    got_b = client.post(reverse("identification:review_start"))["Location"]
    assert got_a != got_b
    assert {got_a, got_b} == {reverse("identification:review_photo", args=[p.pk]) for p in (first, second)}
    assert Decision.objects.count() == 0 and Individual.objects.exists()
