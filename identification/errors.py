"""Errors the site treats as transient: a database, broker or S3 connection that failed. Tasks retry
only these (with backoff); the pipeline lets them through instead of failing the photo."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OperationalError, InterfaceError]
    try:
        import redis.exceptions

        errors += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover
        pass
    try:
        import kombu.exceptions

        errors.append(kombu.exceptions.OperationalError)
    except ImportError:  # pragma: no cover
        pass
    try:
        import botocore.exceptions

        errors += [botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


TRANSIENT_ERRORS = _transient_errors()
