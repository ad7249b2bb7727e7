"""Administrators' model pages: the dashboard (pipeline counts, training runs, model versions),
starting and cancelling runs, the model registry with holdout scores, promotion and rollback, plots,
and localizer retraining. The work itself is in ``identification.training``."""

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ml.types import TrainMetrics

from ..forms import TrainingForm
from ..models import ModelVersion, Species, TrainingExample, TrainingRun
from ..permissions import admin_required
from ..training import registry, species_classifier
from ..training.dataset import species_or_default
from ..training.estimate import form_estimate, request_step_time
from ..training.localizer import has_fluke_localizer, localizer_training_photos, start_localizer_retrain
from ..training.progress import percent_done, phase_counters
from ..training.runs import cancel_training_run, resend_training_run, start_training_run
from .common import back, show_errors

PLOTS = ("loss", "map5", "confusion")
PIPELINE_STATS = (
    ("awaiting_review", "Awaiting review"),
    ("processing", "Processing"),
    ("failed", "Failed"),
    ("stuck", "Stuck"),
    ("usable_examples", "Usable examples"),
    ("gallery_photos", "Gallery photos"),
    ("individuals", "Individuals"),
)
DASHBOARD_VERSIONS = 30
DASHBOARD_RUNS = 20
LOG_TAIL_LINES = 15


def _metrics(raw):
    """The headline metrics of a stored metrics dict, whatever spelling an older model folder used."""
    return TrainMetrics.from_dict(raw or {}).headline()


def run_progress_data(run: TrainingRun) -> dict:
    """What the run panels and their polling (``run_progress``) show: the phase with its own counter,
    the last validation MAP@5, percent done, ETA, the log's tail."""
    p = run.progress or {}
    counters = phase_counters(p, run.options.get("epochs") or 0)
    return {
        "id": run.pk,
        "status": run.status,
        "status_display": run.get_status_display(),
        "done": not run.in_progress,
        "cancel_requested": run.cancel_requested,
        **counters,
        "eta_seconds": p.get("eta_seconds"),
        "message": p.get("message", ""),
        "percent": percent_done(counters, run.status == TrainingRun.Status.SUCCEEDED),
        "log_tail": "\n".join((run.log or "").splitlines()[-LOG_TAIL_LINES:]),
        "error": run.error,
    }


def _posted_species(request):
    """The species a form posted (``species``: a pk), else None (the humpback)."""
    pk = request.POST.get("species") or ""
    return get_object_or_404(Species, pk=pk) if pk.isdigit() else None


@admin_required
def dashboard(request, training_form=None):
    groups = registry.registry_groups()  # per species: its active version, holdout and versions
    for group in groups:
        group["rows"] = group["rows"][:DASHBOARD_VERSIONS]
        for r in group["rows"]:
            r["version"].m = _metrics(r["version"].metrics)
        group["active_metrics"] = _metrics(group["active"].metrics) if group["active"] else {}
    runs = list(TrainingRun.objects.select_related("model_version", "started_by", "species")[:DASHBOARD_RUNS])
    # the panel and the table from one read: a worker finishing in between drew "Running" beside "no run"
    current = next((r for r in runs if r.in_progress), None)
    summary = registry.dashboard_summary()
    form = training_form or TrainingForm()
    pipeline = [(label, summary.get(key)) for key, label in PIPELINE_STATS if summary.get(key) is not None]
    return render(
        request,
        "identification/dashboard.html",
        {
            "groups": groups,
            "runs": runs,
            "current": current,
            "current_progress": run_progress_data(current) if current else None,
            "queued_examples": TrainingExample.objects.queued().count(),
            "pipeline": pipeline,
            "form": form,
            "estimate": form_estimate(form),
            "plots": PLOTS,
            "species_classifier": species_classifier.dashboard_panel(),
        },
    )


@admin_required
@require_POST
def start_training(request):
    form = TrainingForm(request.POST)
    if not form.is_valid():
        return dashboard(request, training_form=form)
    try:
        run = start_training_run(user=request.user, **form.cleaned_data)
        report_sent(request, run, f"Training run {run.pk} queued.")
    except ValidationError as exc:
        show_errors(request, exc)
    return redirect(reverse("identification:dashboard") + "#training")


def report_sent(request, run, done: str) -> None:
    """``done`` when the broker took the run, else say it is saved and will be sent (never an HTTP 500)."""
    if run.sent_at is not None:
        messages.success(request, done)
    else:
        messages.warning(
            request,
            f"Training run {run.pk} is saved, but the task broker is unreachable: it will "
            "be sent as soon as the broker is back, or use Send again on the run's page.",
        )


@admin_required
@require_POST
def measure_step_time(request):
    try:
        request_step_time(user=request.user, arch=request.POST.get("arch"), image_size=request.POST.get("image_size"))
        messages.success(request, "The training worker will time a few steps; the estimate appears when it is done.")
    except ValidationError as exc:
        show_errors(request, exc)
    return redirect(reverse("identification:dashboard") + "#training")


@admin_required
@require_POST
def retrain_species_classifier(request):
    try:
        species_classifier.request_retrain(request.user)
        messages.success(request, "The training worker will retrain the species classifier from the catalogue.")
    except ValidationError as exc:
        show_errors(request, exc)
    return redirect(reverse("identification:dashboard") + "#species-classifier")


@admin_required
@require_POST
def resend_run(request, run_id):
    run = get_object_or_404(TrainingRun, pk=run_id)
    try:
        run = resend_training_run(run=run, user=request.user)
        report_sent(request, run, f"Training run {run.pk} sent.")
    except ValidationError as exc:
        show_errors(request, exc)
    return redirect("identification:run_detail", run_id=run.pk)


@admin_required
def run_progress(request, run_id):
    return JsonResponse(run_progress_data(get_object_or_404(TrainingRun, pk=run_id)))


@admin_required
@require_POST
def cancel_run(request, run_id):
    run = get_object_or_404(TrainingRun, pk=run_id)
    try:
        cancel_training_run(run=run, user=request.user)
        messages.success(request, f"Cancelled training run {run.pk}.")
    except ValidationError as exc:
        show_errors(request, exc)
    return redirect("identification:dashboard")


@admin_required
@require_POST
def promote(request, version_id):
    version = get_object_or_404(ModelVersion, pk=version_id)
    try:
        registry.promote_model_version(version=version, user=request.user)
        messages.success(
            request,
            f"Promoting {version.name}: the gallery is being re-embedded; it becomes active when that finishes.",
        )
    except ValidationError as exc:
        show_errors(request, exc)
    return back(request, "identification:dashboard")


@admin_required
@require_POST
def rollback(request):
    try:
        version = registry.rollback_model(user=request.user, species=_posted_species(request))
        messages.success(request, f"Rolling back to {version}: it becomes active once the gallery is re-embedded.")
    except ValidationError as exc:
        show_errors(request, exc)
    return back(request, "identification:dashboard")


@admin_required
def model_plot(request, version_id, name):
    version = get_object_or_404(ModelVersion, pk=version_id)
    if name not in PLOTS:
        raise Http404("Unknown plot")
    root = Path(settings.ML_ROOT).resolve()
    path = (root / version.artifact_dir / f"{name}.png").resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Http404("No such plot")
    return FileResponse(open(path, "rb"), content_type="image/png")


@admin_required
def model_list(request):
    groups = registry.registry_groups()
    for group in groups:  # the localizer retrain: only species whose profile localizes a fluke
        fluke = has_fluke_localizer(group["species"])
        group["localizer_photos"] = localizer_training_photos(group["species"]).count() if fluke else None
    return render(
        request,
        "identification/registry/models.html",
        {
            "groups": groups,
            "localizer_runs": TrainingRun.objects.filter(options__kind="localizer").select_related(
                "model_version", "species"
            )[:5],
        },
    )


@admin_required
def model_detail(request, version_id):
    version = get_object_or_404(ModelVersion.objects.select_related("promoted_by"), pk=version_id)
    return render(
        request, "identification/registry/model_detail.html", {**registry.version_detail(version), "plots": PLOTS}
    )


@admin_required
@require_POST
def evaluate_model(request, version_id):
    version = get_object_or_404(ModelVersion, pk=version_id)
    registry.queue_holdout_evaluation(version, user=request.user)
    messages.success(request, f"{version.name} is queued for evaluation on the holdout set; reload in a moment.")
    return redirect("identification:model_detail", version_id=version.pk)


@admin_required
def run_detail(request, run_id):
    run = get_object_or_404(TrainingRun.objects.select_related("model_version", "started_by", "species"), pk=run_id)
    return render(
        request,
        "identification/registry/run_detail.html",
        {
            "run": run,
            "p": run_progress_data(run),
            "in_progress": run.in_progress,
            "kind": (run.options or {}).get("kind", "identifier"),
            "options": sorted((k, v) for k, v in (run.options or {}).items() if k != "kind"),
            "species": species_or_default(run.species),
            "active": ModelVersion.objects.active_for(species_or_default(run.species)).first(),
        },
    )


@admin_required
@require_POST
def retrain_localizer(request):
    try:
        run = start_localizer_retrain(user=request.user, species=_posted_species(request))
    except ValidationError as exc:
        show_errors(request, exc)
        return redirect("identification:model_list")
    messages.success(request, f"Localizer retraining queued (run {run.pk}).")
    return redirect("identification:run_detail", run_id=run.pk)
