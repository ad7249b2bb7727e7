"""Administrator pages: model registry, training run page, training data and exports, health,
localizer retraining. Domain logic lives in ``registry``, ``exports`` and ``health``."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from submissions.models import Photo

from . import exports, registry
from .ops import health
from .models import ModelVersion, TrainingRun
from .permissions import admin_required

PLOTS = ("loss", "map5", "confusion")


def _errors(request, exc: ValidationError) -> None:
    for message in exc.messages:
        messages.error(request, message)


@admin_required
def model_list(request):
    return render(request, "identification/registry/models.html", {
        "rows": registry.registry_rows(), "holdout": registry.current_holdout(),
        "active": ModelVersion.objects.active().first(),
        "localizer_photos": registry.localizer_training_photos().count(),
        "localizer_runs": TrainingRun.objects.filter(options__kind="localizer").select_related("model_version")[:5],
    })


@admin_required
def model_detail(request, version_id):
    version = get_object_or_404(ModelVersion.objects.select_related("promoted_by"), pk=version_id)
    return render(request, "identification/registry/model_detail.html", {**registry.version_detail(version), "plots": PLOTS})


@admin_required
@require_POST
def evaluate_model(request, version_id):
    version = get_object_or_404(ModelVersion, pk=version_id)
    registry.queue_holdout_evaluation(version, user=request.user)
    messages.success(request, f"{version.name} is queued for evaluation on the holdout set; reload in a moment.")
    return redirect("identification:model_detail", version_id=version.pk)


@admin_required
def run_detail(request, run_id):
    from .views import _progress

    run = get_object_or_404(TrainingRun.objects.select_related("model_version", "started_by"), pk=run_id)
    return render(request, "identification/registry/run_detail.html", {
        "run": run, "p": _progress(run), "in_progress": run.in_progress,
        "kind": (run.options or {}).get("kind", "identifier"),
        "options": sorted((k, v) for k, v in (run.options or {}).items() if k != "kind"),
        "active": ModelVersion.objects.active().first(),
    })


@admin_required
def training_data(request):
    form, qs = exports.training_examples(request.GET)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(request, "identification/registry/training_data.html", {
        "form": form, "page": page, "count": qs.count(), "query": params.urlencode(),
    })


@admin_required
@require_POST
def training_data_update(request):
    ids = [i for i in request.POST.getlist("ids") if i.isdigit()]
    action = request.POST.get("action")
    if not ids or action not in ("exclude", "include"):
        messages.error(request, "Choose examples and an action.")
    elif action == "exclude":
        n = exports.exclude_training_examples(ids, request.user)
        messages.success(request, f"{n} example{'s' if n != 1 else ''} excluded from training.")
    else:
        n = exports.include_training_examples(ids, request.user)
        messages.success(request, f"{n} example{'s' if n != 1 else ''} included again.")
    query = request.POST.get("query", "")
    return redirect(reverse("identification:training_data") + (f"?{query}" if query else ""))


def _download(stream, content_type, filename):
    response = StreamingHttpResponse(stream, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin_required
def export_kaggle(request):
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return _download(exports.kaggle_zip_stream(exports.export_rows(request.GET)), "application/zip",
                     f"whalesite-kaggle-{stamp}.zip")


@admin_required
def export_coco(request):
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return _download(exports.coco_document_stream(exports.export_rows(request.GET)), "application/json",
                     f"whalesite-coco-{stamp}.json")


@admin_required
def health_page(request):
    return render(request, "identification/registry/health.html", health.summary())


@admin_required
@require_POST
def health_retry(request, photo_id):
    from .services import retry_photo

    photo = get_object_or_404(Photo, pk=photo_id)
    try:
        retry_photo(photo=photo, actor=request.user)
        messages.success(request, f"Photo {photo.pk} is queued for processing again.")
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("identification:health")


@admin_required
@require_POST
def retry_all_failed(request):
    n = health.retry_all(request.user)
    messages.success(request, f"{n} photo{'s' if n != 1 else ''} queued for processing again.")
    return redirect("identification:health")


@admin_required
@require_POST
def retrain_localizer(request):
    try:
        run = registry.start_localizer_retrain(user=request.user)
    except ValidationError as exc:
        _errors(request, exc)
        return redirect("identification:model_list")
    messages.success(request, f"Localizer retraining queued (run {run.pk}).")
    return redirect("identification:run_detail", run_id=run.pk)
