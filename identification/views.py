from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Max, Min, Prefetch, Q
from django.http import FileResponse, Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from submissions.models import Photo, Sighting

from .forms import ConfirmForm, NewIndividualForm, RejectForm, ReviewFilterForm, TrainingForm
from .models import Decision, Individual, ModelVersion, TrainingExample, TrainingRun
from .permissions import admin_required, moderator_required

GALLERY_STATUSES = (Photo.Status.CONFIRMED, Photo.Status.NEW_INDIVIDUAL)
PLOTS = ("loss", "map5", "confusion")
PIPELINE_STATS = (
    ("awaiting_review", "Awaiting review"), ("processing", "Processing"), ("failed", "Failed"), ("stuck", "Stuck"),
    ("usable_examples", "Usable examples"), ("gallery_photos", "Gallery photos"), ("individuals", "Individuals"),
)
METRIC_ALIASES = {
    "map5": ("map5", "map@5", "map_at_5", "val_map5"),
    "top1": ("top1", "top1_accuracy", "top_1", "acc@1", "top1_acc"),
    "top5": ("top5", "top5_accuracy", "top_5", "acc@5", "top5_acc"),
    "new_precision": ("new_precision", "new_whale_precision", "new_whale_p"),
    "new_recall": ("new_recall", "new_whale_recall", "new_whale_r"),
}


def _services():
    from . import services

    return services


def _show_errors(request, exc: ValidationError) -> None:
    for message in exc.messages:
        messages.error(request, message)


# ---------------------------------------------------------------- catalogue (public)

def individuals(request):
    gallery = Q(photos__status__in=GALLERY_STATUSES)
    qs = Individual.objects.active().select_related("species").annotate(
        photo_count=Count("photos", filter=gallery),
        last_seen=Max("photos__sighting__observed_at", filter=gallery),
    )
    q = request.GET.get("q", "").strip()
    if q:
        qs = qs.filter(Q(catalogue_id__icontains=q) | Q(nickname__icontains=q))
    page = Paginator(qs.order_by("catalogue_id"), 24).get_page(request.GET.get("page"))
    latest = Photo.objects.in_gallery().order_by("-sighting__observed_at", "-pk")
    for individual in page:
        individual.cover = latest.filter(individual=individual).first()
    return render(request, "identification/individuals.html", {"page": page, "q": q})


def individual_detail(request, catalogue_id):
    individual = get_object_or_404(Individual.objects.select_related("species", "merged_into"), catalogue_id=catalogue_id)
    if individual.merged_into_id:
        messages.info(request, f"{individual.catalogue_id} was merged into {individual.merged_into.catalogue_id}.")
        return redirect("identification:individual_detail", catalogue_id=individual.merged_into.catalogue_id)
    photos = Photo.objects.in_gallery().filter(individual=individual).select_related("sighting").order_by(
        "-sighting__observed_at", "-pk"
    )
    sightings = (
        Sighting.objects.filter(photos__in=photos).distinct().select_related("species").order_by("-observed_at")
    )
    span = sightings.aggregate(first=Min("observed_at"), last=Max("observed_at"))
    return render(request, "identification/individual_detail.html", {
        "individual": individual, "photos": photos, "sightings": sightings, "span": span,
    })


# ---------------------------------------------------------------- review (moderators)

def _filtered_queue(request):
    params = request.session.get("review_filters", {})
    return ReviewFilterForm(params).apply(_services().review_queue(request.user))


def _next_photo(request, exclude=None):
    skipped = request.session.get("review_skipped", [])
    queue = _filtered_queue(request).exclude(pk__in=[*skipped, *([exclude] if exclude else [])])
    photo = queue.first()
    if photo is None:
        messages.info(request, "The review queue is empty. Nice work!")
        return redirect("identification:review_queue")
    return redirect("identification:review_photo", photo_id=photo.pk)


@moderator_required
def review_queue(request):
    form = ReviewFilterForm(request.GET or None)
    request.session["review_filters"] = request.GET.dict() if form.is_valid() else {}
    queue = form.apply(_services().review_queue(request.user)).select_related("sighting__species")
    return render(request, "identification/review_queue.html", {
        "form": form, "count": queue.count(), "photos": queue[:50], "query": request.GET.urlencode(),
    })


@moderator_required
def review_start(request):
    request.session["review_skipped"] = []
    return _next_photo(request)


def _reference_photo(suggestion):
    if suggestion.best_photo_id:
        return suggestion.best_photo
    if suggestion.individual_id:
        return Photo.objects.in_gallery().filter(individual_id=suggestion.individual_id).order_by("-pk").first()
    return None


def _candidates(photo):
    suggestions = photo.suggestions.select_related("individual", "best_photo").order_by("rank")
    if photo.model_version_id:
        suggestions = suggestions.filter(model_version_id=photo.model_version_id)
    rows, n = [], 0
    for s in suggestions:
        if s.individual_id:
            n += 1
            key = str(n) if n <= 5 else ""
        else:
            key = "N"
        rows.append({"suggestion": s, "reference": _reference_photo(s), "key": key})
    return rows


def _batch_matches(photo):
    """Similarity to photos of the same sighting: ``photo.batch_matches`` is [{photo_id, score}]."""
    matches = [m for m in (getattr(photo, "batch_matches", None) or []) if isinstance(m, dict) and m.get("photo_id")]
    photos = Photo.objects.in_bulk([m["photo_id"] for m in matches])
    rows = [{"photo": photos[m["photo_id"]], "score": m.get("score")} for m in matches if m["photo_id"] in photos]
    return sorted(rows, key=lambda r: -(r["score"] or 0))


@moderator_required
def review_photo(request, photo_id):
    photo = get_object_or_404(
        Photo.objects.select_related("sighting__species", "model_version", "claimed_by"), pk=photo_id
    )
    reviewable = photo.status == Photo.Status.AWAITING_REVIEW
    if reviewable:
        try:
            _services().claim_photo(photo=photo, moderator=request.user)
        except ValidationError as exc:
            _show_errors(request, exc)
    else:
        messages.info(request, f"This photo is {photo.get_status_display().lower()}; there is nothing to decide.")
    candidates = _candidates(photo)
    return render(request, "identification/review_photo.html", {
        "photo": photo,
        "reviewable": reviewable,
        "candidates": candidates,
        "has_new_row": any(row["key"] == "N" for row in candidates),
        "batch_matches": _batch_matches(photo),
        "next_catalogue_id": _services().next_catalogue_id(photo.sighting.species) if reviewable else "",
        "reject_reasons": Decision.RejectReason.choices,
        "queue_count": _filtered_queue(request).count(),
    })


def _confirm(request, photo):
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        raise ValidationError("Choose one of the candidates to confirm.")
    individual = form.cleaned_data["individual"]
    _services().confirm_match(photo=photo, moderator=request.user, individual=individual)
    messages.success(request, f"Photo {photo.pk} confirmed as {individual}.")


def _new(request, photo):
    form = NewIndividualForm(request.POST)
    if not form.is_valid():
        raise ValidationError("The nickname is too long.")
    individual = _services().name_new_individual(photo=photo, moderator=request.user, nickname=form.cleaned_data["nickname"])
    messages.success(request, f"New individual {individual or ''} added to the catalogue.".replace("  ", " "))


def _reject(request, photo):
    form = RejectForm(request.POST)
    if not form.is_valid():
        raise ValidationError("Choose a reason to reject the photo.")
    _services().reject_photo(photo=photo, moderator=request.user, reason=form.cleaned_data["reason"])
    messages.success(request, f"Photo {photo.pk} rejected ({Decision.RejectReason(form.cleaned_data['reason']).label}).")


def _skip(request, photo):
    _services().skip_photo(photo=photo, moderator=request.user)
    request.session["review_skipped"] = [*request.session.get("review_skipped", []), photo.pk]
    messages.info(request, f"Photo {photo.pk} skipped.")


REVIEW_ACTIONS = {"confirm": _confirm, "new": _new, "reject": _reject, "skip": _skip}


@moderator_required
@require_POST
def review_decide(request, photo_id):
    photo = get_object_or_404(Photo, pk=photo_id)
    handler = REVIEW_ACTIONS.get(request.POST.get("action", ""))
    if handler is None:
        return HttpResponseBadRequest("Unknown action")
    try:
        handler(request, photo)
    except ValidationError as exc:
        _show_errors(request, exc)
        return redirect("identification:review_photo", photo_id=photo.pk)
    return _next_photo(request, exclude=photo.pk)


@moderator_required
def failed_photos(request):
    photos = Photo.objects.failed().select_related("sighting__species").order_by("-updated_at")
    page = Paginator(photos, 30).get_page(request.GET.get("page"))
    return render(request, "identification/failed_photos.html", {"page": page})


@moderator_required
@require_POST
def retry(request, photo_id):
    photo = get_object_or_404(Photo, pk=photo_id)
    try:
        _services().retry_photo(photo=photo, actor=request.user)
        messages.success(request, f"Photo {photo.pk} is queued for processing again.")
    except ValidationError as exc:
        _show_errors(request, exc)
    return redirect("identification:failed_photos")


# ---------------------------------------------------------------- model dashboard (admins)

def _metrics(raw):
    raw = raw or {}
    out = {}
    for name, keys in METRIC_ALIASES.items():
        out[name] = next((raw[k] for k in keys if isinstance(raw.get(k), (int, float))), None)
    return out


def _progress(run: TrainingRun) -> dict:
    p = run.progress or {}
    epochs, epoch = p.get("epochs") or run.options.get("epochs") or 0, p.get("epoch") or 0
    spe, step = p.get("steps_per_epoch") or 0, p.get("step") or 0
    if run.status == TrainingRun.Status.SUCCEEDED:
        percent = 100.0
    elif epochs:
        done_epochs = max(epoch - 1, 0) if spe and step < spe else epoch
        percent = 100.0 * (done_epochs + (step / spe if spe and step < spe else 0)) / epochs
    else:
        percent = 0.0
    return {
        "id": run.pk,
        "status": run.status,
        "status_display": run.get_status_display(),
        "done": run.status not in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING),
        "cancel_requested": run.cancel_requested,
        "epoch": epoch, "epochs": epochs, "step": step, "steps_per_epoch": spe,
        "loss": p.get("loss"), "val_map5": p.get("val_map5"), "eta_seconds": p.get("eta_seconds"),
        "phase": p.get("phase", ""), "message": p.get("message", ""),
        "percent": round(min(max(percent, 0.0), 100.0), 1),
        "log_tail": "\n".join((run.log or "").splitlines()[-15:]),
        "error": run.error,
    }


@admin_required
def dashboard(request, training_form=None):
    active = ModelVersion.objects.active().first()
    versions = list(ModelVersion.objects.all()[:30])
    for v in versions:
        v.m = _metrics(v.metrics)
    runs = list(TrainingRun.objects.select_related("model_version", "started_by")[:20])
    current = TrainingRun.objects.in_progress().order_by("-created_at").first()
    summary = _services().dashboard_summary()
    pipeline = [(label, summary.get(key)) for key, label in PIPELINE_STATS if summary.get(key) is not None]
    return render(request, "identification/dashboard.html", {
        "active": active,
        "active_metrics": _metrics(active.metrics) if active else {},
        "versions": versions,
        "runs": runs,
        "current": current,
        "current_progress": _progress(current) if current else None,
        "queued_examples": TrainingExample.objects.queued().count(),
        "pipeline": pipeline,
        "form": training_form or TrainingForm(),
        "plots": PLOTS,
    })


@admin_required
@require_POST
def start_training(request):
    form = TrainingForm(request.POST)
    if not form.is_valid():
        return dashboard(request, training_form=form)
    try:
        run = _services().start_training_run(user=request.user, **form.cleaned_data)
        messages.success(request, f"Training run {getattr(run, 'pk', '')} queued.")
    except ValidationError as exc:
        _show_errors(request, exc)
    return redirect(reverse("identification:dashboard") + "#training")


@admin_required
def run_progress(request, run_id):
    return JsonResponse(_progress(get_object_or_404(TrainingRun, pk=run_id)))


@admin_required
@require_POST
def cancel_run(request, run_id):
    run = get_object_or_404(TrainingRun, pk=run_id)
    try:
        _services().cancel_training_run(run=run, user=request.user)
        messages.success(request, f"Cancelling training run {run.pk}…")
    except ValidationError as exc:
        _show_errors(request, exc)
    return redirect("identification:dashboard")


@admin_required
@require_POST
def promote(request, version_id):
    version = get_object_or_404(ModelVersion, pk=version_id)
    try:
        _services().promote_model_version(version=version, user=request.user)
        messages.success(request, f"Promoting {version.name}: the gallery is being re-embedded; it becomes active when that finishes.")
    except ValidationError as exc:
        _show_errors(request, exc)
    return redirect("identification:dashboard")


@admin_required
@require_POST
def rollback(request):
    try:
        version = _services().rollback_model(user=request.user)
        messages.success(request, f"Rolling back to {version}: it becomes active once the gallery is re-embedded.")
    except ValidationError as exc:
        _show_errors(request, exc)
    return redirect("identification:dashboard")


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

