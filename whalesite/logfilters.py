"""Logging filters named in ``settings.LOGGING``."""

import logging


class ForbiddenWithoutTraceback(logging.Filter):
    """A 403 is an expected answer, not a crash: keep django.request's one-line warning, drop the
    traceback it attaches (every 403 wrote full tracebacks to the log, burying real errors)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
