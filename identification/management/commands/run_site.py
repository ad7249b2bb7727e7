"""``manage.py run_site``: the whole site on one machine for a first run.

Migrates, starts the web server, and once it accepts connections the two Celery workers
(pipeline+default, and training, one run at a time) and, when there is no active model, the demo's
seeding and training in the background. Ctrl-C stops all of them. Production runs these as
separate services (docker/).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from identification.models import ModelVersion
from whalesite.celery import DEFAULT_QUEUE, IMPORT_QUEUE, PIPELINE_QUEUE, TRAINING_QUEUE, ensure_broker_folders

WEB_START_WAIT_S = 60.0


def wait_for_port(host: str, port: int, proc: subprocess.Popen, timeout_s: float) -> bool:
    """True once ``host:port`` accepts a connection; False when ``proc`` exits or ``timeout_s`` passes
    (the caller goes on either way: this only orders the start-up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.2)
    return False


class Command(BaseCommand):
    help = "Run the web server and the Celery workers together (first run / development)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-seed", action="store_true", help="Do not seed the demo catalogue")
        parser.add_argument("--gunicorn", action="store_true", help="Serve with gunicorn instead of runserver")

    def web_command(self, host, port, gunicorn, env) -> list[str]:
        if gunicorn:
            env.setdefault("DJANGO_SETTINGS_MODULE", "whalesite.settings.dev")
            return [sys.executable, "-m", "gunicorn", "whalesite.wsgi", "-b", f"{host}:{port}", "--workers", "2"]
        return [sys.executable, "manage.py", "runserver", f"{host}:{port}", "--noreload"]

    def start_workers(self, env) -> list[subprocess.Popen]:
        """The pipeline worker (it also runs beat: housekeeping such as re-queuing stuck photos) and the
        training worker, one run at a time."""
        celery = [sys.executable, "-m", "celery", "-A", "whalesite", "worker", "--loglevel=INFO"]
        beat = ["-B", "-s", str(Path(settings.VAR_DIR) / "celerybeat-schedule")]
        pipeline = ["-Q", f"{PIPELINE_QUEUE},{DEFAULT_QUEUE},{IMPORT_QUEUE}", "-c", "1", "-n", "pipeline@%h"]
        return [
            subprocess.Popen(celery + pipeline + beat, env=env),
            subprocess.Popen(celery + ["-Q", TRAINING_QUEUE, "-c", "1", "-n", "training@%h"], env=env),
        ]

    def handle(self, *args, host, port, no_seed, gunicorn, **options):
        call_command("migrate", interactive=False, verbosity=0)
        ensure_broker_folders()
        seed = not no_seed and not ModelVersion.objects.active().exists()

        env = {**os.environ}
        if not settings.ML_TORCH_THREADS:
            # both workers share this machine's cores: half each, or a retrain beside the pipeline
            # makes their torch threads spin-wait for each other (identification.ops.threads)
            from ml.device import worker_threads  # torch-free

            env["ML_TORCH_THREADS"] = str(worker_threads(2))
        procs: list[subprocess.Popen] = []

        def stop(signum, frame):  # `kill`, systemd, docker stop: stop the children too, not just this process
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            procs.append(subprocess.Popen(self.web_command(host, port, gunicorn, env), env=env))
            # the web first, alone: the workers import torch, and starting all three at once on a small
            # machine kept the first page waiting for them (issue 12, item 11)
            wait_for_port(host, port, procs[0], WEB_START_WAIT_S)
            self.stdout.write(self.style.SUCCESS(f"whalesite is running at http://{host}:{port}/  (Ctrl-C stops it)"))
            procs += self.start_workers(env)
            if seed:  # the first page answers at once and shows the setup's progress
                self.stdout.write(
                    "No active model yet: seeding the demo catalogue and training a small model "
                    "in the background (the home page shows its progress)..."
                )
                procs.append(subprocess.Popen([sys.executable, "manage.py", "seed_demo"], env=env))
            while all(p.poll() is None for p in procs if p.args[-1] != "seed_demo"):
                signal.sigtimedwait([signal.SIGCHLD], 1.0) if hasattr(signal, "sigtimedwait") else time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            stop_all(procs)


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
