"""Shared settings, read from the environment with django-environ.

The defaults are the embedded first-run setup: SQLite, local media, and a Celery transport
(kombu's filesystem transport) that needs no server. Production overrides them through
environment variables, see ``production.py`` and ``docker/``.
"""

import datetime
from pathlib import Path

import environ

from ml import presets

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("WHALESITE_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from static/ (no CDN)
    "allauth",
    "allauth.account",
    "accounts",
    "identification",
    "submissions",
    "follows",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whalesite.middleware.RequestSizeLimitMiddleware",  # before anything reads the body
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "whalesite.middleware.DatabaseUnavailableMiddleware",  # a view's lost database: 503, not a bare 500
]

ROOT_URLCONF = "whalesite.urls"
WSGI_APPLICATION = "whalesite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "follows.context_processors.notifications",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'whalesite.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # First run: var/ may not exist yet. The web server and two workers share the file: wait for locks
    # instead of failing at once, take the write lock at BEGIN (no upgrade deadlocks), and let readers
    # run beside a writer (WAL).
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    _sqlite_options = DATABASES["default"].setdefault("OPTIONS", {})
    _sqlite_options.setdefault("timeout", env.int("SQLITE_TIMEOUT", default=30))
    _sqlite_options.setdefault("transaction_mode", "IMMEDIATE")
    _sqlite_options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Our own user model on Django's auth_user table (accounts.models: existing users, passwords, groups and
# permissions are kept as they are; accounts migrations 0001 and 0003 say how)
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.EmailBackend", "allauth.account.auth_backends.AuthenticationBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
# django-allauth: sign-up, e-mail verification and password reset (accounts.adapter). Verification is
# mandatory so that sign-up can answer the same whether or not the address has an account (the owner is
# e-mailed instead); accounts made by an operator, and those from before allauth, count as verified.
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_FORMS = {"login": "accounts.forms.LoginForm", "signup": "accounts.forms.SignUpForm"}
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_SESSION_REMEMBER = True
ACCOUNT_SIGNUP_REDIRECT_URL = "/submit/"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Whalesite] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = env.str("ACCOUNT_DEFAULT_HTTP_PROTOCOL", default="http")
# allauth's own limits (sign-up, reset, re-sent confirmations...) stay on; failed sign-ins are limited by
# accounts.views.RateLimitedLoginView (LOGIN_FAILURES_*: 429 + Retry-After), so allauth's copy is off
ACCOUNT_RATE_LIMITS = {"login_failed": False}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=False)  # Django serves MEDIA_URL itself (dev and tests only)

# Storage: "local" (default) or "s3" through django-storages.
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local")
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "access_key": env.str("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            "default_acl": None,
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Uploads: a size cap per file and per request; ml enforces the pixel cap.
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", default=25 * 1024 * 1024)
MAX_PHOTOS_PER_SIGHTING = 20
# rate limits (accounts.ratelimit, on the cache): failed sign-ins, and uploads / EXIF reads per user
LOGIN_FAILURES_PER_ACCOUNT = env.int("LOGIN_FAILURES_PER_ACCOUNT", default=5)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=20)
LOGIN_FAILURE_WINDOW_S = env.int("LOGIN_FAILURE_WINDOW_S", default=900)
UPLOADS_PER_HOUR = env.int("UPLOADS_PER_HOUR", default=60)
EXIF_READS_PER_HOUR = env.int("EXIF_READS_PER_HOUR", default=600)
SPECIES_READS_PER_HOUR = env.int("SPECIES_READS_PER_HOUR", default=600)  # the upload form's per-photo suggestion
# decimals of a sighting's coordinates on public pages: 1 is about 11 km (4 would be about 11 m)
PUBLIC_COORDINATE_DECIMALS = env.int("PUBLIC_COORDINATE_DECIMALS", default=1)
# maps (identification.maps, static/js/maps.js): a tile server for production, e.g.
# https://tile.openstreetmap.org/{z}/{x}/{y}.png; empty = the offline Natural Earth outline served from static/
MAP_TILE_URL = env.str("MAP_TILE_URL", default="")
MAP_TILE_ATTRIBUTION = env.str("MAP_TILE_ATTRIBUTION", default="© OpenStreetMap contributors")
# above this many sightings the sightings map gets one feature per public-precision cell with its count
# (identification.maps.sightings_geojson) instead of one point per sighting
MAP_POINT_LIMIT = env.int("MAP_POINT_LIMIT", default=2000)
# the earliest sighting date accepted (never earlier than FIRST_PHOTOGRAPH_DATE, the first photograph)
SIGHTING_DATE_FLOOR = datetime.date.fromisoformat(env.str("SIGHTING_DATE_FLOOR", default="1950-01-01"))
# one request (all its photos and fields), refused from Content-Length before the body is read
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", default=100 * 1024 * 1024)
# the form fields besides files may use the whole request: long notes are cut by the form (and the photos
# kept) instead of ending in Django's bare HTTP 400
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# bulk import (submissions.imports, docs/IMPORT.md): the import page's request cap (a ZIP of many photos;
# larger catalogues go through ``manage.py import_sheet``), the ZIP's caps against zip bombs, rows per chunk
IMPORT_MAX_REQUEST_BYTES = env.int("IMPORT_MAX_REQUEST_BYTES", default=2 * 1024**3)
IMPORT_MAX_UNCOMPRESSED_BYTES = env.int("IMPORT_MAX_UNCOMPRESSED_BYTES", default=20 * 1024**3)
IMPORT_MAX_ZIP_RATIO = env.int("IMPORT_MAX_ZIP_RATIO", default=100)
IMPORT_MAX_SHEET_BYTES = env.int("IMPORT_MAX_SHEET_BYTES", default=20 * 1024 * 1024)
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=20000)
IMPORT_CHUNK_ROWS = env.int("IMPORT_CHUNK_ROWS", default=25)
IMPORT_STALLED_S = env.int("IMPORT_STALLED_S", default=120)  # no row done for this long: the page offers Resume

# Celery. The default transport is kombu's filesystem transport, so a first run needs no server.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_DIR = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "whalesite.broker:Transport"  # kombu's, renaming each message in whole
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "out"),
        "data_folder_out": str(CELERY_BROKER_DIR / "out"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),  # kombu's default is ./control
        "store_processed": False,
        "polling_interval": 0.1,  # the filesystem transport polls; kombu's 1 s default adds ~1 s a photo
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = False  # set per task: pipeline and training tasks opt in
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

# ML: where model versions and the training export live; an operator can point at a local weights file.
ML_ROOT = Path(env.str("ML_ROOT", default=str(VAR_DIR / "ml")))
# the species classifier (an ml.species folder: classifier.pt + classifier.json); "" = ML_ROOT/species.
# No folder there: the upload form has no suggestion and each photo takes the sighting's species.
SPECIES_CLASSIFIER_DIR = env.str("SPECIES_CLASSIFIER_DIR", default="")
# the features the dashboard's "Retrain from the catalogue" uses (ml.species.FEATURES; "thumbnail" needs no weights)
SPECIES_CLASSIFIER_FEATURES = env.str("SPECIES_CLASSIFIER_FEATURES", default="efficientnet_lite0")
# confirmed photos a species needs before the classifier learns it (fewer: it would be a guess from a handful)
SPECIES_CLASSIFIER_MIN_PHOTOS = env.int("SPECIES_CLASSIFIER_MIN_PHOTOS", default=20)
ML_INIT_WEIGHTS = env.str("ML_INIT_WEIGHTS", default="")  # optional local backbone weights (.pt)
ML_DEVICE = env.str("ML_DEVICE", default="")  # "" = CUDA when present, else CPU
# torch threads per worker process; 0 = the cores divided by the pool size (identification.ops.threads)
ML_TORCH_THREADS = env.int("ML_TORCH_THREADS", default=0)
# what a run gets when its caller leaves the recipe out: ml.presets.DEFAULT, the frozen pretrained
# EfficientNet-Lite0 that won bench/real_reid.py within this CPU's budget (TrainConfig.trainable_blocks: 0)
ML_DEFAULT_ARCH = env.str("ML_DEFAULT_ARCH", default=presets.DEFAULT.arch)
ML_DEFAULT_IMAGE_SIZE = env.int("ML_DEFAULT_IMAGE_SIZE", default=presets.DEFAULT.image_size)
ML_DEFAULT_EPOCHS = env.int("ML_DEFAULT_EPOCHS", default=presets.DEFAULT.epochs)
ML_DEFAULT_BATCH_SIZE = env.int("ML_DEFAULT_BATCH_SIZE", default=presets.DEFAULT.batch_size)
# a training worker times a few steps of the form's default at start-up, for the form's estimate
ML_MEASURE_STEP_TIME_AT_START = env.bool("ML_MEASURE_STEP_TIME_AT_START", default=True)
ML_TRAIN_MAX_STEPS = env.int("ML_TRAIN_MAX_STEPS", default=0)  # 0 = no cap (tests set a small cap)
AUTO_PROMOTE_BETTER_MODELS = env.bool("AUTO_PROMOTE_BETTER_MODELS", default=False)
REVIEW_CONSENSUS = env.int("REVIEW_CONSENSUS", default=1)
STUCK_PHOTO_MINUTES = env.float("STUCK_PHOTO_MINUTES", default=30)  # beat re-queues photos waiting longer
# a processing worker holds a lease on its photo, renewed every third of this; once it lapses (the worker was
# killed) beat's requeue-stuck-photos (every minute) queues the photo again
PHOTO_LEASE_S = env.float("PHOTO_LEASE_S", default=90)
# a running training run writes a heartbeat this often; one silent for TRAINING_RUN_LOST_S has no live worker
TRAINING_HEARTBEAT_S = env.float("TRAINING_HEARTBEAT_S", default=10)
TRAINING_RUN_LOST_S = env.float("TRAINING_RUN_LOST_S", default=60)

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="whalesite <noreply@whalesite.local>")
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
# watchers' e-mails wait this long after a decision: one mail per sighting and outcome, none for an undo
NOTIFY_UNDO_WINDOW_S = env.float("NOTIFY_UNDO_WINDOW_S", default=300)

# research exports (identification.research): photo licences, Darwin Core dataset metadata, seasons
DEFAULT_PHOTO_LICENCE = env.str("DEFAULT_PHOTO_LICENCE", default="CC-BY")  # CC0, CC-BY or CC-BY-NC
EXPORT_NONCOMMERCIAL_PHOTOS = env.bool("EXPORT_NONCOMMERCIAL_PHOTOS", default=False)  # CC BY-NC in the DwC-A
DWCA_TITLE = env.str("DWCA_TITLE", default="Whalesite humpback whale photo-identification catalogue")
DWCA_CREATOR = env.str("DWCA_CREATOR", default="Whalesite")
DWCA_CONTACT_EMAIL = env.str("DWCA_CONTACT_EMAIL", default="")
DWCA_LICENCE = env.str("DWCA_LICENCE", default="CC-BY")  # the dataset's own licence (eml.xml)
DWCA_DESCRIPTION = env.str(
    "DWCA_DESCRIPTION",
    default="Sightings of individually identified whales: fluke photos from citizen scientists, "
    "matched by a model and confirmed by moderators.",
)
RESEARCH_SEASON_MONTHS = env.list("RESEARCH_SEASON_MONTHS", cast=int, default=[12, 1, 2, 3])  # in season order
MODERATOR_COORDINATE_DECIMALS = env.int("MODERATOR_COORDINATE_DECIMALS", default=3)  # admins get full precision

# REST API (api/): token or session sign-in, paginated and filtered reads, per-token rate limits
API_TOKEN_RATE = env.str("API_TOKEN_RATE", default="1000/hour")  # per token (or per signed-in browser session)
API_ANON_RATE = env.str("API_ANON_RATE", default="200/hour")  # per address, without a token
API_PAGE_SIZE = env.int("API_PAGE_SIZE", default=50)
API_TOKENS_PER_USER = env.int("API_TOKENS_PER_USER", default=10)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiTokenAuthentication",  # first: its 401 carries WWW-Authenticate
        "rest_framework.authentication.SessionAuthentication",  # the browsable API for a signed-in user
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.TokenRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Whalesite API",
    "DESCRIPTION": "Species, individuals, sightings and photos; submit sightings and, for moderators, "
    "record decisions. See docs/API.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,  # multipart request bodies get their own (binary) schema
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"forbidden_without_traceback": {"()": "whalesite.logfilters.ForbiddenWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"filters": ["forbidden_without_traceback"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
