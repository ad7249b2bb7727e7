"""Administrator pages through the Django test client on PostgreSQL (and the real Redis broker
for queue lengths): registry, run page, training data + exports, health, and 403 for moderators."""

import csv
import io
import json
import zipfile

import pytest
import redis
from django.conf import settings
from django.urls import reverse

from identification.models import (
    HoldoutEvaluation,
    HoldoutSet,
    Individual,
    ModelVersion,
    TrainingExample,
    TrainingRun,
    WorkerHeartbeat,
)
from identification.training.runs import execute_run
from submissions.models import Photo
from tests.web.helpers import (
    IndividualFactory,
    PhotoFactory,
    SpeciesFactory,
    UserFactory,
    gallery_photo,
    model_with_plots,
    running_run,
)

pytestmark = pytest.mark.django_db

ADMIN_GETS = [
    ("identification:model_list", {}),
    ("identification:training_data", {}),
    ("identification:health", {}),
    ("identification:export_kaggle", {}),
    ("identification:export_coco", {}),
]


def _examples(n=3, **kw):
    out = []
    for i in range(n):
        ind = IndividualFactory()
        photo = gallery_photo(ind)
        photo.box_x0, photo.box_y0, photo.box_x1, photo.box_y1 = 10.0, 20.0, 300.0, 190.0
        photo.box_source = Photo.BoxSource.MODERATOR if i % 2 == 0 else Photo.BoxSource.GIVEN
        photo.save()
        out.append(TrainingExample.objects.create(photo=photo, individual=ind, **kw))
    return out


# --------------------------------------------------------------------------- registry


def test_registry_detail_snapshot_config_metrics_deltas(client, admin):
    active = model_with_plots(is_active=True, name="active-v1", promoted_by=admin)
    candidate = ModelVersion.objects.create(
        name="cand-v2",
        artifact_dir="models/web-test",
        config={"arch": "resnet34", "epochs": 7},
        metrics={"map5": 0.9},
        training_snapshot={"photos": 3, "individuals": 2, "boxes": 1, "photo_ids": [41, 42, 43]},
        species=active.species,  # compared with its own species' active version
    )
    holdout = HoldoutSet.objects.create(
        items=[{"photo_id": 42, "individual_id": 1, "catalogue_id": "HW-1", "new": False}], species=active.species
    )
    HoldoutEvaluation.objects.create(
        holdout=holdout,
        model_version=active,
        metrics={
            "map5": 0.5,
            "top1": 0.4,
            "top5": 0.8,
            "new_precision": 0.5,
            "new_recall": 0.25,
            "n": 1,
            "new_cases": 0,
        },
    )
    HoldoutEvaluation.objects.create(
        holdout=holdout,
        model_version=candidate,
        metrics={
            "map5": 0.625,
            "top1": 0.3,
            "top5": 0.8,
            "new_precision": 0.5,
            "new_recall": 0.5,
            "n": 1,
            "new_cases": 0,
        },
    )
    html = client.get(reverse("identification:model_detail", args=[candidate.pk])).content.decode()
    assert "41, 42, 43" in html and "resnet34" in html  # snapshot photos and config
    assert "0.625" in html and "+0.125" in html and "-0.100" in html  # map5, top1 deltas against active
    assert "trained on 1 of the holdout photos" in html  # photo 42 leaked
    assert reverse("identification:promote", args=[candidate.pk]) in html
    assert reverse("identification:model_plot", args=[active.pk, "loss"]) in html  # plots side by side
    assert reverse("identification:model_plot", args=[candidate.pk, "loss"]) in html
    page = client.get(reverse("identification:model_detail", args=[active.pk])).content.decode()
    assert f"by {admin}" in page and reverse("identification:rollback") in page
    listing = client.get(reverse("identification:model_list")).content.decode()
    assert "cand-v2" in listing and "0.625" in listing and "3 photos, 2 individuals" in listing


def test_a_difference_smaller_than_the_noise_is_labelled(client, admin):
    """Bootstrap intervals beside each holdout score; a delta whose intervals overlap says so."""
    active = model_with_plots(is_active=True, name="active-v1")
    candidate = model_with_plots(name="cand-v2")
    holdout = HoldoutSet.objects.create(
        items=[{"photo_id": 42, "individual_id": 1, "catalogue_id": "HW-1", "new": False}], species=active.species
    )
    HoldoutEvaluation.objects.create(
        holdout=holdout,
        model_version=active,
        metrics={
            "map5": 0.50,
            "top1": 0.40,
            "top5": 0.80,
            "n": 9,
            "intervals": {"map5": [0.30, 0.70], "top1": [0.30, 0.50]},
        },
    )
    HoldoutEvaluation.objects.create(
        holdout=holdout,
        model_version=candidate,
        metrics={
            "map5": 0.55,
            "top1": 0.90,
            "top5": 0.80,
            "n": 9,
            "intervals": {"map5": [0.35, 0.75], "top1": [0.80, 1.0]},
        },
    )
    html = client.get(reverse("identification:model_detail", args=[candidate.pk])).content.decode()
    assert "[0.35–0.75]" in html
    rows = {key: html.split(f'data-metric="{key}"')[1].split("</tr>")[0] for key in ("map5", "top1")}
    assert "within the noise" in rows["map5"]  # +0.05 with overlapping intervals
    assert "within the noise" not in rows["top1"]  # +0.50, intervals apart
    assert "1 held-out photos" in html  # the holdout size beside the numbers
    listing = client.get(reverse("identification:model_list")).content.decode()
    assert 'data-interval="map5"> [0.35–0.75]' in listing


def test_evaluate_button_queues_a_task(client, admin, django_capture_on_commit_callbacks):
    version = model_with_plots()
    r = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = r.llen("pipeline")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("identification:evaluate_model", args=[version.pk]), follow=True)
    assert "queued for evaluation" in response.content.decode()
    assert r.llen("pipeline") == before + 1
    message = json.loads(r.lpop("pipeline"))
    assert message["headers"]["task"] == "identification.tasks.evaluate_holdout"


# --------------------------------------------------------------------------- runs


def test_run_page_shows_progress_log_eta_and_cancel(client, admin):
    run = running_run(admin)
    html = client.get(reverse("identification:run_detail", args=[run.pk])).content.decode()
    assert reverse("identification:run_progress", args=[run.pk]) in html
    assert 'style="width: 25.0%"' in html and "1.2340" in html and "0.420" in html and "95s" in html
    assert "loss 1.9" in html and reverse("identification:cancel_run", args=[run.pk]) in html


def test_failed_run_keeps_active_model_and_shows_why(client, admin):
    active = model_with_plots(is_active=True)
    run = TrainingRun.objects.create(options={"epochs": 1}, started_by=admin)
    assert execute_run(run.pk) == "failed"  # no data: fewer than two individuals
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and "two identified individuals" in run.error
    assert ModelVersion.objects.active().get() == active and run.model_version is None
    html = client.get(reverse("identification:run_detail", args=[run.pk])).content.decode()
    assert "Why it failed" in html and "two identified individuals" in html and "active model is unchanged" in html


def test_only_one_run_at_a_time_message(client, admin):
    running_run(admin)
    response = client.post(
        reverse("identification:start_training"), {"epochs": 2, "arch": "resnet18", "image_size": 128}, follow=True
    )
    assert "already queued or running" in response.content.decode()
    assert TrainingRun.objects.count() == 1
    response = client.post(reverse("identification:retrain_localizer"), follow=True)
    assert TrainingRun.objects.count() == 1 and response.status_code == 200


# --------------------------------------------------------------------------- training data


def test_training_data_filter_exclude_include(client, admin):
    a, b, c = _examples(3)
    url = reverse("identification:training_data")
    html = client.get(url, {"individual": a.individual.catalogue_id}).content.decode()
    assert f'data-example="{a.pk}"' in html and f'data-example="{b.pk}"' not in html
    client.post(reverse("identification:training_data_update"), {"ids": [a.pk, b.pk], "action": "exclude"})
    assert set(TrainingExample.objects.filter(status="excluded").values_list("pk", flat=True)) == {a.pk, b.pk}
    html = client.get(url, {"status": "excluded"}).content.decode()
    assert f'data-example="{a.pk}"' in html and f'data-example="{c.pk}"' not in html
    run = running_run()
    TrainingExample.objects.filter(pk=b.pk).update(used_by=run)
    client.post(reverse("identification:training_data_update"), {"ids": [a.pk, b.pk], "action": "include"})
    a.refresh_from_db(), b.refresh_from_db()
    assert (a.status, b.status) == ("queued", "used")


def test_kaggle_zip_matches_included_examples(client, admin):
    examples = _examples(3)
    excluded = _examples(1, status=TrainingExample.Status.EXCLUDED)[0]
    response = client.get(reverse("identification:export_kaggle"))
    assert response.status_code == 200 and response.streaming and response["Content-Type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(csv.DictReader(io.StringIO(zf.read("train.csv").decode())))
    expected = {(f"{ex.photo_id}.jpg", ex.individual.catalogue_id) for ex in examples}
    assert {(r["Image"], r["Id"]) for r in rows} == expected
    assert f"{excluded.photo_id}.jpg" not in {r["Image"] for r in rows}
    for ex in examples:
        with ex.photo.image.open("rb") as fh:
            assert zf.read(f"images/{ex.photo_id}.jpg") == fh.read()
    assert zf.testzip() is None


def test_coco_json_structure(client, admin):
    examples = _examples(3)
    p = examples[1].photo
    p.box_x1 = p.width + 50.0  # a box past the edge is clipped
    p.save()
    no_box = _examples(1)[0].photo
    Photo.objects.filter(pk=no_box.pk).update(box_x0=None, box_source="")
    dolphin = SpeciesFactory(code="TT", common_name="Bottlenose dolphin", profile="dolphin_fin")
    fin = TrainingExample.objects.get(pk=examples[2].pk)
    Individual.objects.filter(pk=fin.individual_id).update(species=dolphin)
    Photo.objects.filter(pk=fin.photo_id).update(species=dolphin)
    response = client.get(reverse("identification:export_coco"))
    assert response.status_code == 200 and response.streaming
    doc = json.loads(b"".join(response.streaming_content))
    # one category per species profile, ids in ml.profiles' order; each box under its whale's species' profile
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [
        (1, "humpback_fluke"),
        (2, "dolphin_fin"),
        (3, "right_whale_head"),
        (4, "seal_face"),
    ]
    assert {a["image_id"]: a["category_id"] for a in doc["annotations"]} == {
        examples[0].photo_id: 1,
        examples[1].photo_id: 1,
        fin.photo_id: 2,
    }
    images = {im["id"]: im for im in doc["images"]}
    assert set(images) == {ex.photo_id for ex in examples} | {no_box.pk}
    ann_ids = [a["id"] for a in doc["annotations"]]
    assert len(ann_ids) == len(set(ann_ids)) == 3
    for ann in doc["annotations"]:
        im = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0
        assert 0 <= x and 0 <= y and x + w <= im["width"] + 1e-6 and y + h <= im["height"] + 1e-6
        assert ann["area"] == pytest.approx(w * h, rel=1e-3)
    clipped = next(a for a in doc["annotations"] if a["image_id"] == p.pk)
    assert clipped["bbox"][0] + clipped["bbox"][2] == pytest.approx(p.width)


# --------------------------------------------------------------------------- health


def test_health_shows_real_queue_lengths(client, admin):
    from whalesite.celery import app

    r = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = r.llen("training")
    app.send_task("identification.tasks.run_training", args=[0])  # routed to the training queue
    try:
        response = client.get(reverse("identification:health"))
        queues = response.context["queues"]
        assert queues["transport"] == "redis" and not queues["error"]
        assert queues["queues"]["training"] == before + 1
        assert f'<div data-queue="training"><dt>training</dt><dd>{before + 1}</dd>' in response.content.decode()
    finally:
        r.lpop("training")


def test_health_lists_worker_heartbeats(client, admin):
    from datetime import timedelta

    from django.utils import timezone

    from identification.ops.health import write_heartbeat

    write_heartbeat("gpu-box@host", ["pipeline", "training"], started_at=timezone.now(), device="GPU: NVIDIA H100")
    WorkerHeartbeat.objects.create(
        hostname="old@host", device="CPU (2 cores)", queues=["default"], last_seen=timezone.now() - timedelta(hours=1)
    )
    html = client.get(reverse("identification:health")).content.decode()
    assert "gpu-box@host" in html and "GPU: NVIDIA H100" in html and "pipeline, training" in html
    assert 'data-worker="old@host"' in html and "stale" in html


def test_health_failed_photos_retry_and_retry_all(client, admin):
    failed = [
        PhotoFactory(status=Photo.Status.FAILED, failure_code="corrupt", failure_reason="broken file") for _ in range(3)
    ]
    html = client.get(reverse("identification:health")).content.decode()
    assert "broken file" in html and "Failed photos (3)" in html
    client.post(reverse("identification:health_retry", args=[failed[0].pk]))
    failed[0].refresh_from_db()
    assert failed[0].status == Photo.Status.UPLOADED and failed[0].failure_code == ""
    response = client.post(reverse("identification:retry_all_failed"), follow=True)
    assert "2 photos queued" in response.content.decode()
    assert not Photo.objects.failed().exists()


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("name,kwargs", ADMIN_GETS)
def test_moderator_gets_403_on_admin_pages(client, name, kwargs):
    client.force_login(UserFactory(email="mod@example.org", role="moderator"))
    assert client.get(reverse(name, kwargs=kwargs)).status_code == 403
    version, run = model_with_plots(), running_run()
    for url in (
        reverse("identification:model_detail", args=[version.pk]),
        reverse("identification:run_detail", args=[run.pk]),
    ):
        assert client.get(url).status_code == 403
    ex = _examples(1)[0]
    assert (
        client.post(reverse("identification:training_data_update"), {"ids": [ex.pk], "action": "exclude"}).status_code
        == 403
    )
    ex.refresh_from_db()
    assert ex.status == TrainingExample.Status.QUEUED
