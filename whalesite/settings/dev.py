"""The embedded first-run setup: SQLite, local media, filesystem Celery transport, DEBUG on."""

from .base import *  # noqa: F401,F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
SERVE_MEDIA = True  # uploaded photos and crops are served by Django (live_server in the browser tests)
