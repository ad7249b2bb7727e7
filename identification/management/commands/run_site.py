"""``manage.py run_site``: the whole site on one machine for a first run.

Migrates, seeds the demo catalogue (and trains its small model) when there is no active model,
then runs two Celery workers (pipeline+default, and training, one run at a time) beside the
web server. Ctrl-C stops all of them. Production runs these as separate services (docker/).
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from identification.models import ModelVersion
from whalesite.celery import DEFAULT_QUEUE, IMPORT_QUEUE, PIPELINE_QUEUE, TRAINING_QUEUE, ensure_broker_folders


class Command(BaseCommand):
    help = "Run the web server and the Celery workers together (first run / development)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-seed", action="store_true", help="Do not seed the demo catalogue")
        parser.add_argument("--gunicorn", action="store_true", help="Serve with gunicorn instead of runserver")

    def handle(self, *args, host, port, no_seed, gunicorn, **options):
        call_command("migrate", interactive=False, verbosity=0)
        ensure_broker_folders()
        seed = not no_seed and not ModelVersion.objects.active().exists()

        env = {**os.environ}
        if not settings.ML_TORCH_THREADS:
            # both workers share this machine's cores: half each, or a retrain beside the pipeline
            # makes their torch threads spin-wait for each other (identification.ops.threads)
            from ml.device import worker_threads

            env["ML_TORCH_THREADS"] = str(worker_threads(2))
        celery = [sys.executable, "-m", "celery", "-A", "whalesite", "worker", "--loglevel=INFO"]
        procs = [
            # the pipeline worker also runs beat (housekeeping such as re-queuing stuck photos)
            subprocess.Popen(
                celery
                + [
                    "-Q",
                    f"{PIPELINE_QUEUE},{DEFAULT_QUEUE},{IMPORT_QUEUE}",
                    "-c",
                    "1",
                    "-n",
                    "pipeline@%h",
                    "-B",
                    "-s",
                    str(Path(settings.VAR_DIR) / "celerybeat-schedule"),
                ],
                env=env,
            ),
            subprocess.Popen(celery + ["-Q", TRAINING_QUEUE, "-c", "1", "-n", "training@%h"], env=env),
        ]
        if gunicorn:
            web = [sys.executable, "-m", "gunicorn", "whalesite.wsgi", "-b", f"{host}:{port}", "--workers", "2"]
            env.setdefault("DJANGO_SETTINGS_MODULE", "whalesite.settings.dev")
        else:
            web = [sys.executable, "manage.py", "runserver", f"{host}:{port}", "--noreload"]
        procs.append(subprocess.Popen(web, env=env))
        self.stdout.write(self.style.SUCCESS(f"whalesite is running at http://{host}:{port}/  (Ctrl-C stops it)"))
        background = []
        if seed:  # after the web is up: the first page answers at once and shows the setup's progress
            self.stdout.write(
                "No active model yet: seeding the demo catalogue and training a small model "
                "in the background (the home page shows its progress)..."
            )
            background.append(subprocess.Popen([sys.executable, "manage.py", "seed_demo"], env=env))

        def stop(signum, frame):  # `kill`, systemd, docker stop: stop the children too, not just this process
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            while all(p.poll() is None for p in procs):
                signal.sigtimedwait([signal.SIGCHLD], 1.0) if hasattr(signal, "sigtimedwait") else None
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs + background:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs + background:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
