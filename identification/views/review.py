"""Moderators' pages: the review queue, one photo with its candidates, the decision, the occlusion
map, undo and the disputed photos. The work itself is in ``identification.review``."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from submissions.models import Photo

from ..forms import ConfirmForm, NewIndividualForm, RejectForm, ReviewFilterForm, SpeciesForm
from ..models import Decision, Individual
from ..permissions import admin_required, is_model_admin, moderator_required
from ..review.compare import audit_log, candidate_photos, explain_png
from ..review.curation import undo_last_decision
from ..review.decisions import (
    confirm_match,
    consensus_needed,
    name_new_individual,
    next_catalogue_id,
    reject_photo,
    skip_photo,
)
from ..review.evidence import matched_points_png
from ..review.queue import claim_next, claim_photo, held_by_other
from ..review.queue import review_queue as moderator_queue
from ..review.unmatched import why_unmatched
from .common import show_errors

REJECT_KEYS = {"not_a_fluke": "F", "poor_quality": "Q", "duplicate": "D", "other_species": "O"}
QUEUE_PAGE = 50


def _filtered_queue(request):
    params = request.session.get("review_filters", {})
    return ReviewFilterForm(params).apply(moderator_queue(request.user))


def _next_photo(request, exclude=None):
    skipped = request.session.get("review_skipped", [])
    queue = _filtered_queue(request).exclude(pk__in=[*skipped, *([exclude] if exclude else [])])
    photo = claim_next(moderator=request.user, queue=queue)
    if photo is None:
        messages.info(request, "The review queue is empty. Nice work!")
        return redirect("identification:review_queue")
    return redirect("identification:review_photo", photo_id=photo.pk)


@moderator_required
def review_queue(request):
    form = ReviewFilterForm(request.GET or None)
    request.session["review_filters"] = request.GET.dict() if form.is_valid() else {}
    queue = form.apply(moderator_queue(request.user)).select_related("sighting__species")
    return render(
        request,
        "identification/review_queue.html",
        {
            "form": form,
            "count": queue.count(),
            "photos": queue[:QUEUE_PAGE],
            "query": request.GET.urlencode(),
            "active_filters": form.active_count(),
            "disputed_count": Photo.objects.disputed().count() if is_model_admin(request.user) else None,
        },
    )


@moderator_required
@require_POST
def review_start(request):
    """Claims the first photo of the queue: POST only, so a link or a cross-site <img> cannot."""
    request.session["review_skipped"] = []
    return _next_photo(request)


@moderator_required
@require_POST
def review_claim(request, photo_id):
    """The queue's "Review" button: claim this photo, then show it (a GET of the page never claims)."""
    photo = get_object_or_404(Photo, pk=photo_id)
    try:
        claim_photo(photo=photo, moderator=request.user)
    except ValidationError as exc:
        show_errors(request, exc)
    return redirect("identification:review_photo", photo_id=photo.pk)


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
    rows = []
    for s in suggestions:
        photos = candidate_photos(photo, s.individual_id, s.best_photo_id) if s.individual_id else []
        rows.append(
            {
                "suggestion": s,
                "reference": photos[0] if photos else _reference_photo(s),
                "key": shortcut_for(s),
                "photos": photos,
            }
        )
    return rows


def shortcut_for(suggestion) -> str:
    """One rule for the number printed on a row and the key that acts on it: both are the rank, the
    "new individual" row included (N works too). Counting only individuals made key 4 act on row #5."""
    return str(suggestion.rank) if 1 <= suggestion.rank <= 9 else ""


def _batch_matches(photo):
    """Similarity to photos of the same sighting: ``photo.batch_matches`` is [{photo_id, score}]."""
    matches = [m for m in (photo.batch_matches or []) if isinstance(m, dict) and m.get("photo_id")]
    photos = Photo.objects.in_bulk([m["photo_id"] for m in matches])
    rows = [{"photo": photos[m["photo_id"]], "score": m.get("score")} for m in matches if m["photo_id"] in photos]
    return sorted(rows, key=lambda r: -(r["score"] or 0))


@moderator_required
def review_photo(request, photo_id):
    photo = get_object_or_404(
        Photo.objects.select_related("sighting__species", "species", "suggested_species", "model_version", "claimed_by")
        .with_rematching()
        .with_familiarity(),
        pk=photo_id,
    )
    reviewable = photo.status == Photo.Status.AWAITING_REVIEW
    if reviewable and photo.needs_admin and not is_model_admin(request.user):
        reviewable = False
        messages.warning(request, "Moderators disagreed on this photo; an administrator decides it.")
    if reviewable and (holder := held_by_other(photo, request.user)):
        messages.warning(request, f"{holder} is reviewing this photo; decide only if you agreed to.")
    elif not reviewable:
        messages.info(request, f"This photo is {photo.get_status_display().lower()}; there is nothing to decide.")
    candidates = _candidates(photo)
    return render(
        request,
        "identification/review_photo.html",
        {
            "photo": photo,
            "reviewable": reviewable,
            "rematching": reviewable and photo.rematching,
            "candidates": candidates,
            "has_new_row": any(row["suggestion"].individual_id is None for row in candidates),
            "batch_matches": _batch_matches(photo),
            "next_catalogue_id": next_catalogue_id(photo.species) if reviewable and photo.species else "",
            "unmatched": why_unmatched(photo) if reviewable and not photo.rematching else "",
            "reject_reasons": [(v, label, REJECT_KEYS.get(v, "")) for v, label in Decision.RejectReason.choices],
            "species_form": SpeciesForm(initial={"species": photo.species}),
            "queue_count": _filtered_queue(request).count(),
            "votes": Decision.objects.open_votes().filter(photo=photo).select_related("moderator", "individual"),
            "consensus_needed": consensus_needed(),
            "audit": audit_log(photo=photo)[:50],
        },
    )


def _confirm(request, photo):
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        raise ValidationError("Choose one of the candidates to confirm.")
    individual = form.cleaned_data["individual"]
    decision = confirm_match(photo=photo, moderator=request.user, individual=individual)
    if not _vote_message(request, photo, decision):
        messages.success(request, f"Photo {photo.pk} confirmed as {individual}.")


def _vote_message(request, photo, decision) -> bool:
    """A consensus vote that is not final yet: say so ("1 of 2 agreeing decisions")."""
    if decision is None or not decision.pending:
        return False
    photo.refresh_from_db()
    if photo.needs_admin:
        messages.warning(
            request,
            f"Photo {photo.pk}: your decision disagrees with another moderator's; an administrator will decide.",
        )
    else:
        messages.info(
            request,
            f"Photo {photo.pk}: your decision is recorded "
            f"({decision.details.get('consensus')} agreeing decisions needed).",
        )
    return True


def _new(request, photo):
    form = NewIndividualForm(request.POST)
    if not form.is_valid():
        raise ValidationError("The nickname is too long.")
    individual = name_new_individual(photo=photo, moderator=request.user, nickname=form.cleaned_data["nickname"])
    if individual is None:
        _vote_message(request, photo, Decision.objects.open_votes().filter(photo=photo, moderator=request.user).first())
        return
    messages.success(request, f"New individual {individual} added to the catalogue.")


def _reject(request, photo):
    form = RejectForm(request.POST)
    if not form.is_valid():
        raise ValidationError("Choose a reason to reject the photo.")
    decision = reject_photo(photo=photo, moderator=request.user, reason=form.cleaned_data["reason"])
    if _vote_message(request, photo, decision):
        return
    messages.success(
        request, f"Photo {photo.pk} rejected ({Decision.RejectReason(form.cleaned_data['reason']).label})."
    )


def _skip(request, photo):
    skip_photo(photo=photo, moderator=request.user)
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
        show_errors(request, exc)
        return redirect("identification:review_photo", photo_id=photo.pk)
    return _next_photo(request, exclude=photo.pk)


def _candidate_png(request, photo_id, individual_id, render) -> HttpResponse:
    """A picture about one candidate of a photo (``render(photo=, individual=, user=)``), or 404 with why."""
    photo = get_object_or_404(Photo, pk=photo_id)
    individual = get_object_or_404(Individual, pk=individual_id)
    try:
        png = render(photo=photo, individual=individual, user=request.user)
    except ValidationError as exc:
        raise Http404(" ".join(exc.messages)) from None
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@moderator_required
def explain(request, photo_id, individual_id):
    """The occlusion heat-map of the query against the candidate (review.compare)."""
    return _candidate_png(request, photo_id, individual_id, explain_png)


@moderator_required
def matched_points(request, photo_id, individual_id):
    """The RootSIFT-verified keypoint pairs with the candidate's best photo, as a PNG (review.evidence)."""
    return _candidate_png(request, photo_id, individual_id, matched_points_png)


@moderator_required
@require_POST
def undo(request):
    try:
        decision = undo_last_decision(moderator=request.user)
    except ValidationError as exc:
        show_errors(request, exc)
        return redirect("identification:review_queue")
    messages.success(
        request, f"Undid your decision on photo {decision.photo_id} ({decision.get_action_display().lower()})."
    )
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
