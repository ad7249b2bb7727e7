"""The time until a killed pipeline worker's photo is processed again (issue 13, item 3), against the time the
same photo takes when nothing goes wrong, measured in one run.

Runs the production layout of docker/compose.yml on this machine with the settings of this shell (default:
dev settings, SQLite and the filesystem transport in a scratch WHALESITE_VAR_DIR; set DATABASE_URL and
CELERY_BROKER_URL for PostgreSQL and Redis): a pipeline worker (``-Q pipeline,default -c 2``) and a separate
``celery beat``, with the site's own lease and beat settings (``PHOTO_LEASE_S``, ``requeue_stuck_photos``
every minute). Seeds the small demo model (``seed_demo --fast``) when none is active. Then:

1. *normal*: a camera-sized photo is uploaded and timed until it awaits review;
2. *killed*: another one is uploaded; while it is PROCESSING the whole worker (master and pool) gets SIGKILL,
   as an OOM kill or a lost node does, and is started again at once (a supervisor's restart). Timed from the
   kill until the photo awaits review. The broker does not give the message back (filesystem transport: it
   was taken; Redis: only after its one-hour visibility timeout), so the lease and beat must find it.

    python bench/worker_recovery.py [--lease-s 90] [--size 4000x2500]

Before issue 13 the same photo waited about 30 minutes (Redis's visibility timeout, then beat's 30-minute
stuck rule); the bound now is PHOTO_LEASE_S + the beat interval (60 s) + one processing.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def photo_bytes(seed: int, size: tuple[int, int]) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize(size, Image.Resampling.BILINEAR).save(out, "JPEG", quality=92)
    return out.getvalue()


class Celery:
    """A celery process in its own session, so that SIGKILL reaches the master and its pool together."""

    def __init__(self, args: list[str], log: Path):
        self.args, self.log = args, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "whalesite", *self.args],
                cwd=REPO,
                env=dict(os.environ),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def setup() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from identification.models import ModelVersion
    from whalesite.celery import ensure_broker_folders

    call_command("migrate", interactive=False, verbosity=0)
    ensure_broker_folders()
    if not ModelVersion.objects.active().exists():
        started = time.monotonic()
        call_command("seed_demo", fast=True, verbosity=0)
        print(f"seeded the demo model in {time.monotonic() - started:.0f} s")


def upload(seed: int, size: tuple[int, int]):
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import transaction
    from django.utils import timezone

    from identification.models import Species
    from submissions.services import submit_sighting

    user = get_user_model().objects.filter(is_superuser=False).order_by("pk").first()
    with transaction.atomic():  # queued on commit, as from the form
        out = submit_sighting(
            user=user,
            species=Species.objects.get(code="HW"),
            observed_at=timezone.now(),
            files=[SimpleUploadedFile(f"bench-{seed}.jpg", photo_bytes(seed, size), content_type="image/jpeg")],
        )
    return out.accepted[0]


def wait(photo, statuses, timeout: float, interval: float = 0.05, busy=None) -> float:
    """Seconds until ``photo`` is in one of ``statuses``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        photo.refresh_from_db()
        if photo.status in statuses:
            return time.monotonic() - started
        if busy is not None:
            busy(photo)
        time.sleep(interval)
    raise SystemExit(f"photo {photo.pk} still {photo.status} after {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lease-s", type=float, default=None, help="PHOTO_LEASE_S (default: the site's setting, 90)")
    ap.add_argument("--size", default="4000x2500", help="the photo's pixels, WxH")
    ap.add_argument("--var-dir", default="/tmp/whalesite-recovery")
    args = ap.parse_args()
    size = tuple(int(n) for n in args.size.split("x"))

    os.environ.setdefault("WHALESITE_VAR_DIR", args.var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whalesite.settings.dev")
    if args.lease_s is not None:
        os.environ["PHOTO_LEASE_S"] = str(args.lease_s)
    sys.path.insert(0, str(REPO))
    setup()
    from django.conf import settings

    from submissions.models import Photo
    from whalesite.celery import app

    done = (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED)
    logs = Path(settings.VAR_DIR)
    worker = Celery(["worker", "-Q", "pipeline,default", "-c", "2", "-n", "pipeline@%h", "-l", "INFO"], logs / "w.log")
    beat = Celery(["beat", "-l", "INFO", "--schedule", str(logs / "bench-beat-schedule")], logs / "beat.log")
    beat_s = app.conf.beat_schedule["requeue-stuck-photos"]["schedule"]
    print(f"PHOTO_LEASE_S {settings.PHOTO_LEASE_S:.0f} s, requeue_stuck_photos every {beat_s:.0f} s, photo {args.size}")
    worker.start()
    beat.start()
    try:
        warm = upload(1, size)  # the first photo also loads the model into the worker: not timed
        wait(warm, done, 600)
        normal_photo = upload(2, size)
        normal = wait(normal_photo, done, 600)

        killed_photo = upload(3, size)
        wait(killed_photo, (Photo.Status.PROCESSING, *done), 600, interval=0.005)
        if killed_photo.status != Photo.Status.PROCESSING:
            raise SystemExit("the photo was done before the worker could be killed: use a larger --size")
        worker.kill()
        killed_at = time.monotonic()
        worker.start()
        wait(killed_photo, done, 1800, interval=0.5)
        recovered = time.monotonic() - killed_at
    finally:
        worker.stop()
        beat.stop()
    killed_photo.refresh_from_db()
    print(f"normal: uploaded to {normal_photo.status} in {normal:.1f} s (attempts {normal_photo.attempts})")
    print(
        f"killed: processed again {recovered:.1f} s after the whole worker was killed "
        f"({killed_photo.status}, attempts {killed_photo.attempts}); "
        f"bound {settings.PHOTO_LEASE_S + beat_s:.0f} s + one processing"
    )
    print(f"ratio killed / normal: {recovered / normal:.1f}x")


if __name__ == "__main__":
    main()
