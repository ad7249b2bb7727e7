"""Training images/s: ml.train's loop vs a bare torch loop over preloaded tensors.

Both train the same FlukeNet (arch, head, batch size, optimizer) in one run. ml.train's
rate is taken from its progress callback (time between train-step reports after a
warm-up, so crop caching, validation and saving are excluded, but its data loader,
augmentation and bookkeeping are included). The bare loop feeds preloaded random
tensors straight to the model: the upper bound.

    python bench/train_throughput.py [--arch resnet18] [--size 224] [--batch 16] [--steps 12]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml.models import create_model  # noqa: E402
from ml.synth import generate_dataset  # noqa: E402
from ml.train import TrainConfig, train  # noqa: E402


def bare_loop(arch, size, batch, steps, warmup, num_classes, head, lr) -> float:
    torch.manual_seed(0)
    model = create_model(arch, 512, num_classes, head).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xs = torch.randn(warmup + steps, batch, 1, size, size)
    ys = torch.randint(0, num_classes, (warmup + steps, batch))
    t0 = None
    for i in tqdm(range(warmup + steps), desc="bare loop", leave=False):
        if i == warmup:
            t0 = time.perf_counter()
        loss = F.cross_entropy(model(xs[i], ys[i]).float(), ys[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--individuals", type=int, default=40)
    ap.add_argument("--workers", type=int, default=None, help="ml.train num_workers (default: its own)")
    ap.add_argument("--head", default="arcface")
    args = ap.parse_args(argv)
    steps_needed = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        summary = generate_dataset(tmp / "synth", individuals=args.individuals, photos=(4, 8), seed=0,
                                   progress=False)
        stamps: list[tuple[int, float]] = []
        bar = tqdm(total=steps_needed, desc="ml.train loop", leave=False)

        def progress(p):
            if p.phase == "train":
                stamps.append((p.epoch, time.perf_counter()))
                bar.update(1)

        cfg = TrainConfig(csv=str(tmp / "synth" / "train.csv"), images_dir=str(tmp / "synth" / "images"),
                          out_dir=str(tmp / "model"), boxes_csv=str(tmp / "synth" / "boxes.csv"), arch=args.arch,
                          image_size=args.size, head=args.head, epochs=1000, batch_size=args.batch,
                          max_steps=steps_needed, train_localizer=False, oversample_to=8, device="cpu",
                          num_workers=args.workers)
        result = train(cfg, progress=progress)
        bar.close()
        # stamps[i] is taken after step i+1: an interval between two stamps of the same epoch is one
        # full step (loader + forward + backward); intervals across epochs (validation) are skipped
        intervals = [b - a for (ea, a), (eb, b) in zip(stamps, stamps[1:]) if ea == eb][args.warmup - 1:]
        if not intervals:
            raise SystemExit("ml.train ran too few steps within an epoch; use more --individuals")
        ours = args.batch / float(np.mean(intervals))
        n_classes = int(result.metrics.get("n_classes", args.individuals))
    bare = bare_loop(args.arch, args.size, args.batch, args.steps, args.warmup, n_classes, args.head, 0.005)
    print(f"{args.arch} {args.size}px batch {args.batch}, {args.steps} timed steps, torch threads "
          f"{torch.get_num_threads()}, ml.train num_workers {cfg.num_workers}")
    print(f"ml.train loop {ours:.2f} img/s vs bare torch loop {bare:.2f} img/s: ratio {ours / bare:.3f}x "
          f"[target >= 0.8x: {'OK' if ours / bare >= 0.8 else 'MISS'}]")


if __name__ == "__main__":
    main()
