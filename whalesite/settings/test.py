"""CI settings: PostgreSQL and Redis on this machine, for real (override with DATABASE_URL / CELERY_BROKER_URL)."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")

from .base import *  # noqa: E402,F401,F403
from .base import BASE_DIR, env  # noqa: E402

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# locmem in the test process; a worker started by a browser test may write its mail to files instead
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.locmem.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(BASE_DIR / "var" / "test-mail"))
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(BASE_DIR / "var" / "test-media"))
SERVE_MEDIA = True  # uploaded photos and crops are served by Django (live_server in the browser tests)
TRAINING_HEARTBEAT_S = env.float("TRAINING_HEARTBEAT_S", default=1)  # crash tests wait for a lost run
TRAINING_RUN_LOST_S = env.float("TRAINING_RUN_LOST_S", default=8)
PHOTO_LEASE_S = env.float("PHOTO_LEASE_S", default=6)
NOTIFY_UNDO_WINDOW_S = env.float(
    "NOTIFY_UNDO_WINDOW_S", default=2
)  # the real worker's mail task runs after a short window
# the real training worker of the tests starts no step timing of its own (tests ask for one)
ML_MEASURE_STEP_TIME_AT_START = env.bool("ML_MEASURE_STEP_TIME_AT_START", default=False)
