"""One photo through the whole identification pipeline vs the bare backbone forward.

Pipeline = the production calls, nothing bench-only: ``Identifier.open`` (checked decode,
grayscale: a JPEG's luma plane) -> ``Identifier.prepare`` (localizer at 128 px + seed-000 crop)
-> ``Identifier.embed`` -> ``GalleryIndex.rank`` top-5 individuals in a 100k-photo gallery
(HNSW above ``ml.gallery.HNSW_THRESHOLD``; clustered 512-d vectors as in bench/gallery_search.py,
built once and kept with ``GalleryIndex.save`` under --cache). Bare = ``model.embed`` on the
same crop tensor(s). Both are timed interleaved in one run (median of --repeats), so load
from other processes hits both alike. Random-init weights: speed does not depend on them, with one
exception: the localizer's upside-down head decides whether the photo is turned by 180 degrees
first (one more pass over the photo). It is set to say "upright", as a trained localizer does for
the usual upright photo; ``--upside-down`` times the rare turned photo instead.

    python bench/pipeline_vs_forward.py [--arch resnet50] [--size 224] [--batch 1] [--gallery 100000]
    python bench/pipeline_vs_forward.py --image ../shared/real-flukes/flukes/<photo>.jpg
    python bench/pipeline_vs_forward.py --threads 1   # as in a -c 2 worker child on 2 cores
    python bench/pipeline_vs_forward.py --no-rerank    # the cosine-only ranking of uncalibrated versions

Re-rank (on by default, as the site ranks with a calibrated version): its own line, the production call
``ml.fused_ranking.suggest``: RootSIFT features of the query crop (``Identifier.local_features``), the
embedding's top-``--shortlist`` individuals verified against their stored features (``--photos-per-id``
synthetic crops each, decoded from ``LocalFeatures.to_bytes`` as the site reads them from the database) and
the calibrated fusion. ``suggest`` runs its own shortlist search, so "upload to suggestions" with re-ranking
is decode + localize+crop + embed + re-rank (the top-5 search line is the cosine-only path).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml.device import set_threads  # noqa: E402
from ml.gallery import HNSW_THRESHOLD, GalleryIndex  # noqa: E402
from ml.identifier import DECODE_SHORT_SIDE, Identifier  # noqa: E402
from ml.localizer import Localizer  # noqa: E402
from ml.models import create_model  # noqa: E402
from ml.preprocess import EvalTransform  # noqa: E402
from ml.presets import DEFAULT  # noqa: E402


def photo_bytes(path: str | None) -> bytes:
    if path:
        return Path(path).read_bytes()
    from ml.synth import render_photo

    img, _ = render_photo(1, 1, size=(1050, 700))  # the Kaggle photos' most common size
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def load_gallery(args) -> GalleryIndex:
    from bench.gallery_search import clustered

    folder = Path(f"{args.cache}-{args.gallery}x{args.dim}-t{args.hnsw_threshold}") if args.cache else None
    if folder is not None and (folder / "meta.json").is_file():
        t = time.perf_counter()
        gallery = GalleryIndex.load(folder)
        print(f"gallery loaded from {folder} in {time.perf_counter() - t:.1f} s")
        return gallery
    rng = np.random.default_rng(0)
    _, labels, vectors = clustered(args.gallery, args.dim, 5, 0.75, rng)
    gallery = GalleryIndex(args.dim, hnsw_threshold=args.hnsw_threshold)
    t = time.perf_counter()
    gallery.add([str(i) for i in range(args.gallery)], [str(v) for v in labels], vectors)
    print(f"gallery built in {time.perf_counter() - t:.1f} s ({'HNSW' if gallery.is_hnsw else 'exact'})")
    if folder is not None:
        gallery.save(folder)
    return gallery


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default=DEFAULT.arch)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1, help="photos per pipeline call")
    ap.add_argument("--gallery", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=101, help="interleaved pairs (a pair takes ~0.1 s idle)")
    ap.add_argument("--image", default=None, help="a JPEG to use (default: a synthetic 1050x700 photo)")
    ap.add_argument(
        "--full-decode",
        action="store_true",
        help="decode a camera-sized JPEG at full resolution (before: Identifier.open's reduced decode)",
    )
    ap.add_argument("--upside-down", action="store_true", help="time a photo the localizer finds upside down")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default, every core); a pipeline worker child gets "
        "ml.device.worker_threads(pool size), e.g. 1 for -c 2 on 2 cores",
    )
    ap.add_argument("--hnsw-threshold", type=int, default=HNSW_THRESHOLD)
    ap.add_argument("--no-rerank", dest="rerank", action="store_false", help="leave out the re-rank stage")
    ap.add_argument("--shortlist", type=int, default=50, help="individuals verified with RootSIFT")
    ap.add_argument("--photos-per-id", type=int, default=2, help="stored features per shortlisted individual")
    ap.add_argument(
        "--cache",
        default="/tmp/whalesite-bench-gallery",
        help="folder for the built gallery (GalleryIndex.save/load), '' to rebuild every run",
    )
    return ap


def build_identifier(args) -> Identifier:
    """Random weights (speed does not depend on them), but a definite answer from the upside-down head."""
    torch.manual_seed(0)
    model = create_model(args.arch, embedding_dim=args.dim, num_classes=10).eval()
    localizer = Localizer(conf_threshold=0.0)  # always use the network's box (full path)
    with torch.no_grad():
        localizer.net.upside.weight.zero_()
        localizer.net.upside.bias.fill_(10.0 if args.upside_down else -10.0)
    device = torch.device("cpu")
    return Identifier(model, [str(i) for i in range(10)], 0.5, args.size, "bench", device, localizer=localizer)


class Pipeline:
    """The production calls for ``--batch`` photos, each stage's time recorded per call."""

    def __init__(self, ident: Identifier, gallery: GalleryIndex, args):
        self.ident, self.gallery = ident, gallery
        self.data = [photo_bytes(args.image)] * args.batch
        self.short_side = None if args.full_decode else DECODE_SHORT_SIDE
        self.stages: dict[str, list[float]] = {k: [] for k in ("decode", "localize+crop", "embed", "search", "re-rank")}
        self.rerank = make_reranker(ident, gallery, args) if args.rerank else None

    def __call__(self):
        ident, gallery = self.ident, self.gallery
        t0 = time.perf_counter()
        images = [ident.open(b, short_side=self.short_side) for b in self.data]
        t1 = time.perf_counter()
        prepared = [ident.prepare(im) for im in images]
        t2 = time.perf_counter()
        vecs = ident.embed([p.crop for p in prepared])
        t3 = time.perf_counter()
        if len(vecs) == 1:
            ranks = [gallery.rank(vecs[0], k=5, new_threshold=0.5)]  # what the site calls per photo
        else:
            ranks = gallery.rank_batch(vecs, k=5, new_threshold=0.5)
        t4 = time.perf_counter()
        if self.rerank is not None:
            for p, v in zip(prepared, vecs):
                self.rerank(p.crop, v)
        t5 = time.perf_counter()
        for key, dt in zip(self.stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            self.stages[key].append(dt)
        return prepared, ranks


def interleave(pipeline: Pipeline, bare, repeats: int) -> tuple[list[float], list[float]]:
    """Both timed in alternating order, so load from other processes hits both alike."""
    t_pipe, t_bare = [], []
    for i in tqdm(range(repeats), desc="interleaved runs"):
        for which in (pipeline, bare) if i % 2 == 0 else (bare, pipeline):
            t = time.perf_counter()
            which()
            (t_pipe if which is pipeline else t_bare).append(time.perf_counter() - t)
    return t_pipe, t_bare


def report(args, pipeline: Pipeline, t_pipe, t_bare, scale) -> None:
    stages, gallery = pipeline.stages, pipeline.gallery
    p, b = np.median(t_pipe), np.median(t_bare)
    pair = np.median(np.array(t_pipe) / np.array(t_bare))
    overhead = sum(np.median(stages[k]) for k in ("decode", "localize+crop", "search"))
    print(
        f"{args.arch} {args.size}px, batch {args.batch}, gallery {len(gallery):,} x {args.dim} "
        f"({'HNSW' if gallery.is_hnsw else 'exact'}, efSearch {gallery.effective_ef_search}), torch threads "
        f"{torch.get_num_threads()}, {args.repeats} interleaved pairs, "
        f"{'upside-down' if args.upside_down else 'upright'} photo, decoded at 1/{scale}"
    )
    print("pipeline stages (median ms): " + ", ".join(f"{k} {np.median(v) * 1000:.1f}" for k, v in stages.items()))
    print(
        f"pipeline {p * 1000:.1f} ms vs bare forward {b * 1000:.1f} ms per call: ratio of medians {p / b:.3f}x, "
        f"median of per-pair ratios {pair:.3f}x [target <= 1.15x: {'OK' if pair <= 1.15 else 'MISS'}]"
    )
    print(
        f"non-forward stages (decode + localize+crop + search) {overhead * 1000:.1f} ms = "
        f"{overhead / b * 100:.1f}% of the bare forward"
    )
    if pipeline.rerank is not None:
        fused = sum(np.median(stages[k]) for k in ("decode", "localize+crop", "embed", "re-rank"))
        print(
            f"re-rank (RootSIFT extract + shortlist {args.shortlist} x {args.photos_per_id} photos verified + "
            f"fusion) {np.median(stages['re-rank']) * 1000:.1f} ms; upload to suggestions with re-ranking "
            f"{fused * 1000:.1f} ms per photo [target <= 2000 ms: {'OK' if fused <= 2.0 else 'MISS'}]"
        )


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    ident = build_identifier(args)
    pipeline = Pipeline(ident, load_gallery(args), args)
    prepared, _ = pipeline()  # warm-up, and the crops for the bare forward
    x = torch.stack([EvalTransform(args.size)(p.crop) for p in prepared])

    def bare():
        with torch.inference_mode():
            return ident.model.embed(x)

    bare()
    for v in pipeline.stages.values():
        v.clear()
    t_pipe, t_bare = interleave(pipeline, bare, args.repeats)
    assert all(p.upside_down == args.upside_down for p in prepared)
    report(args, pipeline, t_pipe, t_bare, ident.open(pipeline.data[0], short_side=pipeline.short_side).info["scale"])


def make_reranker(ident, gallery, args):
    """``rerank(crop, vector)``: ``ml.fused_ranking.suggest`` as the worker calls it, against stored features of
    synthetic crops (bytes, decoded per query as the site reads them) and a stand-in calibration (speed does not
    depend on its knots)."""
    from ml.calibration import Fusion, IsotonicCalibrator, MatchCalibration
    from ml.fused_ranking import suggest
    from ml.local_features import LocalFeatures
    from ml.synth import render_photo

    stored = []
    for i in range(args.photos_per_id * 4):  # a few distinct crops, cycled over the shortlist
        img, _ = render_photo(100 + i // 2, i % 2, size=(1050, 700))
        stored.append(ident.local_features(ident.prepare(img.convert("L"))).to_bytes())
    calibration = MatchCalibration(
        {"cos": IsotonicCalibrator([0.0, 1.0], [0.01, 0.99]), "inl": IsotonicCalibrator([0.0, 40.0], [0.01, 0.99])},
        Fusion("logistic", {"cos": 1.0, "inl": 1.0}, 0.0),
        0.5,
    )

    def features_for(labels):  # what identification.pipeline.process.stored_features returns
        return {
            lab: [
                (f"{lab}-{j}", LocalFeatures.from_bytes(stored[(n + j) % len(stored)]))
                for j in range(args.photos_per_id)
            ]
            for n, lab in enumerate(labels)
        }

    def rerank(crop, vector):
        return suggest(
            gallery,
            vector,
            calibration,
            ident.local_features(crop),
            k=args.shortlist + 1,
            shortlist=args.shortlist,
            features_for=features_for,
        )

    return rerank


if __name__ == "__main__":
    main()
