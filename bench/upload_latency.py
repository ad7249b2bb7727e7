"""Upload-to-suggestions latency through a real Celery worker process.

Times ``submissions.services.submit_sighting`` (one photo per sighting) until the worker has written
the photo's suggestions, over N photos, one at a time, and prints the median and p90.

Default: the embedded first-run setup (dev settings, SQLite, kombu filesystem transport) in a
scratch WHALESITE_VAR_DIR, seeded with ``seed_demo --fast`` when it has no active model. Set
DATABASE_URL / CELERY_BROKER_URL (and DJANGO_SETTINGS_MODULE) to measure PostgreSQL + Redis instead.

    python bench/upload_latency.py [--n 20] [--var-dir /tmp/whalesite-bench]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _setup(args):
    """Django on the bench's own var dir, migrated, with the demo model and its photos."""
    os.environ.setdefault("WHALESITE_VAR_DIR", args.var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whalesite.settings.dev")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from identification.models import ModelVersion
    from whalesite.celery import ensure_broker_folders

    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = str(settings.CELERY_BROKER_URL).split("://", 1)[0]
    print(
        f"settings {os.environ['DJANGO_SETTINGS_MODULE']}: database {db}, broker {broker}, "
        f"var {settings.VAR_DIR}, {os.cpu_count()} CPU(s)"
    )
    call_command("migrate", interactive=False, verbosity=0)
    ensure_broker_folders()
    if not ModelVersion.objects.active().exists():
        print("no active model: seed_demo --fast ...")
        call_command("seed_demo", "--fast", stdout=io.StringIO())
    uploads = sorted((Path(settings.VAR_DIR) / "demo" / "uploads").glob("demo-*"))
    if not uploads:
        raise SystemExit(f"no demo photos in {Path(settings.VAR_DIR) / 'demo' / 'uploads'}")
    return ModelVersion.objects.active().get(), uploads


def _start_worker(log_path: Path) -> subprocess.Popen:
    from whalesite.celery import DEFAULT_QUEUE, PIPELINE_QUEUE

    queues = f"{PIPELINE_QUEUE},{DEFAULT_QUEUE}"
    cmd = [sys.executable, "-m", "celery", "-A", "whalesite", "worker", "-Q", queues, "-c", "1", "--pool=solo"]
    cmd += ["--without-gossip", "--without-mingle", "-l", "WARNING", "-n", "bench@%h"]
    return subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ), stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


def _upload_and_wait(src: Path, i: int, stamp: str, worker, log_path: Path, timeout: float) -> float:
    """Seconds from one upload (distinct bytes, so never an exact duplicate) to its suggestions."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone
    from PIL import Image

    from identification.models import Species, Suggestion
    from submissions.models import Photo
    from submissions.services import submit_sighting

    buf = io.BytesIO()
    Image.open(src).convert("RGB").save(
        buf, "JPEG", quality=70 + (i * 7 + int(stamp)) % 28, comment=f"bench {stamp} {i}".encode()
    )
    t0 = time.perf_counter()
    out = submit_sighting(
        user=get_user_model().objects.get(email="watcher@example.org"),
        species=Species.objects.get(code="HW"),
        observed_at=timezone.now(),
        files=[SimpleUploadedFile(f"bench-{stamp}-{i}.jpg", buf.getvalue(), "image/jpeg")],
    )
    photo = out.accepted[0]
    while True:
        status = Photo.objects.filter(pk=photo.pk).values_list("status", flat=True).get()
        if status in (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED):
            break
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited ({worker.returncode}); see {log_path}")
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"photo {photo.pk} not processed in {timeout:.0f}s; see {log_path}")
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    if status != Photo.Status.AWAITING_REVIEW or not Suggestion.objects.filter(photo=photo).exists():
        raise SystemExit(f"photo {photo.pk} ended {status} without suggestions")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--var-dir", default="/tmp/whalesite-bench")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one photo")
    args = ap.parse_args()
    version, uploads = _setup(args)
    from django.conf import settings
    from tqdm import tqdm

    from submissions.models import Photo

    log_path = Path(settings.VAR_DIR) / "bench-worker.log"
    worker = _start_worker(log_path)
    try:
        # warm-up: the first task loads torch, the model and the gallery (reported separately)
        stamp = time.strftime("%H%M%S")
        times = [
            _upload_and_wait(uploads[i % len(uploads)], i, stamp, worker, log_path, args.timeout)
            for i in tqdm(range(args.n + 1), desc="upload -> suggestions", unit="photo")
        ]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
    cold, times = times[0], times[1:]
    q = statistics.quantiles(times, n=10)
    print(
        f"model {version.name} ({version.metrics.get('arch')} {version.metrics.get('image_size')} px), "
        f"gallery {Photo.objects.in_gallery().count()} photos"
    )
    print(f"first photo (worker cold: torch, model, gallery): {cold:.2f} s")
    print(
        f"upload -> suggestions over {len(times)} photos: median {statistics.median(times):.3f} s, "
        f"p90 {q[8]:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s (poll interval 0.02 s)"
    )


if __name__ == "__main__":
    main()
