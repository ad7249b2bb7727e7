"""A bulk import of N rows through the site: its rate (rows/s) and the review page's latency for a
moderator while it runs, against the same page idle before and after it, in one run.

Synthetic flukes only (``ml.synth``; never real data). Half the rows carry a catalogue id (they join
their individual as confirmed), half do not (they are queued for the pipeline; no pipeline worker runs
here, so what is timed is the import itself). The site runs as in production on PostgreSQL + Redis:
gunicorn (``--web-workers``) and one Celery worker on the ``imports`` queue (prefork, ``-c 1``). The
sheet and ZIP are uploaded through the import page, checked, started with its button and followed
through ``progress.json``; a second thread GETs ``/review/`` (40 photos awaiting review) the whole time.

    python bench/bulk_import.py [--rows 1000] [--database-url postgres://postgres@127.0.0.1:5432/bench_bulk_import]
        [--broker redis://127.0.0.1:6379/1] [--idle-requests 60]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from upload_load import PASSWORD, REPO, Session, free_port, jpeg, multipart  # noqa: E402

sys.path.insert(0, str(REPO))


def ensure_fresh_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def synthetic_import(rows: int, folder: Path) -> tuple[bytes, bytes]:
    """(sheet CSV, ZIP) of ``rows`` synthetic fluke photos, five per individual."""
    from ml.synth import generate_dataset

    generate_dataset(str(folder), individuals=max(1, rows // 5), photos=5, seed=7, progress=False)
    labels = list(csv.reader(open(folder / "train.csv")))[1 : rows + 1]
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_STORED) as z:  # JPEGs: storing is what cameras' ZIPs do
        for image, _ in labels:
            z.write(folder / "images" / image, f"photos/{image}")
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["photo", "observed_at", "latitude", "longitude", "species", "photographer", "licence", "catalogue_id"])
    for n, (image, label) in enumerate(labels):
        cid = f"BI-{label[2:]}" if n % 2 == 0 else ""
        w.writerow([image, f"2024-07-{1 + n % 28:02d} 10:{n % 60:02d}", 65.9, -17.4, "HW", "Bench", "CC-BY", cid])
    return out.getvalue().encode(), zbuf.getvalue()


def setup_site() -> str:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.roles import ensure_role_groups, grant_role
    from identification.models import Species
    from submissions.models import Photo, Sighting

    call_command("migrate", interactive=False, verbosity=0)
    ensure_role_groups()
    email = "importer@bench.invalid"
    user = get_user_model().objects.create(username=email, email=email)
    user.set_password(PASSWORD)
    user.save()
    grant_role(user, "moderator")
    species = Species.objects.create(code="HW", common_name="Humpback whale")
    sighting = Sighting.objects.create(species=species, observed_at=timezone.now(), submitted_by=user)
    for n in range(40):  # the review queue the page lists
        photo = Photo(sighting=sighting, species=species, sha256=f"{n:064x}", status=Photo.Status.AWAITING_REVIEW)
        photo.image.save(f"queue-{n}.jpg", ContentFile(jpeg(90_000 + n, 40)), save=False)
        photo.save()
    return email


def p95(times: list[float]) -> float:
    s = sorted(times)
    return s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]


def review_times(session: Session, count: int | None = None, until=None) -> list[float]:
    out = []
    while (count is None or len(out) < count) and (until is None or not until.is_set()):
        start = time.perf_counter()
        status, _, _ = session.request("/review/")
        if status != 200:
            raise SystemExit(f"/review/ answered HTTP {status}")
        out.append(time.perf_counter() - start)
    return out


def start_services(env: dict, web_workers: int) -> tuple[list[subprocess.Popen], str]:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    web = subprocess.Popen(
        [str(bin_dir / "gunicorn"), "whalesite.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(web_workers)]
        + ["--timeout", "300", "--log-level", "warning"],
        cwd=REPO,
        env=env,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "whalesite", "worker", "-Q", "imports", "-c", "1"]
        + ["--without-gossip", "--without-mingle", "-l", "WARNING", "-n", "bench-imports@%h"],
        cwd=REPO,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if Session(base).request("/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.5)
    return [web, worker], base


def run_import(session: Session, sheet: bytes, archive: bytes) -> tuple[int, float]:
    """Upload, check and start the import through its pages; (import id, seconds the check took)."""
    import re

    session.request("/imports/")
    body, ctype = multipart({"csrfmiddlewaretoken": session.csrf()}, [])
    boundary = ctype.split("=", 1)[1]
    parts = body[: -len(f"--{boundary}--\r\n")]
    for field, name, data in (("sheet", "bench.csv", sheet), ("archive", "bench.zip", archive)):
        parts += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    parts += f"--{boundary}--\r\n".encode()
    started = time.perf_counter()
    status, headers, page = session.request("/imports/", parts, ctype)
    checked = time.perf_counter() - started
    if status != 302:
        raise SystemExit(f"the import page answered HTTP {status}: {page[:500]!r}")
    pk = int(re.search(r"/imports/(\d+)/", headers["Location"]).group(1))
    form = f"csrfmiddlewaretoken={session.csrf()}".encode()
    session.request(f"/imports/{pk}/start/", form, "application/x-www-form-urlencoded")
    return pk, checked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_bulk_import")
    ap.add_argument("--broker", default="redis://127.0.0.1:6379/1")
    ap.add_argument("--web-workers", type=int, default=2)
    ap.add_argument("--idle-requests", type=int, default=60, help="review page requests before and after")
    ap.add_argument("--var-dir", default="/tmp/whalesite-bench-import")
    args = ap.parse_args()

    ensure_fresh_database(args.database_url)
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="whalesite.settings.dev",
        DATABASE_URL=args.database_url,
        CELERY_BROKER_URL=args.broker,
        WHALESITE_VAR_DIR=args.var_dir,
        PYTHONPATH=str(REPO),
    )
    os.environ.update(env)
    import redis

    redis.Redis.from_url(args.broker).flushdb()
    email = setup_site()
    t0 = time.perf_counter()
    sheet, archive = synthetic_import(args.rows, Path(args.var_dir) / "synth")
    print(f"{args.rows} synthetic photos, ZIP {len(archive) / 1e6:.1f} MB, made in {time.perf_counter() - t0:.0f} s")

    from submissions.models import BulkImport

    procs, base = start_services(env, args.web_workers)
    try:
        importer, reviewer = Session(base), Session(base)
        importer.login(email)
        reviewer.login(email)
        idle = review_times(reviewer, args.idle_requests)
        pk, checked = run_import(importer, sheet, archive)
        done = threading.Event()
        during: list[float] = []
        sampler = threading.Thread(target=lambda: during.extend(review_times(reviewer, until=done)))
        sampler.start()
        while BulkImport.objects.get(pk=pk).status != BulkImport.Status.DONE:
            importer.request(f"/imports/{pk}/progress.json")  # the progress page polls as a browser would
            time.sleep(2)
        done.set()
        sampler.join()
        idle += review_times(reviewer, args.idle_requests)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        redis.Redis.from_url(args.broker).flushdb()  # the pipeline messages no worker here reads

    bulk = BulkImport.objects.get(pk=pk)
    seconds = (bulk.finished_at - bulk.started_at).total_seconds()
    imported = bulk.rows.filter(status="imported").count()
    print(f"checked {args.rows} rows (upload + validation) in {checked:.1f} s")
    print(f"imported {imported} of {args.rows} rows in {seconds:.1f} s: {imported / seconds:.1f} rows/s")
    print(
        f"review page idle: p50 {statistics.median(idle) * 1000:.0f} ms, p95 {p95(idle) * 1000:.0f} ms "
        f"({len(idle)} requests); during the import: p50 {statistics.median(during) * 1000:.0f} ms, "
        f"p95 {p95(during) * 1000:.0f} ms ({len(during)} requests); p95 ratio {p95(during) / p95(idle):.2f}x"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
