from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Max, Min, Prefetch, Q
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from submissions.models import Photo, Sighting

from .forms import BoxForm, ConfirmForm, MergeForm, NewIndividualForm, RejectForm, ReviewFilterForm, TrainingForm
from .models import Decision, Individual, ModelVersion, TrainingExample, TrainingRun
from .permissions import admin_required, is_model_admin, is_moderator, moderator_required

GALLERY_STATUSES = (Photo.Status.CONFIRMED, Photo.Status.NEW_INDIVIDUAL)
PLOTS = ("loss", "map5", "confusion")
PIPELINE_STATS = (
    ("awaiting_review", "Awaiting review"), ("processing", "Processing"), ("failed", "Failed"), ("stuck", "Stuck"),
    ("usable_examples", "Usable examples"), ("gallery_photos", "Gallery photos"), ("individuals", "Individuals"),
)
REJECT_KEYS = {"not_a_fluke": "F", "poor_quality": "Q", "duplicate": "D", "other_species": "O"}
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
    moderator = is_moderator(request.user)
    return render(request, "identification/individual_detail.html", {
        "individual": individual, "photos": photos, "sightings": sightings, "span": span, "is_moderator": moderator,
        "audit": _services().audit_log(individual=individual)[:100] if moderator else [],
        "merge_form": MergeForm() if moderator else None,
    })


# ---------------------------------------------------------------- review (moderators)

def _filtered_queue(request):
    params = request.session.get("review_filters", {})
    return ReviewFilterForm(params).apply(_services().review_queue(request.user))


def _next_photo(request, exclude=None):
    skipped = request.session.get("review_skipped", [])
    queue = _filtered_queue(request).exclude(pk__in=[*skipped, *([exclude] if exclude else [])])
    photo = _services().claim_next(moderator=request.user, queue=queue)
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
        "disputed_count": Photo.objects.disputed().count() if is_model_admin(request.user) else None,
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
        photos = _services().candidate_photos(photo, s.individual_id, s.best_photo_id) if s.individual_id else []
        rows.append({"suggestion": s, "reference": photos[0] if photos else _reference_photo(s), "key": key,
                     "photos": photos})
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
        Photo.objects.select_related("sighting__species", "model_version", "claimed_by").with_rematching(),
        pk=photo_id,
    )
    reviewable = photo.status == Photo.Status.AWAITING_REVIEW
    if reviewable and photo.needs_admin and not is_model_admin(request.user):
        reviewable = False
        messages.warning(request, "Moderators disagreed on this photo; an administrator decides it.")
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
        "rematching": reviewable and photo.rematching,
        "candidates": candidates,
        "has_new_row": any(row["key"] == "N" for row in candidates),
        "batch_matches": _batch_matches(photo),
        "next_catalogue_id": _services().next_catalogue_id(photo.sighting.species) if reviewable else "",
        "reject_reasons": [(v, label, REJECT_KEYS.get(v, "")) for v, label in Decision.RejectReason.choices],
        "queue_count": _filtered_queue(request).count(),
        "votes": Decision.objects.open_votes().filter(photo=photo).select_related("moderator", "individual"),
        "consensus_needed": _services().consensus_needed(),
        "audit": _services().audit_log(photo=photo)[:50],
    })


def _confirm(request, photo):
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        raise ValidationError("Choose one of the candidates to confirm.")
    individual = form.cleaned_data["individual"]
    decision = _services().confirm_match(photo=photo, moderator=request.user, individual=individual)
    if not _vote_message(request, photo, decision):
        messages.success(request, f"Photo {photo.pk} confirmed as {individual}.")


def _vote_message(request, photo, decision) -> bool:
    """A consensus vote that is not final yet: say so ("1 of 2 agreeing decisions")."""
    if decision is None or not getattr(decision, "pending", False):
        return False
    photo.refresh_from_db()
    if photo.needs_admin:
        messages.warning(request, f"Photo {photo.pk}: your decision disagrees with another moderator's; an administrator will decide.")
    else:
        messages.info(request, f"Photo {photo.pk}: your decision is recorded ({decision.details.get('consensus')} agreeing decisions needed).")
    return True


def _new(request, photo):
    form = NewIndividualForm(request.POST)
    if not form.is_valid():
        raise ValidationError("The nickname is too long.")
    individual = _services().name_new_individual(photo=photo, moderator=request.user, nickname=form.cleaned_data["nickname"])
    if individual is None:
        _vote_message(request, photo, Decision.objects.open_votes().filter(photo=photo, moderator=request.user).first())
        return
    messages.success(request, f"New individual {individual or ''} added to the catalogue.".replace("  ", " "))


def _reject(request, photo):
    form = RejectForm(request.POST)
    if not form.is_valid():
        raise ValidationError("Choose a reason to reject the photo.")
    decision = _services().reject_photo(photo=photo, moderator=request.user, reason=form.cleaned_data["reason"])
    if _vote_message(request, photo, decision):
        return
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
def explain(request, photo_id, individual_id):
    photo = get_object_or_404(Photo, pk=photo_id)
    individual = get_object_or_404(Individual, pk=individual_id)
    try:
        png = _services().explain_png(photo=photo, individual=individual, user=request.user)
    except ValidationError as exc:
        raise Http404(" ".join(exc.messages))
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@moderator_required
@require_POST
def correct_box(request, photo_id):
    photo = get_object_or_404(Photo, pk=photo_id)
    form = BoxForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Draw a box on the original photo first.")
        _services().correct_box(photo=photo, moderator=request.user, box=form.box())
        messages.success(request, f"Photo {photo.pk}: crop box saved; it is being matched again with the new crop.")
    except ValidationError as exc:
        _show_errors(request, exc)
    return redirect(request.POST.get("next") == "photo" and "identification:photo_detail" or "identification:review_photo",
                    photo_id=photo.pk)


@moderator_required
@require_POST
def undo(request):
    try:
        decision = _services().undo_last_decision(moderator=request.user)
    except ValidationError as exc:
        _show_errors(request, exc)
        return redirect("identification:review_queue")
    messages.success(request, f"Undid your decision on photo {decision.photo_id} ({decision.get_action_display().lower()}).")
    request.session["review_skipped"] = [p for p in request.session.get("review_skipped", []) if p != decision.photo_id]
    return redirect("identification:review_photo", photo_id=decision.photo_id)


@admin_required
def disputed(request):
    photos = Photo.objects.disputed().select_related("sighting__species").order_by("created_at")
    votes = Decision.objects.open_votes().filter(photo__in=photos).select_related("moderator", "individual")
    by_photo = {}
    for v in votes:
        by_photo.setdefault(v.photo_id, []).append(v)
    rows = [{"photo": p, "votes": by_photo.get(p.pk, [])} for p in photos]
    return render(request, "identification/disputed.html", {"rows": rows})


@login_required
def photo_detail(request, photo_id):
    photo = get_object_or_404(Photo.objects.select_related("sighting__species", "individual", "model_version"), pk=photo_id)
    moderator = is_moderator(request.user)
    if not moderator and photo.sighting.submitted_by_id != request.user.pk:
        raise PermissionDenied("You can only see your own photos.")
    return render(request, "identification/photo_detail.html", {
        "photo": photo, "is_moderator": moderator,
        "audit": _services().audit_log(photo=photo) if moderator else [],
        "in_gallery": photo.status in GALLERY_STATUSES and photo.individual_id is not None,
    })


@moderator_required
@require_POST
def split(request, photo_id):
    photo = get_object_or_404(Photo, pk=photo_id)
    try:
        decision = _services().split_photo(photo=photo, moderator=request.user)
        messages.success(request, f"Photo {photo.pk} was taken out of {decision.details.get('from')} and is awaiting review again.")
    except ValidationError as exc:
        _show_errors(request, exc)
    return redirect("identification:photo_detail", photo_id=photo.pk)


@moderator_required
@require_POST
def merge(request, catalogue_id):
    source = get_object_or_404(Individual, catalogue_id=catalogue_id)
    form = MergeForm(request.POST)
    target = Individual.objects.filter(catalogue_id=form.data.get("target", "").strip()).first()
    if target is None:
        messages.error(request, "No individual with that catalogue id.")
        return redirect("identification:individual_detail", catalogue_id=source.catalogue_id)
    try:
        _services().merge_individuals(source=source, target=target, moderator=request.user)
        messages.success(request, f"{source.catalogue_id} was merged into {target.catalogue_id}.")
    except ValidationError as exc:
        _show_errors(request, exc)
        return redirect("identification:individual_detail", catalogue_id=source.catalogue_id)
    return redirect("identification:individual_detail", catalogue_id=target.catalogue_id)


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
        "done": not run.in_progress,
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
    # the panel and the table from one read: a worker finishing in between drew "Running" beside "no run"
    current = next((r for r in runs if r.in_progress), None)
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


def _back(request, default: str):
    """Return to the page the form was on (a same-site ``next``), else to ``default``."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(default)


@admin_required
@require_POST
def promote(request, version_id):
    version = get_object_or_404(ModelVersion, pk=version_id)
    try:
        _services().promote_model_version(version=version, user=request.user)
        messages.success(request, f"Promoting {version.name}: the gallery is being re-embedded; it becomes active when that finishes.")
    except ValidationError as exc:
        _show_errors(request, exc)
    return _back(request, "identification:dashboard")


@admin_required
@require_POST
def rollback(request):
    try:
        version = _services().rollback_model(user=request.user)
        messages.success(request, f"Rolling back to {version}: it becomes active once the gallery is re-embedded.")
    except ValidationError as exc:
        _show_errors(request, exc)
    return _back(request, "identification:dashboard")


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

