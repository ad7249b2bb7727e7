"""N concurrent uploads through the real form against gunicorn on loopback: saved, lost, p50, p95, and the
peak memory (VmHWM) of each gunicorn worker.

Starts gunicorn (``--workers`` processes) on a free 127.0.0.1 port with the settings of this shell
(default: dev settings, SQLite and the filesystem transport in a scratch WHALESITE_VAR_DIR), creates a
watcher and a species, then sends ``--n`` sightings of ``--files`` synthetic photos each from
``--concurrency`` threads, each one a separate signed-in session (GET the form for the CSRF token, POST
multipart). An upload is *saved* when it is answered with the redirect to "my sightings" and its photos
are in the database; anything else is *lost*. No worker is needed: photos stay UPLOADED.

    python bench/upload_load.py [--n 60] [--concurrency 12] [--files 3] [--file-kb 300] [--workers 3]

``--files 20 --file-kb 25000 --n 1`` is the maximal upload of issue 13 (now refused with 413 above
MAX_REQUEST_BYTES, before the body is read).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import io
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-load-password-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jpeg(seed: int, kb: int) -> bytes:
    """A photo of about ``kb`` kilobytes (noise, so JPEG cannot shrink it), different for every seed."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    side = max(64, int((kb * 1024 / 1.2) ** 0.5))
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def multipart(fields: dict, files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for filename, data in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="{filename}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Session:
    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect())

    def csrf(self) -> str:
        return next((c.value for c in self.jar if c.name == "csrftoken"), "")

    def request(self, path: str, data: bytes | None = None, content_type: str = ""):
        req = urllib.request.Request(self.base + path, data=data)
        if data is not None:
            req.add_header("Content-Type", content_type)
            req.add_header("X-CSRFToken", self.csrf())
            req.add_header("Referer", self.base + path)
        try:
            with self.opener.open(req, timeout=300) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def login(self, email: str) -> None:
        self.request("/accounts/login/")
        body = urllib.parse.urlencode(
            {"login": email, "password": PASSWORD, "csrfmiddlewaretoken": self.csrf()}
        ).encode()
        status, _, _ = self.request("/accounts/login/", body, "application/x-www-form-urlencoded")
        if status != 302:
            raise SystemExit(f"login failed for {email}: HTTP {status}")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def peak_rss_mb(master_pid: int) -> dict[int, float]:
    """VmHWM (peak resident set) of each child of the gunicorn master, in MB."""
    out = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if re.search(rf"^PPid:\s+{master_pid}$", text, re.M):
            hwm = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
            if hwm:
                out[int(status.parent.name)] = int(hwm.group(1)) / 1024
    return out


def setup_site(users: int) -> tuple[list[str], int]:
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.roles import ensure_role_groups, grant_role
    from identification.models import Species
    from whalesite.celery import ensure_broker_folders

    call_command("migrate", interactive=False, verbosity=0)
    ensure_broker_folders()
    ensure_role_groups()
    from django.contrib.auth import get_user_model

    User = get_user_model()
    emails = []
    for n in range(users):
        email = f"load-{n}@bench.invalid"
        user, _ = User.objects.get_or_create(username=email, defaults={"email": email})
        user.set_password(PASSWORD)
        user.save()
        grant_role(user, "watcher")
        emails.append(email)
    species, _ = Species.objects.get_or_create(code="HW", defaults={"common_name": "Humpback whale"})
    return emails, species.pk


def start_gunicorn(workers: int) -> tuple[subprocess.Popen, str]:
    """gunicorn on a free loopback port, once /healthz answers."""
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("gunicorn")), "whalesite.wsgi", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", str(workers), "--timeout", "300", "--log-level", "warning"]
    gunicorn = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2)
            break
        except OSError:  # not listening yet
            time.sleep(0.5)
    return gunicorn, base


def upload_one(session, species_id: int, n: int, files: list[bytes]) -> tuple[int, str, float]:
    """One sighting through the real form: (n, "saved" or why not, seconds)."""
    session.request("/submit/")
    fields = {
        "species": species_id,
        "observed_date": "2024-07-01",
        "observed_time": "14:30",
        "csrfmiddlewaretoken": session.csrf(),
    }
    body, ctype = multipart(fields, [(f"load-{n}-{f}.jpg", d) for f, d in enumerate(files)])
    start = time.perf_counter()
    try:
        status, headers, _ = session.request("/submit/", body, ctype)
    except OSError as exc:
        return n, f"error {type(exc).__name__}", time.perf_counter() - start
    saved = status == 302 and "/me/sightings/" in (headers.get("Location") or "")
    return n, "saved" if saved else f"HTTP {status}", time.perf_counter() - start


def report(args, results, wall: float, stored: int, peaks: dict) -> None:
    saved = [r for r in results if r[1] == "saved"]
    lost = [r for r in results if r[1] != "saved"]
    times = sorted(r[2] for r in results)
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(
        f"{args.n} uploads of {args.files} x ~{args.file_kb} kB, {args.concurrency} concurrent, "
        f"{args.workers} gunicorn workers, {wall:.1f} s"
    )
    print(f"saved {len(saved)}, lost {len(lost)}; photos stored {stored} of {len(saved) * args.files} expected")
    print(f"p50 {statistics.median(times):.2f} s, p95 {p95:.2f} s")
    if lost:
        print("lost:", ", ".join(f"#{n} {why}" for n, why, _ in lost[:10]))
    print("peak RSS per gunicorn worker (MB):", ", ".join(f"{mb:.0f}" for mb in sorted(peaks.values())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="sightings to upload")
    ap.add_argument("--concurrency", type=int, default=12)
    ap.add_argument("--files", type=int, default=3, help="photos per sighting")
    ap.add_argument("--file-kb", type=int, default=300)
    ap.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    ap.add_argument("--var-dir", default="/tmp/whalesite-load")
    args = ap.parse_args()

    os.environ.setdefault("WHALESITE_VAR_DIR", args.var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whalesite.settings.dev")
    os.environ.setdefault("UPLOADS_PER_HOUR", str(args.n + 10))  # the per-user upload limit is not what is measured
    sys.path.insert(0, str(REPO))
    emails, species_id = setup_site(args.concurrency)

    from submissions.models import Photo

    gunicorn, base = start_gunicorn(args.workers)
    try:
        sessions = []
        for email in emails:
            session = Session(base)
            session.login(email)
            sessions.append(session)
        photos = [[jpeg(n * 1000 + f, args.file_kb) for f in range(args.files)] for n in range(args.n)]
        before = Photo.objects.count()
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(
                pool.map(lambda n: upload_one(sessions[n % len(sessions)], species_id, n, photos[n]), range(args.n))
            )
        wall = time.perf_counter() - started
        peaks = peak_rss_mb(gunicorn.pid)
    finally:
        gunicorn.terminate()
        gunicorn.wait(30)
    report(args, results, wall, Photo.objects.count() - before, peaks)


if __name__ == "__main__":
    main()
