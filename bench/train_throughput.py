"""Training images/s: ml.train's loop vs a bare torch loop over preloaded tensors, interleaved.

Both train the same FlukeNet (arch, head, batch size) in one run, **step for step**: ml.train
calls its progress callback after every training step, and the callback runs one step of the
bare loop (preloaded random tensors straight into the model: the upper bound) and times it.
ml.train's step time is the time between the end of one callback and the start of the next
(its data loader, augmentation, forward/backward/optimizer and bookkeeping; the bare step is
excluded), so background load hits both alike. The first --warmup steps of each are dropped,
intervals across epochs (validation) are skipped, and the medians are compared.

With DataLoader worker processes (``--workers N``) the workers keep preparing batches while the
bare step runs, which flatters ml.train a little; with the default (0 workers on <= 2 CPUs or
in-memory crops on the CPU, see ``ml.data.default_loader_workers``) there is no such effect.

    python bench/train_throughput.py [--arch resnet18] [--size 224] [--batch 16] [--steps 12] [--workers N]
    python bench/train_throughput.py --arch resnet18 efficientnet_lite0 dinov2_s   # one row per architecture

``--trainable-blocks`` (pretrained archs; default: the default recipe's, 0 = frozen encoder, ``all``) applies to
both loops; the from-scratch ResNets always train whole.
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
from ml.presets import ARCHS, DEFAULT  # noqa: E402
from ml.synth import generate_dataset  # noqa: E402
from ml.train import TrainConfig, train  # noqa: E402


class BareLoop:
    """One step at a time of the plain torch loop, on preloaded tensors."""

    def __init__(self, arch, size, batch, steps, num_classes, head, lr, trainable_blocks=None):
        torch.manual_seed(0)
        self.model = create_model(arch, 512, num_classes, head, trainable_blocks=trainable_blocks).train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.xs = torch.randn(steps, batch, 1, size, size)
        self.ys = torch.randint(0, num_classes, (steps, batch))
        self.i = 0
        self.times: list[float] = []

    def step(self) -> None:
        i = self.i % len(self.xs)
        t = time.perf_counter()
        loss = F.cross_entropy(self.model(self.xs[i], self.ys[i]).float(), self.ys[i])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.times.append(time.perf_counter() - t)
        self.i += 1


def _blocks(value: str):
    return None if value == "all" else int(value)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", nargs="+", default=["resnet18"], choices=ARCHS, help="one row per architecture")
    ap.add_argument("--trainable-blocks", type=_blocks, default=DEFAULT.trainable_blocks)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--individuals", type=int, default=40)
    ap.add_argument("--workers", type=int, default=None, help="ml.train num_workers (default: its own)")
    ap.add_argument("--head", default="arcface")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_dataset(tmp / "synth", individuals=args.individuals, photos=(4, 8), seed=0, progress=False)
        rows = [measure(args, arch, tmp) for arch in args.arch]
    print("\n".join(rows))


def measure(args, arch: str, tmp: Path) -> str:
    """Interleave ml.train's steps with the bare loop's for ``arch``; the result row."""
    steps_needed = args.warmup + args.steps
    bare = BareLoop(
        arch, args.size, args.batch, min(steps_needed, 8), args.individuals, args.head, 0.005, args.trainable_blocks
    )
    ours: list[float] = []
    last = {"end": None, "epoch": None}
    bar = tqdm(total=steps_needed, desc=f"{arch}: interleaved steps", leave=False)

    def progress(p):
        now = time.perf_counter()
        if p.phase != "train":
            last["end"] = None  # validation etc. between: the next interval is not a step
            return
        if last["end"] is not None and last["epoch"] == p.epoch:
            ours.append(now - last["end"])
        bare.step()
        bar.update(1)
        last["epoch"] = p.epoch
        last["end"] = time.perf_counter()

    cfg = TrainConfig(
        csv=str(tmp / "synth" / "train.csv"),
        images_dir=str(tmp / "synth" / "images"),
        out_dir=str(tmp / f"model-{arch}"),
        boxes_csv=str(tmp / "synth" / "boxes.csv"),
        arch=arch,
        image_size=args.size,
        head=args.head,
        epochs=1000,
        batch_size=args.batch,
        max_steps=steps_needed + 1,
        train_localizer=False,
        oversample_to=8,
        device="cpu",
        num_workers=args.workers,
        trainable_blocks=args.trainable_blocks,
        calibrate=False,
        cache_dir=str(tmp / "cache"),
    )
    train(cfg, progress=progress)
    bar.close()
    from ml.data import default_loader_workers

    workers = args.workers if args.workers is not None else default_loader_workers(True, "cpu")
    ours_t = ours[max(0, args.warmup - 1) :]
    bare_t = bare.times[args.warmup :]
    if not ours_t:
        raise SystemExit("ml.train ran too few steps within an epoch; use more --individuals")
    o, b = args.batch / float(np.median(ours_t)), args.batch / float(np.median(bare_t))
    frozen = "" if arch.startswith("resnet") else f", trainable_blocks {args.trainable_blocks}"
    return (
        f"{arch} {args.size}px batch {args.batch}{frozen}, {len(ours_t)} / {len(bare_t)} timed steps "
        f"(interleaved), torch threads {torch.get_num_threads()}, ml.train loader workers {workers}: "
        f"ml.train step median {np.median(ours_t) * 1000:.0f} ms, bare {np.median(bare_t) * 1000:.0f} ms; "
        f"{o:.2f} img/s vs {b:.2f} img/s: ratio {o / b:.3f}x [target >= 0.8x: {'OK' if o / b >= 0.8 else 'MISS'}]"
    )


if __name__ == "__main__":
    main()
