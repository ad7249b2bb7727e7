"""``make run`` answers its first page within a minute of the install (issue 12, item 11): the web
process and ``run_site`` itself start without importing torch (12 s of a loaded 2-core machine, paid
twice before the first page), and ``run_site`` starts the workers only once the web accepts
connections. The time itself is measured by ``scripts/time_first_page.sh``, not asserted here."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from identification.management.commands.run_site import wait_for_port

REPO = Path(__file__).resolve().parents[2]

WEB_IMPORTS = (
    "import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'whalesite.settings.dev'; django.setup(); "
    "import whalesite.urls, whalesite.wsgi; from django.core import checks; checks.run_checks(); "
    "from identification.management.commands import run_site; from ml.device import worker_threads; "
    "worker_threads(2); print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
)


def test_the_web_process_and_run_site_start_without_torch(tmp_path):
    env = {**os.environ, "WHALESITE_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    out = subprocess.run(
        [sys.executable, "-c", WEB_IMPORTS], capture_output=True, text=True, check=True, cwd=REPO, env=env
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]


def test_wait_for_port_returns_once_the_web_accepts_and_gives_up_when_it_exits():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert wait_for_port("127.0.0.1", port, alive, 5.0) is True
        finally:
            alive.kill()
            alive.wait()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert wait_for_port("127.0.0.1", port, dead, 5.0) is False  # the web died: no 60 s wait
