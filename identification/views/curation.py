"""Moderators' curation pages: correct a crop box, split a photo out of a whale, merge two whales,
and retry the photos that failed. The work itself is in ``identification.review.curation``."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from submissions.models import Photo

from ..forms import BoxForm, MergeForm, SpeciesForm
from ..models import Individual
from ..permissions import moderator_required
from ..review.curation import correct_box as save_box
from ..review.curation import correct_species as save_species
from ..review.curation import merge_individuals, split_photo
from .common import retry_failed_photo, show_errors

FAILED_PAGE = 30


@moderator_required
@require_POST
def correct_box(request, photo_id):
    photo = get_object_or_404(Photo, pk=photo_id)
    form = BoxForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Draw a box on the original photo first.")
        save_box(photo=photo, moderator=request.user, box=form.box())
        messages.success(request, f"Photo {photo.pk}: crop box saved; it is being matched again with the new crop.")
    except ValidationError as exc:
        show_errors(request, exc)
    return redirect(
        request.POST.get("next") == "photo" and "identification:photo_detail" or "identification:review_photo",
        photo_id=photo.pk,
    )


@moderator_required
@require_POST
def correct_species(request, photo_id):
    photo = get_object_or_404(Photo, pk=photo_id)
    form = SpeciesForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Choose a species.")
        save_species(photo=photo, moderator=request.user, species=form.cleaned_data["species"])
        messages.success(
            request,
            f"Photo {photo.pk}: species corrected to {form.cleaned_data['species']}; "
            "its sighting's photos are being matched again.",
        )
    except ValidationError as exc:
        show_errors(request, exc)
    return redirect("identification:review_photo", photo_id=photo.pk)


@moderator_required
@require_POST
def split(request, photo_id):
    photo = get_object_or_404(Photo, pk=photo_id)
    try:
        decision = split_photo(photo=photo, moderator=request.user)
        messages.success(
            request, f"Photo {photo.pk} was taken out of {decision.details.get('from')} and is awaiting review again."
        )
    except ValidationError as exc:
        show_errors(request, exc)
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
        merge_individuals(source=source, target=target, moderator=request.user)
        messages.success(request, f"{source.catalogue_id} was merged into {target.catalogue_id}.")
    except ValidationError as exc:
        show_errors(request, exc)
        return redirect("identification:individual_detail", catalogue_id=source.catalogue_id)
    return redirect("identification:individual_detail", catalogue_id=target.catalogue_id)


@moderator_required
def failed_photos(request):
    photos = Photo.objects.failed().select_related("sighting__species").order_by("-updated_at")
    page = Paginator(photos, FAILED_PAGE).get_page(request.GET.get("page"))
    return render(request, "identification/failed_photos.html", {"page": page})


@moderator_required
@require_POST
def retry(request, photo_id):
    return retry_failed_photo(request, photo_id, "identification:failed_photos")
