"""Two answers a watcher can act on where Django would give a bare error.

``RequestSizeLimitMiddleware`` refuses an oversized request before its body is read. Django's
DATA_UPLOAD_MAX_MEMORY_SIZE leaves file parts out, and gunicorn has no body limit, so one
upload of 20 files of 25 MB was read in full (481 MB; one web worker grew to 1.2 GB). This middleware
answers 413 from the ``Content-Length`` header alone, before anything reads the body, with a message the
watcher can act on.

``DatabaseUnavailableMiddleware`` turns a database that dropped or refused the connection during a view
(an upload's transaction cut mid-way: issue 13) into a 503 page that says nothing was saved and to send
again, instead of a bare 500. The page is rendered without the request's context: the user, the session
and the permissions would all need the database that is gone."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.html import escape

log = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_S = 30
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
            return too_big(length, limit, json=request.path.startswith("/api/"))
        return self.get_response(request)


def too_big(length: int, limit: int, json: bool = False) -> HttpResponse:
    """413 for the upload form (a page with a way back), or for an API client (JSON with ``detail``)."""
    message = (
        f"This upload is {megabytes(length)}, over the {megabytes(limit)} limit for one upload. "
        "Nothing was saved: please go back and send fewer photos at a time."
    )
    if json:
        response = JsonResponse({"detail": message.replace("please go back and send", "send")}, status=413)
        response["Connection"] = "close"
        return response
    html = (
        f"<!doctype html><title>Upload too large</title><h1>Upload too large</h1><p>{escape(message)}</p>"
        '<p><a href="javascript:history.back()">Back to the form</a></p>'
    )
    response = HttpResponse(html, status=413)
    response["Connection"] = "close"  # the unread body is not drained
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.error("database unavailable during %s %s", request.method, request.path, exc_info=exception)
        html = render_to_string("database_unavailable.html", {"retry_after_s": DATABASE_RETRY_AFTER_S})
        response = HttpResponse(html, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
