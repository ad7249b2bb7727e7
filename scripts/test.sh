#!/usr/bin/env bash
# Runs the whole suite the way CI does: PostgreSQL and Redis on this machine, a real Celery
# worker (started by tests/conftest.py), Debian Chromium for the browser tests and a SeaweedFS
# S3 server on loopback for the storage tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

ensure_service() {  # name, probe command, start command
  if ! eval "$2" >/dev/null 2>&1; then
    echo "starting $1"; eval "$3" || true
    for _ in $(seq 1 30); do eval "$2" >/dev/null 2>&1 && return 0; sleep 1; done
    echo "$1 is not reachable" >&2; exit 1
  fi
}
ensure_service postgresql "pg_isready -h 127.0.0.1 -p 5432" \
  "pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start"
ensure_service redis "redis-cli -h 127.0.0.1 -p 6379 ping" \
  "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no --dir /tmp"

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi

export DJANGO_SETTINGS_MODULE=whalesite.settings.test
export PYTHONUNBUFFERED=1
exec "$PY" -m pytest -q -p no:cacheprovider --durations=25 "$@"
