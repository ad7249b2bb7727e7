"""Every error is JSON with a ``detail`` a person can act on. The services raise Django's
``ValidationError`` / ``PermissionDenied``; here they become 400 / 403 like DRF's own errors."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError({"detail": " ".join(exc.messages)})
    response = drf_exception_handler(exc, context)
    if response is not None and not isinstance(response.data, dict):
        response.data = {"detail": " ".join(str(m) for m in response.data), "errors": response.data}
    elif response is not None and "detail" not in response.data:
        response.data = {"detail": "Some fields are not valid; see errors.", "errors": response.data}
    return response
