"""Refuse an oversized request before its body is read.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE leaves file parts out, and gunicorn has no body limit, so one
upload of 20 files of 25 MB was read in full (481 MB; one web worker grew to 1.2 GB). This middleware
answers 413 from the ``Content-Length`` header alone, before anything reads the body, with a message the
watcher can act on."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.utils.html import escape

IMPORT_PATH = "/imports/"


def megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        # the bulk import page takes a ZIP of many photos (submissions.imports); every other page the usual cap
        import_page = request.path.startswith(IMPORT_PATH)
        limit = settings.IMPORT_MAX_REQUEST_BYTES if import_page else settings.MAX_REQUEST_BYTES
        if length > limit:
            return too_big(length, limit)
        return self.get_response(request)


def too_big(length: int, limit: int) -> HttpResponse:
    message = (
        f"This upload is {megabytes(length)}, over the {megabytes(limit)} limit for one upload. "
        "Nothing was saved: please go back and send fewer photos at a time."
    )
    html = (
        f"<!doctype html><title>Upload too large</title><h1>Upload too large</h1><p>{escape(message)}</p>"
        '<p><a href="javascript:history.back()">Back to the form</a></p>'
    )
    response = HttpResponse(html, status=413)
    response["Connection"] = "close"  # the unread body is not drained
    return response
