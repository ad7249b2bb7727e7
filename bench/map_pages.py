"""p50 / p95 time of the public map pages at 100k sightings on PostgreSQL (issue 14).

Fills a database of its own (created when missing; ``test_h7_bench`` by default) with N sightings by
``bulk_create``: one photo each, 90 % confirmed as one of N/50 whales in four feeding grounds, 10 % still awaiting
review, plus one busy whale seen 500 times. Then times, through Django's test client (the whole view, template
and JSON encoding, no network), the sightings page, its GeoJSON (every sighting, and narrowed to one month and
to one whale), a typical whale's page and track, and the busy whale's. Prints each URL's p50 / p95 over
``--repeat`` requests and each time as a ratio of the sightings page's p95.

    python bench/map_pages.py [--n 100000] [--repeat 20] [--database test_h7_bench]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GROUNDS = [(64.5, -22.0), (66.0, -17.0), (18.5, -66.0), (-33.9, 151.3)]  # Iceland x2, Puerto Rico, Sydney


def ensure_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def fill(n: int) -> None:
    """N sightings with one photo each (skipped when the database already holds them)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from identification.models import Individual, Species
    from submissions.models import Photo, Sighting

    if Sighting.objects.count() >= n:
        return
    rng = random.Random(14)
    species, _ = Species.objects.get_or_create(
        code="HW", defaults={"common_name": "Humpback whale", "scientific_name": "Megaptera novaeangliae"}
    )
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"bench{i}@example.org", email=f"bench{i}@example.org") for i in range(200)]
    )
    whales = Individual.objects.bulk_create(
        [Individual(catalogue_id=f"HW-{i + 1:05d}", species=species) for i in range(n // 50 + 1)]
    )
    now = timezone.now()
    t0 = time.perf_counter()
    for start in range(0, n, 10_000):
        count = min(10_000, n - start)
        sightings = []
        for _ in range(count):
            lat, lon = rng.choice(GROUNDS)
            sightings.append(
                Sighting(
                    species=species,
                    observed_at=now - timedelta(days=rng.uniform(0, 3650)),
                    latitude=lat + rng.gauss(0, 0.8),
                    longitude=lon + rng.gauss(0, 0.8),
                    place_name="Feeding ground",
                    submitted_by=rng.choice(users),
                )
            )
        Sighting.objects.bulk_create(sightings, batch_size=5000)
        photos = []
        for i, s in enumerate(sightings):
            k = start + i
            confirmed = rng.random() < 0.9
            whale = whales[0] if k % 200 == 0 else rng.choice(whales[1:])  # whales[0]: the busy one, 500 times
            photos.append(
                Photo(
                    sighting=s,
                    image=f"photos/bench/{k}.jpg",
                    sha256=f"{k:064x}",
                    width=1600,
                    height=1000,
                    status=Photo.Status.CONFIRMED if confirmed or k % 200 == 0 else Photo.Status.AWAITING_REVIEW,
                    individual=whale if confirmed or k % 200 == 0 else None,
                    box_confidence=rng.random(),
                )
            )
        Photo.objects.bulk_create(photos, batch_size=5000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would soon: planner statistics for the new rows
    print(f"filled {n} sightings in {time.perf_counter() - t0:.1f} s")


def time_url(client, url: str, repeat: int) -> tuple[float, float, int]:
    client.get(url)  # warm: templates compiled, connection open
    times, size = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - t)
        assert response.status_code == 200, (url, response.status_code)
        size = len(response.content)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--database", default="test_h7_bench")
    ap.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    args = ap.parse_args()

    url = f"{args.server}/{args.database}"
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whalesite.settings.test")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db.models import Count
    from django.test import Client
    from django.utils import timezone

    from identification.models import Individual
    from submissions.models import Sighting

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", interactive=False, verbosity=0)
    fill(args.n)
    busy = Individual.objects.annotate(n=Count("photos")).order_by("-n").first()
    typical = Individual.objects.annotate(n=Count("photos")).filter(n__gte=40, n__lte=60).first()
    month = (timezone.now() - timedelta(days=400)).date()
    narrowed = f"observed_after={month.isoformat()}&observed_before={(month + timedelta(days=30)).isoformat()}"
    urls = [
        ("sightings page", "/sightings/"),
        ("sightings GeoJSON, all", "/sightings/map.geojson"),
        ("sightings GeoJSON, one month", f"/sightings/map.geojson?{narrowed}"),
        ("sightings GeoJSON, one whale", f"/sightings/map.geojson?individual={typical.catalogue_id}"),
        (f"whale page ({typical.n} sightings)", f"/individuals/{typical.catalogue_id}/"),
        (f"whale track ({typical.n} sightings)", f"/individuals/{typical.catalogue_id}/track.geojson"),
        (f"whale page ({busy.n} sightings)", f"/individuals/{busy.catalogue_id}/"),
        (f"whale track ({busy.n} sightings)", f"/individuals/{busy.catalogue_id}/track.geojson"),
    ]
    print(
        f"PostgreSQL {args.database}: {Sighting.objects.count()} sightings, {os.cpu_count()} CPU(s), "
        f"{args.repeat} requests per URL"
    )
    client = Client()
    print(f"{'url':38} {'p50 s':>8} {'p95 s':>8} {'KiB':>8} {'p95 / page':>10}", flush=True)
    base = None
    for label, u in urls:
        p50, p95, size = time_url(client, u, args.repeat)
        base = base or p95  # the sightings page, measured first
        print(f"{label:38} {p50:8.3f} {p95:8.3f} {size / 1024:8.0f} {p95 / base:10.2f}", flush=True)


if __name__ == "__main__":
    main()
