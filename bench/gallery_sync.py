"""What each pipeline task pays to bring its worker's gallery index up to date, by gallery size.

Every ``process_photo`` / ``rerank_photo`` calls ``identification.pipeline.gallery_sync.gallery(version)`` before
it ranks. This bench fills a PostgreSQL database with N gallery photos (one 512-d embedding each,
about 4 photos per whale), then times in one run:

* the first sync of a fresh worker process (reads every vector and builds the index, then saves a
  snapshot of it when the gallery has at least ``gallery_sync.GALLERY_SNAPSHOT_MIN`` photos);
* the first sync of the next fresh worker process, which starts from that snapshot;
* the sync a task pays when nothing changed since the last one (the usual case);
* the sync after a moderator confirmed one more photo (one new member);
* the sync after a merge moved 20 photos to another whale;
* a ResNet50 forward at 224 px (what the task spends on the photo itself), for scale.

It needs a PostgreSQL server; the database (default ``whalesite_bench_sync``) is created when missing
and filled once per size (kept for the next run; ``--fresh`` refills it).

    python bench/gallery_sync.py [--sizes 10000 100000] [--burst 100000] [--database-url postgres://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def fill(n: int, dim: int, fresh: bool):
    """The active version and N gallery photos with embeddings (created once per size)."""
    import numpy as np
    from django.utils import timezone

    from identification.models import Embedding, Individual, ModelVersion, Species
    from submissions.models import Photo, Sighting

    name = f"bench-sync-{n}"
    version = ModelVersion.objects.filter(name=name).first()
    if version is not None and not fresh and Embedding.objects.filter(model_version=version).count() == n:
        return version
    if version is not None:
        Photo.objects.filter(sighting__place_name=name).delete()
        Individual.objects.filter(catalogue_id__startswith=f"S{n}-").delete()
        version.delete()
    ModelVersion.objects.filter(is_active=True).update(is_active=False)
    version = ModelVersion.objects.create(name=name, artifact_dir=name, is_active=True, gallery_ready=True)
    species, _ = Species.objects.get_or_create(code="BENCH", defaults={"common_name": "Bench whale"})
    whales = Individual.objects.bulk_create(
        [Individual(catalogue_id=f"S{n}-{i}", species=species) for i in range(max(1, n // 4))], batch_size=5000
    )
    rng = np.random.default_rng(0)
    from tqdm import tqdm

    for start in tqdm(range(0, n, 5000), desc=f"filling {n:,} gallery photos"):
        count = min(5000, n - start)
        sighting = Sighting.objects.create(species=species, observed_at=timezone.now(), place_name=name)
        photos = Photo.objects.bulk_create(
            [
                Photo(
                    sighting=sighting,
                    image=f"bench/{start + i}.jpg",
                    sha256=f"{start + i:064d}",
                    status=Photo.Status.CONFIRMED,
                    individual=whales[(start + i) % len(whales)],
                    width=1050,
                    height=700,
                )
                for i in range(count)
            ]
        )
        vectors = rng.standard_normal((count, dim)).astype(np.float32)
        Embedding.objects.bulk_create(
            [Embedding(photo=p, model_version=version, vector=v.tobytes()) for p, v in zip(photos, vectors)]
        )
    return version


def timed(fn, repeats=1):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/whalesite_bench_sync")
    ap.add_argument("--fresh", action="store_true", help="refill the database")
    ap.add_argument(
        "--burst",
        type=int,
        default=0,
        help="also time a task while this many log rows of the version lie in the sync window, as "
        "right after a gallery re-embedding (inserted, timed, deleted again)",
    )
    return ap


def time_one_size(n: int, args) -> tuple:
    """Sync times for a gallery of ``n`` photos: first, from a snapshot, unchanged, +1 photo, a merge."""
    import shutil

    from identification import pipeline
    from identification.models import Embedding, Individual
    from identification.pipeline import gallery_sync
    from submissions.models import Photo

    version = fill(n, args.dim, args.fresh)
    shutil.rmtree(gallery_sync.snapshot_dir(version), ignore_errors=True)
    pipeline.reset()
    first = timed(lambda: gallery_sync.gallery(version))
    pipeline.reset()  # the next worker process
    from_snapshot = timed(lambda: gallery_sync.gallery(version))
    unchanged = timed(lambda: gallery_sync.gallery(version), args.repeats)
    # one more confirmed photo: a gallery photo gets a second embedding row's worth of change
    photo = Photo.objects.filter(embeddings__model_version=version).order_by("-pk").first()
    whales = list(Individual.objects.filter(catalogue_id__startswith=f"S{n}-").order_by("pk")[:2])

    def one_more():
        Photo.objects.filter(pk=photo.pk).update(
            individual=whales[0] if photo.individual_id != whales[0].pk else whales[1]
        )
        gallery_sync.gallery(version)

    confirmed = timed(one_more, 5)
    moved = list(Photo.objects.filter(individual=whales[1]).values_list("pk", flat=True)[:20])

    def merge():
        Photo.objects.filter(pk__in=moved).update(individual=whales[0])
        gallery_sync.gallery(version)
        Photo.objects.filter(pk__in=moved).update(individual=whales[1])
        gallery_sync.gallery(version)

    merged = timed(merge, 3) / 2
    index = gallery_sync.gallery(version)
    assert len(index) == n == Embedding.objects.filter(model_version=version).count()
    return n, first, from_snapshot, unchanged, confirmed, merged


def time_burst(args) -> float:
    """An unchanged task while ``--burst`` log rows lie in the sync window (inserted, timed, deleted)."""
    from django.utils import timezone

    from identification import pipeline
    from identification.models import GalleryChange
    from identification.pipeline import gallery_sync

    version = fill(args.sizes[-1], args.dim, False)
    stamp = timezone.now()
    GalleryChange.objects.bulk_create(
        [GalleryChange(photo_id=-1 - i, model_version_id=version.pk, changed_at=stamp) for i in range(args.burst)],
        batch_size=10_000,
    )
    try:
        pipeline.reset()
        gallery_sync.gallery(version)
        return timed(lambda: gallery_sync.gallery(version), args.repeats)
    finally:
        GalleryChange.objects.filter(changed_at=stamp, photo_id__lt=0).delete()


def main(argv=None):
    args = _parser().parse_args(argv)
    ensure_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("ML_ROOT", "/tmp/whalesite-bench-sync-ml")  # where the snapshots go
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whalesite.settings.dev")
    import django

    django.setup()
    import torch
    from django.core.management import call_command

    from ml.models import create_model

    call_command("migrate", verbosity=0)
    model = create_model("resnet50", embedding_dim=args.dim, num_classes=10).eval()
    x = torch.randn(1, 1, 224, 224)
    with torch.inference_mode():
        forward = min(timed(lambda: model.embed(x)) for _ in range(5))
    rows = [time_one_size(n, args) for n in args.sizes]
    burst = time_burst(args) if args.burst else None
    print(f"PostgreSQL, {args.dim}-d vectors; ResNet50 224 px forward {forward:.0f} ms (for scale)")
    print(
        f"{'gallery':>9} {'first sync ms':>13} {'next worker ms':>14} {'unchanged ms':>12} {'+1 photo ms':>11} "
        f"{'merge of 20 ms':>14} {'unchanged / forward':>19}"
    )
    for n, first, from_snapshot, unchanged, confirmed, merged in rows:
        print(
            f"{n:>9,} {first:>13.0f} {from_snapshot:>14.0f} {unchanged:>12.1f} {confirmed:>11.1f} {merged:>14.1f} "
            f"{unchanged / forward:>18.2f}x"
        )
    if burst is not None:
        print(f"unchanged task with {args.burst:,} log rows in the window ({args.sizes[-1]:,} gallery): {burst:.1f} ms")


if __name__ == "__main__":
    main()
