from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from accounts import ratelimit
from identification import maps
from identification.models import Decision

from . import services, species_guess
from .filters import SightingFilter
from .forms import ExifForm, SightingForm
from .models import Photo, Sighting

REJECT_LABELS = {**dict(Decision.RejectReason.choices), "duplicate": "Already in our catalogue"}


def _label_rejections(sightings):
    for sighting in sightings:
        for photo in sighting.photos.all():
            photo.reject_label = REJECT_LABELS.get(photo.reject_reason, photo.reject_reason)


def add_service_errors(form, exc: ValidationError) -> None:
    """Show a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _report(request, outcome) -> None:
    if outcome.accepted:
        n = len(outcome.accepted)
        if outcome.queued:
            messages.success(
                request, f"Thank you! {n} photo{'s' if n != 1 else ''} received and queued for identification."
            )
        else:  # the broker is down: everything is saved, the beat sweep queues it when the broker is back
            messages.success(
                request,
                f"Thank you! {n} photo{'s' if n != 1 else ''} received and saved. "
                "Identification is paused for a moment; they will be processed automatically.",
            )
    for photo in outcome.resumed:
        name = photo.original_filename or f"photo {photo.pk}"
        messages.info(request, f"{name}: you sent this photo already; it is saved and will be processed.")
    for photo in outcome.duplicates:
        name = getattr(photo, "original_filename", "") or f"photo {photo.pk}"
        messages.warning(request, f"{name}: already in our catalogue, so it was not added again.")
    for filename, first in outcome.repeated:
        messages.info(request, f"{filename}: the same photo as {first} in this upload, so it was added once.")
    for filename, message in outcome.rejected:
        messages.error(request, f"{filename}: {message}")


@login_required
def submit(request):
    if request.method == "POST" and (wait := _over_limit(request, "upload", settings.UPLOADS_PER_HOUR)):
        return ratelimit.too_many(f"You have sent {settings.UPLOADS_PER_HOUR} uploads in the last hour.", wait)
    form = (
        SightingForm(request.POST, request.FILES, user=request.user)
        if request.method == "POST"
        else SightingForm(user=request.user)
    )
    outcome = None
    if request.method == "POST" and form.is_valid():
        try:
            outcome = services.submit_sighting(user=request.user, **form.service_kwargs())
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if outcome.accepted or outcome.resumed:
                _report(request, outcome)
                for notice in form.notices:
                    messages.warning(request, notice)
                return redirect("submissions:my_sightings")
            form.add_error("photos", "None of the photos could be added; see the message for each file below.")
    # a browser never re-selects files after a round trip: say so instead of dropping them silently
    lost = len(request.FILES.getlist("photos")) if form.errors and outcome is None else 0
    context = {
        "form": form,
        "outcome": outcome,
        "limits": upload_limits(),
        "lost_photos": lost,
        "suggests_species": species_guess.classifier() is not None,
    }
    return render(request, "submissions/submit.html", context)


def upload_limits() -> dict:
    """The caps the form states: per photo (``services``) and per request (``whalesite.middleware``)."""
    mb = 1024 * 1024
    return {"per_file_mb": settings.MAX_UPLOAD_BYTES // mb, "per_request_mb": settings.MAX_REQUEST_BYTES // mb}


@login_required
@require_POST
def exif(request):
    if wait := _over_limit(request, "exif", settings.EXIF_READS_PER_HOUR):
        return ratelimit.too_many("Too many photos were read for their date and place.", wait, json=True)
    form = ExifForm(files=request.FILES)
    if not form.is_valid():
        return JsonResponse({"error": "Send one photo as 'photo'."}, status=400)
    data = services.exif_prefill(form.cleaned_data["photo"]) or {}
    when = data.get("observed_at")
    if isinstance(when, str):
        when = parse_datetime(when)
    return JsonResponse(
        {
            "observed_at": when.isoformat() if when else None,
            "date": when.strftime("%Y-%m-%d") if when else None,
            "time": when.strftime("%H:%M") if when else None,
            "latitude": data.get("latitude"),
            "longitude": data.get("longitude"),
        }
    )


@login_required
@require_POST
def species(request):
    """The species classifier's suggestion for one photo, for its select on the upload form."""
    if wait := _over_limit(request, "species", settings.SPECIES_READS_PER_HOUR):
        return ratelimit.too_many("Too many photos were read for their species.", wait, json=True)
    form = ExifForm(files=request.FILES)
    if not form.is_valid():
        return JsonResponse({"error": "Send one photo as 'photo'."}, status=400)
    try:
        suggestion = services.species_suggestion(form.cleaned_data["photo"])
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages)}, status=400)
    if suggestion is None:
        return JsonResponse({"available": False})
    return JsonResponse({"available": True, **suggestion.as_json()})


def _over_limit(request, what: str, per_hour: int) -> int:
    """Seconds to wait when the user is over ``per_hour`` requests of this kind, else 0 (and count this one)."""
    key = f"{what}:{request.user.pk}"
    wait = ratelimit.blocked(key, per_hour)
    if not wait:
        ratelimit.hit(key, 3600)
    return wait


def _my_sightings(user):
    photos = Photo.objects.select_related("individual").order_by("pk")
    return (
        Sighting.objects.filter(submitted_by=user)
        .select_related("species", "submitted_by__profile")  # the photo credit line
        .prefetch_related(Prefetch("photos", queryset=photos))
        .order_by("-created_at")
    )


@login_required
def my_sightings(request):
    page = Paginator(_my_sightings(request.user), 10).get_page(request.GET.get("page"))
    _label_rejections(page)
    pending = Photo.objects.filter(sighting__submitted_by=request.user, status__in=Photo.PENDING_STATUSES).exists()
    return render(request, "submissions/my_sightings.html", {"page": page, "pending": pending})


@login_required
def my_sightings_status(request):
    photos = Photo.objects.filter(sighting__submitted_by=request.user).values_list("pk", "status")
    statuses = {str(pk): status for pk, status in photos}
    pending = sum(1 for s in statuses.values() if s in Photo.PENDING_STATUSES)
    return JsonResponse({"pending": pending, "photos": statuses})


def sightings(request):
    """Identified sightings, newest first, and the map of every public sighting, narrowed by ``SightingFilter``
    (the API's ``/api/v1/sightings/`` filter); a bad value is reported on its field and narrows nothing."""
    confirmed = Photo.objects.in_gallery().select_related("individual").order_by("pk")
    qs = (
        Sighting.objects.public()
        .select_related("species", "submitted_by__profile")  # the photo credit line
        .prefetch_related(Prefetch("photos", queryset=confirmed, to_attr="public_photos"))
        .order_by("-observed_at", "-pk")
    )
    filters = SightingFilter(request.GET, queryset=qs, request=request)
    page = Paginator(filters.qs, 20).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "submissions/sightings.html", {"page": page, "filter": filters, "query": query.urlencode()})


def sightings_map(request):
    """The sightings page's map as GeoJSON: the sightings ``SightingFilter`` picks (a box at the viewer's
    precision), each with its public photos, or past ``MAP_POINT_LIMIT`` of them one point per 0.1° cell with
    its counts (``maps.sightings_geojson``); a bad filter is a 400 naming it."""
    filters = SightingFilter(request.GET, queryset=Sighting.objects.all(), request=request)
    if not filters.is_valid():
        return JsonResponse({"errors": {k: [str(e) for e in v] for k, v in filters.errors.items()}}, status=400)
    return JsonResponse(maps.sightings_geojson(filters.qs), json_dumps_params={"separators": (",", ":")})
