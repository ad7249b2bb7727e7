"""Time one occlusion map (query vs candidate) with a random-init backbone on this machine.

python bench/occlusion_speed.py [--arch resnet50] [--size 224] [--grid 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml.explain import default_patch_stride, occlusion_map  # noqa: E402
from ml.models import create_model, embed_crops  # noqa: E402


class ModelEmbedder:
    def __init__(self, model):
        self.model = model.eval()

    def embed(self, crops):
        return embed_crops(self.model, crops, torch.device("cpu"), batch_size=64)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--grid", type=int, nargs="+", default=[4, 5, 7])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    emb = ModelEmbedder(create_model(args.arch, num_classes=10))
    rng = np.random.default_rng(0)
    q, c = rng.normal(size=(2, args.size, args.size)).astype(np.float32)
    emb.embed([q, c])  # warm-up
    t = time.perf_counter()
    for _ in range(args.repeats):
        emb.embed([q])
    single = (time.perf_counter() - t) / args.repeats
    print(f"{args.arch} {args.size}px, torch threads {torch.get_num_threads()}: one forward {single * 1000:.0f} ms")
    for grid in args.grid:
        patch, stride = default_patch_stride(args.size, grid)
        times = []
        for _ in tqdm(range(args.repeats), desc=f"grid {grid}x{grid}", leave=False):
            occ = occlusion_map(emb, q, c, patch=patch, stride=stride)
            times.append(occ.seconds)
        print(
            f"grid {grid}x{grid} (patch {patch}, stride {stride}): {occ.forwards} forwards, "
            f"median {np.median(times):.2f} s per pair = {np.median(times) / single:.1f}x one forward"
        )


if __name__ == "__main__":
    main()
