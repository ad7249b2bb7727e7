"""Choose where a frozen pretrained backbone is read, on individuals that are never evaluated (issue 10).

The frozen EfficientNet-Lite0 row of ``bench/real_reid.py`` pools the 1280-channel head conv: ImageNet's most
class-specific layer. A right whale's callosities and a seal's pelage spots are texture, which earlier blocks
describe better. This bench reads the output of each of the last MBConv blocks instead, average- or GeM-
pooled (p = 3: the strongest activations count most), and scores it on the *train* individuals of
``bench/profile_reid.py``'s split only (closed set, the selection of ``bench/profile_crop_search.py``), so that
a choice can be picked here and measured on the eval individuals by ``bench/real_reid.py --rows lite0_gem``.

    python bench/frozen_layer_search.py [--set right_whale_head] [--cuts 0,1,2,3,4,6]

A cut of ``c`` reads the input of the last ``c`` blocks (``EfficientNetLite0Encoder.prefix``); "head" is
today's pooled head conv.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_crop_search as S  # noqa: E402
import profile_reid as P  # noqa: E402
import real_reid as R  # noqa: E402

from ml.models import GeM  # noqa: E402
from ml.preprocess import preprocess  # noqa: E402
from ml.profiles import PROFILES  # noqa: E402

POOLS = {"avg": lambda h: h.mean(dim=(2, 3)), "gem3": GeM(p=3.0)}


def main(argv=None) -> int:
    ap = S.selection_parser(__doc__)
    ap.set_defaults(set="right_whale_head")
    ap.add_argument("--cuts", default="0,1,2,3,4,6")
    args = ap.parse_args(argv)
    args.sets = args.set
    torch.set_num_threads(2)
    from ml.backbones import create_encoder

    enc = create_encoder(P.ARCH).eval()
    (raw,) = P.load_sets(args)
    gallery, queries = S.selection_part(raw)
    photos = sorted(set(gallery) | set(queries))
    at = {p: k for k, p in enumerate(photos)}
    crops = np.stack([preprocess(raw.photos[p], None, crop=PROFILES[args.set].crop) for p in photos])
    crops = crops.astype(np.float32)
    g, q = [at[p] for p in gallery], [at[p] for p in queries]
    print(f"{raw.title}: train individuals only, gallery {len(gallery)} photos, {len(queries)} queries")

    def score(fn, desc: str) -> float:
        v = R._normalize(R.run_in_batches(fn, crops, desc)[0])
        return S.map5(v[q] @ v[g].T, raw, gallery, queries)

    print(f"{'read at':<24}{'pool':>6}{'cosine MAP@5':>14}")
    print(f"{'head conv (today)':<24}{'avg':>6}{score(enc, 'head'):>14.3f}", flush=True)
    for cut in [int(c) for c in args.cuts.split(",")]:
        for name, pool in POOLS.items():
            m = score(lambda x: pool(enc.prefix(x, cut).float()), f"cut {cut} {name}")  # noqa: B023
            print(f"{f'input of last {cut} blocks':<24}{name:>6}{m:>14.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
