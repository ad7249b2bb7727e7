"""One photo through the whole identification pipeline vs the bare backbone forward.

Pipeline = decode JPEG bytes (ml.images.load_image) -> localize (ml.localizer, 128 px) ->
crop (ml.preprocess, seed 000) -> embed (Identifier.embed) -> rank top-5 individuals in a
100k-photo gallery (ml.gallery, exact IndexFlatIP at 100k). Bare = ``model.embed`` on the
same crop tensor(s). Both are timed interleaved in one run (median of --repeats), so load
from other processes hits both alike. Random-init weights: speed does not depend on them.

    python bench/pipeline_vs_forward.py [--arch resnet50] [--size 224] [--batch 1] [--gallery 100000]
    python bench/pipeline_vs_forward.py --image ../shared/real-flukes/flukes/<photo>.jpg
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

from ml.gallery import GalleryIndex  # noqa: E402
from ml.identifier import Identifier  # noqa: E402
from ml.images import load_image  # noqa: E402
from ml.localizer import Localizer  # noqa: E402
from ml.models import create_model  # noqa: E402
from ml.preprocess import EvalTransform  # noqa: E402


def photo_bytes(path: str | None) -> bytes:
    if path:
        return Path(path).read_bytes()
    from ml.synth import render_photo

    img, _ = render_photo(1, 1, size=(1050, 700))  # the Kaggle photos' most common size
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1, help="photos per pipeline call")
    ap.add_argument("--gallery", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--image", default=None, help="a JPEG to use (default: a synthetic 1050x700 photo)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = create_model(args.arch, embedding_dim=args.dim, num_classes=10).eval()
    localizer = Localizer(conf_threshold=0.0)  # always use the network's box (full path)
    ident = Identifier(model, [str(i) for i in range(10)], 0.5, args.size, "bench", device, localizer=localizer)
    rng = np.random.default_rng(0)
    gallery = GalleryIndex(args.dim)
    gallery.add([str(i) for i in range(args.gallery)], [str(i // 5) for i in range(args.gallery)],
                rng.standard_normal((args.gallery, args.dim), dtype=np.float32))
    data = [photo_bytes(args.image)] * args.batch
    transform = EvalTransform(args.size)

    stages = {"decode": [], "localize+crop": [], "embed": [], "search": []}

    def pipeline():
        t0 = time.perf_counter()
        images = [load_image(b) for b in data]
        t1 = time.perf_counter()
        prepared = [ident.prepare(im) for im in images]
        t2 = time.perf_counter()
        vecs = ident.embed([p.crop for p in prepared])
        t3 = time.perf_counter()
        ranks = gallery.rank_batch(vecs, k=5, new_threshold=0.5)
        t4 = time.perf_counter()
        for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[key].append(dt)
        return prepared, ranks

    prepared, _ = pipeline()  # warm-up, and the crops for the bare forward
    x = torch.stack([transform(p.crop) for p in prepared])

    def bare():
        with torch.inference_mode():
            return model.embed(x)

    bare()
    for v in stages.values():
        v.clear()
    t_pipe, t_bare = [], []
    for _ in tqdm(range(args.repeats), desc="interleaved runs"):
        t = time.perf_counter()
        pipeline()
        t_pipe.append(time.perf_counter() - t)
        t = time.perf_counter()
        bare()
        t_bare.append(time.perf_counter() - t)
    p, b = np.median(t_pipe), np.median(t_bare)
    print(f"{args.arch} {args.size}px, batch {args.batch}, gallery {len(gallery):,} x {args.dim} "
          f"({'HNSW' if gallery.is_hnsw else 'exact'}), torch threads {torch.get_num_threads()}")
    print("pipeline stages (median ms): " + ", ".join(f"{k} {np.median(v) * 1000:.1f}" for k, v in stages.items()))
    print(f"pipeline {p * 1000:.1f} ms vs bare forward {b * 1000:.1f} ms per call: ratio {p / b:.3f}x "
          f"[target <= 1.15x: {'OK' if p / b <= 1.15 else 'MISS'}]")


if __name__ == "__main__":
    main()
