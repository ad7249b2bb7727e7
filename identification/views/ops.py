"""Administrators' operations pages: health (queues, workers, failed and stuck photos, retry) and the
training data (filter, exclude or include examples, Kaggle ZIP and COCO exports)."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from ..ops import health
from ..permissions import admin_required
from ..training import exports
from .common import retry_failed_photo

TRAINING_DATA_PAGE = 50


@admin_required
def training_data(request):
    form, qs = exports.training_examples(request.GET)
    page = Paginator(qs, TRAINING_DATA_PAGE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "identification/registry/training_data.html",
        {
            "form": form,
            "page": page,
            "count": qs.count(),
            "query": params.urlencode(),
        },
    )


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
    return _download(
        exports.kaggle_zip_stream(exports.export_rows(request.GET)), "application/zip", f"whalesite-kaggle-{stamp}.zip"
    )


@admin_required
def export_coco(request):
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return _download(
        exports.coco_document_stream(exports.export_rows(request.GET)),
        "application/json",
        f"whalesite-coco-{stamp}.json",
    )


@admin_required
def health_page(request):
    return render(request, "identification/registry/health.html", health.summary())


@admin_required
@require_POST
def health_retry(request, photo_id):
    return retry_failed_photo(request, photo_id, "identification:health")


@admin_required
@require_POST
def retry_all_failed(request):
    n = health.retry_all(request.user)
    messages.success(request, f"{n} photo{'s' if n != 1 else ''} queued for processing again.")
    return redirect("identification:health")
