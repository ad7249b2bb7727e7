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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--var-dir", default="/tmp/whalesite-bench")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one photo")
    args = ap.parse_args()

    os.environ.setdefault("WHALESITE_VAR_DIR", args.var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whalesite.settings.dev")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.utils import timezone
    from PIL import Image
    from tqdm import tqdm

    from identification.models import ModelVersion, Species, Suggestion
    from submissions.models import Photo
    from submissions.services import submit_sighting
    from whalesite.celery import DEFAULT_QUEUE, PIPELINE_QUEUE, ensure_broker_folders

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
    version = ModelVersion.objects.active().get()
    uploads = sorted((Path(settings.VAR_DIR) / "demo" / "uploads").glob("demo-*"))
    if not uploads:
        raise SystemExit(f"no demo photos in {Path(settings.VAR_DIR) / 'demo' / 'uploads'}")
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(email="watcher@example.org")
    species = Species.objects.get(code="HW")

    log_path = Path(settings.VAR_DIR) / "bench-worker.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "whalesite",
            "worker",
            "-Q",
            f"{PIPELINE_QUEUE},{DEFAULT_QUEUE}",
            "-c",
            "1",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
            "-n",
            "bench@%h",
        ],
        cwd=REPO,
        env=dict(os.environ),
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        # warm-up: the first task loads torch, the model and the gallery (reported separately)
        stamp = time.strftime("%H%M%S")
        times, cold = [], None
        for i in tqdm(range(args.n + 1), desc="upload -> suggestions", unit="photo"):
            src = uploads[i % len(uploads)]
            buf = io.BytesIO()  # distinct bytes every time, so no upload is an exact duplicate
            Image.open(src).convert("RGB").save(
                buf, "JPEG", quality=70 + (i * 7 + int(stamp)) % 28, comment=f"bench {stamp} {i}".encode()
            )
            t0 = time.perf_counter()
            out = submit_sighting(
                user=user,
                species=species,
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
                if time.perf_counter() - t0 > args.timeout:
                    raise SystemExit(f"photo {photo.pk} not processed in {args.timeout:.0f}s; see {log_path}")
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
            if status != Photo.Status.AWAITING_REVIEW or not Suggestion.objects.filter(photo=photo).exists():
                raise SystemExit(f"photo {photo.pk} ended {status} without suggestions")
            if i == 0:
                cold = elapsed
            else:
                times.append(elapsed)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
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
