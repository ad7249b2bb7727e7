"""Helpers every page family uses."""

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme

from submissions.models import Photo

from ..review.curation import retry_photo


def show_errors(request, exc: ValidationError) -> None:
    """A service's ``ValidationError`` becomes one flash message per message."""
    for message in exc.messages:
        messages.error(request, message)


def back(request, default: str):
    """Return to the page the form was on (a same-site ``next``), else to ``default``."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(default)


def act(request, action: Callable[[], str], then: str, **kwargs):
    """Run one domain action for a POST view: its returned text becomes a success message and a
    ``ValidationError`` the error messages, then redirect to ``then`` either way (so each view stays a line)."""
    try:
        messages.success(request, action())
    except ValidationError as exc:
        show_errors(request, exc)
    return redirect(then, **kwargs)


def retry_failed_photo(request, photo_id: int, then: str):
    """The retry button of the failed-photos page and of the health page."""
    photo = get_object_or_404(Photo, pk=photo_id)

    def queue_again() -> str:
        retry_photo(photo=photo, actor=request.user)
        return f"Photo {photo.pk} is queued for processing again."

    return act(request, queue_again, then)
