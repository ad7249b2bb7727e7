"""Production settings refuse to start without their variables and pass ``check --deploy``."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args, env_extra, drop=()):
    dropped = {
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
        *drop,
    }  # the last: browser tests
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(env_extra)
    env["DJANGO_SETTINGS_MODULE"] = "whalesite.settings.production"
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_production_refuses_to_start_without_required_variables():
    result = _manage("check", env_extra={"SECRET_KEY": "x" * 60})
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr and "DATABASE_URL" in result.stderr
    assert "SECRET_KEY" not in result.stderr.split("variables:")[-1]


def test_production_passes_check_deploy():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_extra={
            "SECRET_KEY": "k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789" * 2,
            "ALLOWED_HOSTS": "whales.example.org",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_embedded_default_needs_no_server(tmp_path):
    """The first-run settings use SQLite, local media and the filesystem Celery transport."""
    code = (
        "import django; django.setup(); from django.conf import settings;"
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL,"
        " settings.STORAGES['default']['BACKEND'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "STORAGE_BACKEND"}}
    env.update(DJANGO_SETTINGS_MODULE="whalesite.settings.dev", WHALESITE_VAR_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    engine, broker, storage = out.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert broker == "filesystem://"
    assert storage.endswith("FileSystemStorage")
