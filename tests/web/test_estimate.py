"""The retrain form says how long a run would take before it starts, from a step time measured on the
training worker, and warns past an hour on a CPU; a cancel ends a running run at once (issue 12,
item 6)."""

import pytest
from django.urls import reverse
from django.utils import timezone

from identification.models import StepTiming, TrainingRun, WorkerHeartbeat
from identification.training import estimate
from identification.training.defaults import FORM_ARCH, FORM_EPOCHS, FORM_IMAGE_SIZE
from identification.training.runs import cancel_training_run, finish_run
from ml.step_time import StepTime
from tests.factories import IndividualFactory, ModelVersionFactory, SpeciesFactory
from tests.web.helpers import gallery_photo, running_run

pytestmark = pytest.mark.django_db


def training_worker(hostname="training@gpu-box"):
    return WorkerHeartbeat.objects.create(
        hostname=hostname, device="cpu", queues=["training"], last_seen=timezone.now(), started_at=timezone.now()
    )


def catalogue(individuals=10, photos=4):
    species = SpeciesFactory()
    for _ in range(individuals):
        ind = IndividualFactory(species=species)
        for _ in range(photos):
            gallery_photo(ind)


def test_no_measurement_says_so_and_offers_to_measure(client, admin):
    html = client.get(reverse("identification:dashboard")).content.decode()
    assert "not measured yet" in html and "Measure step time on the worker" in html
    assert 'data-estimate="warning" hidden' in html


def test_the_estimate_is_steps_times_the_measured_step_time_with_its_source(client, admin, settings):
    settings.ML_TRAIN_MAX_STEPS = 0
    catalogue(individuals=10, photos=4)  # 40 photos, 70% to train: 28 photos, 32 per batch -> 1 batch
    worker = training_worker()
    step = StepTime(FORM_ARCH, FORM_IMAGE_SIZE, settings.ML_DEFAULT_BATCH_SIZE, "cpu", 2.5, 3)
    estimate.record_step_time(worker.hostname, step, "worker start-up")
    batches = estimate.batches_per_epoch()
    assert batches == max(1, max(28, 7 * 4) // settings.ML_DEFAULT_BATCH_SIZE)
    html = client.get(reverse("identification:dashboard")).content.decode()
    seconds = FORM_EPOCHS * batches * 2.5
    assert f"about {estimate.duration_text(seconds)}" in html
    assert f"{FORM_EPOCHS * batches} steps" in html and "2.50 s per step" in html
    assert "measured on training@gpu-box (cpu)" in html and "worker start-up" in html
    assert 'data-estimate="warning" hidden' in html  # well under an hour


def test_a_run_over_an_hour_on_a_cpu_worker_is_warned_about(client, admin, settings):
    settings.ML_TRAIN_MAX_STEPS = 0
    catalogue(individuals=4, photos=2)
    worker = training_worker()
    step = StepTime("resnet50", 224, settings.ML_DEFAULT_BATCH_SIZE, "cpu", 200.0, 3)
    estimate.record_step_time(worker.hostname, step, "requested by admin")
    timings, batches = estimate.step_timings(), estimate.batches_per_epoch()
    long = estimate.estimate("resnet50", 224, 20, timings, batches)
    assert long["seconds"] == 20 * batches * 200.0 and long["seconds"] > 3600 and long["warn"]
    assert not estimate.estimate("resnet50", 224, 1, timings, batches)["warn"]  # 200 s
    assert estimate.estimate("resnet18", 224, 20, timings, batches) is None  # not measured
    gpu = StepTime("resnet50", 224, settings.ML_DEFAULT_BATCH_SIZE, "cuda", 200.0, 3)
    estimate.record_step_time(training_worker("training@other").hostname, gpu, "requested by admin")
    assert not estimate.estimate("resnet50", 224, 20, estimate.step_timings(), batches)["warn"]  # not a CPU
    html = client.post(
        reverse("identification:start_training"), {"epochs": 20, "arch": "resnet50", "image_size": 0}
    ).content.decode()  # an invalid form is drawn again with the estimate of its values
    assert "Estimated time" in html


def test_measure_queues_a_measurement_for_the_chosen_architecture(client, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("identification:measure_step_time"), {"arch": "resnet18", "image_size": 128})
    assert response.status_code == 302 and len(callbacks) == 1
    response = client.post(reverse("identification:measure_step_time"), {"arch": "nope", "image_size": 128})
    assert "Choose an architecture" in client.get(reverse("identification:dashboard")).content.decode()


def test_a_new_measurement_replaces_the_workers_last_one():
    training_worker()
    for seconds in (3.0, 1.5):
        estimate.record_step_time("training@gpu-box", StepTime("resnet18", 128, 32, "cpu", seconds, 3), "x")
    assert list(StepTiming.objects.values_list("seconds_per_step", flat=True)) == [1.5]


def test_cancelling_a_running_run_ends_it_at_once_and_it_never_succeeds_after(admin):
    run = running_run(admin)
    cancel_training_run(run=run, user=admin)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED and run.cancel_requested and run.finished_at
    assert f"Cancelled by {admin}." in run.log
    assert not TrainingRun.objects.in_progress().exists()  # the next run may start
    finish_run(run.pk, ModelVersionFactory(), {"map5": 0.5})  # the worker finished just before it saw it
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED and run.model_version is None
