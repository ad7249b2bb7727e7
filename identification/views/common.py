"""Helpers every page family uses."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme


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
