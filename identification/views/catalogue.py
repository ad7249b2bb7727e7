"""Public pages: the catalogue of individuals, a whale's page and track, and a photo's
page (its watcher and moderators)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render

from submissions.models import Photo

from .. import maps, whales
from ..filters import IndividualFilter
from ..forms import MergeForm
from ..models import Individual
from ..permissions import is_moderator
from ..review.compare import audit_log

INDIVIDUALS_PAGE = 24


def individuals(request):
    gallery = Q(photos__status__in=Photo.GALLERY_STATUSES)
    qs = (
        Individual.objects.active()
        .select_related("species")
        .annotate(
            photo_count=Count("photos", filter=gallery),
            last_seen=Max("photos__sighting__observed_at", filter=gallery),
        )
    )
    qs = IndividualFilter(request.GET, queryset=qs).qs  # the same filter as the API's /api/v1/individuals/
    q = request.GET.get("q", "").strip()
    page = Paginator(qs.order_by("catalogue_id"), INDIVIDUALS_PAGE).get_page(request.GET.get("page"))
    latest = Photo.objects.in_gallery().order_by("-sighting__observed_at", "-pk")
    for individual in page:
        individual.cover = latest.filter(individual=individual).first()
    return render(request, "identification/individuals.html", {"page": page, "q": q})


def individual_detail(request, catalogue_id):
    individual = whales.whale_or_404(catalogue_id)
    if individual.merged_into_id:
        messages.info(request, f"{individual.catalogue_id} was merged into {individual.merged_into.catalogue_id}.")
        return redirect("identification:individual_detail", catalogue_id=individual.merged_into.catalogue_id)
    moderator = is_moderator(request.user)
    profile = whales.whale_profile(individual, request.GET.get("page"))
    preview = whales.preview_image(profile)
    return render(
        request,
        "identification/individual_detail.html",
        {
            "individual": individual,
            "profile": profile,
            "share_url": request.build_absolute_uri(request.path),
            "share_text": whales.share_text(profile),
            "og_image": request.build_absolute_uri(preview.url) if preview else "",
            "is_moderator": moderator,
            "audit": audit_log(individual=individual)[:100] if moderator else [],
            "merge_form": MergeForm() if moderator else None,
        },
    )


def individual_track(request, catalogue_id):
    """The whale's track as GeoJSON (the page's map reads it); a merged whale's is its target's."""
    individual = whales.whale_or_404(catalogue_id)
    return JsonResponse(maps.track_geojson(individual.merged_into or individual))


@login_required
def photo_detail(request, photo_id):
    photo = get_object_or_404(
        Photo.objects.select_related("sighting__species", "individual", "model_version").with_familiarity(),
        pk=photo_id,
    )
    moderator = is_moderator(request.user)
    if not moderator and photo.sighting.submitted_by_id != request.user.pk:
        raise PermissionDenied("You can only see your own photos.")
    return render(
        request,
        "identification/photo_detail.html",
        {
            "photo": photo,
            "is_moderator": moderator,
            "audit": audit_log(photo=photo) if moderator else [],
            "in_gallery": photo.status in Photo.GALLERY_STATUSES and photo.individual_id is not None,
        },
    )
