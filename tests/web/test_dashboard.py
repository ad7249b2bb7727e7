import pytest
from django.urls import reverse

from identification.models import ModelVersion, TrainingRun
from tests.web.helpers import model_with_plots, running_run

pytestmark = pytest.mark.django_db


def test_dashboard_renders_metrics_runs_and_progress(client, admin):
    active = model_with_plots(
        is_active=True, metrics={"map5": 0.812, "top1": 0.7, "top5": 0.9, "new_precision": 0.6, "new_recall": 0.5}
    )
    model_with_plots(name="candidate-2", metrics={"map5": 0.85})
    run = running_run(admin)
    response = client.get(reverse("identification:dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    assert active.name in html and "0.812" in html and "candidate-2" in html and "0.850" in html
    assert reverse("identification:run_progress", args=[run.pk]) in html
    assert reverse("identification:model_plot", args=[active.pk, "loss"]) in html
    assert "js/dashboard.js" in html


def test_progress_json(client, admin):
    run = running_run(admin)
    data = client.get(reverse("identification:run_progress", args=[run.pk])).json()
    assert data["status"] == "running" and data["done"] is False
    assert (data["epoch"], data["epochs"], data["step"], data["steps_per_epoch"]) == (3, 10, 5, 10)
    assert data["loss"] == pytest.approx(1.234) and data["val_map5"] == pytest.approx(0.42)
    assert data["eta_seconds"] == pytest.approx(95.0)
    assert data["percent"] == pytest.approx(25.0)
    assert "loss 1.9" in data["log_tail"]
    run.status = TrainingRun.Status.SUCCEEDED
    run.save()
    data = client.get(reverse("identification:run_progress", args=[run.pk])).json()
    assert data["done"] is True and data["percent"] == 100.0


def test_start_training_and_cancel(client, admin):
    response = client.post(
        reverse("identification:start_training"), {"epochs": 3, "arch": "resnet34", "image_size": 224, "fine_tune": ""}
    )
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert run.options == {"epochs": 3, "arch": "resnet34", "image_size": 224, "fine_tune": False}
    again = client.post(
        reverse("identification:start_training"), {"epochs": 3, "arch": "resnet34", "image_size": 224}, follow=True
    )
    assert "already queued or running" in again.content.decode()
    client.post(reverse("identification:cancel_run", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED


def test_invalid_training_form_rerenders(client, admin):
    response = client.post(reverse("identification:start_training"), {"epochs": 0, "arch": "vgg", "image_size": 224})
    assert response.status_code == 200
    assert {"epochs", "arch"} <= set(response.context["form"].errors)
    assert not TrainingRun.objects.exists()


def test_promote_and_rollback_messages(client, admin):
    version = model_with_plots()
    response = client.post(reverse("identification:promote", args=[version.pk]), follow=True)
    assert f"Promoting {version.name}" in response.content.decode()
    version.refresh_from_db()
    assert version.promoted_by == admin
    response = client.post(reverse("identification:rollback"), follow=True)
    assert "no earlier model version" in response.content.decode()


def test_promote_and_rollback_return_to_the_page_they_were_on(client, admin):
    version = model_with_plots()
    detail = reverse("identification:model_detail", args=[version.pk])
    assert 'name="next"' in client.get(detail).content.decode()
    response = client.post(reverse("identification:promote", args=[version.pk]), {"next": detail})
    assert response["Location"] == detail
    response = client.post(reverse("identification:rollback"), {"next": detail})
    assert response["Location"] == detail
    # never to another site
    response = client.post(reverse("identification:rollback"), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("identification:dashboard")


def test_model_plot_view(client, admin):
    version = model_with_plots()
    response = client.get(reverse("identification:model_plot", args=[version.pk, "map5"]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert client.get(reverse("identification:model_plot", args=[version.pk, "secrets"])).status_code == 404
    other = ModelVersion.objects.create(name="escape", artifact_dir="../../etc")
    assert client.get(reverse("identification:model_plot", args=[other.pk, "loss"])).status_code == 404


def test_progress_keeps_each_phase_and_the_last_validation(client, admin):
    """Fed through the run's real reporter: a localizer phase has its own label and counter (it read
    "epoch 4/3" and replaced the model's loss), and the last val MAP@5 stays between validations."""
    from identification.training.runs import RunReporter
    from ml.types import TrainProgress

    run = running_run(admin)
    TrainingRun.objects.filter(pk=run.pk).update(progress={}, options={"epochs": 3})
    reporter = RunReporter(run.pk)
    url = reverse("identification:run_progress", args=[run.pk])

    def send(**kw):
        reporter.progress(TrainProgress(**kw))
        reporter.flush(force=True)
        return client.get(url).json()

    send(epoch=1, epochs=3, step=4, steps_per_epoch=4, loss=2.5, phase="train")
    send(epoch=1, epochs=3, step=4, steps_per_epoch=4, loss=2.4, val_map5=0.31, phase="validate", message="v")
    data = send(epoch=2, epochs=3, step=1, steps_per_epoch=4, loss=2.2, phase="train")
    assert (data["counter_label"], data["epoch"], data["epochs"]) == ("Model epoch", 2, 3)
    assert data["val_map5"] == pytest.approx(0.31) and data["val_epoch"] == 1  # not "—" between validations
    assert data["phase_label"] == "Training the model"

    data = send(epoch=4, epochs=4, step=2, steps_per_epoch=5, loss=0.07, phase="localizer")
    assert data["phase_label"] == "Training the fluke localizer"
    assert (data["counter_label"], data["epoch"], data["epochs"]) == ("Localizer epoch", 4, 4)
    assert data["loss"] == pytest.approx(2.2) and data["localizer_loss"] == pytest.approx(0.07)
    assert data["val_map5"] == pytest.approx(0.31)
    html = client.get(reverse("identification:run_detail", args=[run.pk])).content.decode()
    assert "Localizer epoch" in html and "Training the fluke localizer" in html and "(epoch 1)" in html
