"""Choose a profile's training settings (mirror policy, augmentation ranges) on individuals that are never
evaluated (issue 16).

``bench/profile_reid.py`` fine-tunes EfficientNet-Lite0's last blocks on a set's *train* individuals and reports
the *eval* individuals. Its right-whale row showed the profile's fine-tuned embedding losing to the humpback
settings', and a throwaway run with another mirror policy changed that figure; a policy picked by looking at
eval figures would be tuned on the test. This bench picks it on the train individuals alone, cross-fitted:
they are cut in two halves by individual, a model is fine-tuned on one half and scored on the other (closed
set, best photo per individual: an individual's first photo is the gallery, its other train photos are the
queries), then the halves swap. Each candidate is the profile with one mirror policy and one set of
augmentation ranges; its crop stays the profile's, chosen by ``bench/profile_crop_search.py``.

    python bench/profile_finetune_search.py [--set right_whale_head] [--out /tmp/profile_finetune_search]

Each row prints the fine-tuned embedding's MAP@5 and top-1 over both halves' queries, beside the frozen
backbone's on the same queries. Prefix outputs and models are cached under ``--out``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_crop_search as S  # noqa: E402
import profile_reid as P  # noqa: E402
import real_reid as R  # noqa: E402

from ml.evaluate import paired_difference  # noqa: E402
from ml.metrics import average_precision_at_k  # noqa: E402
from ml.profiles import HUMPBACK_FLUKE, PROFILES, Mirror, SpeciesProfile  # noqa: E402


def candidates(profile: SpeciesProfile) -> dict[str, SpeciesProfile]:
    """The profile under each mirror policy a non-symmetric body part allows, with its own and seed 000's
    augmentation ranges."""
    augs = {"profile's ranges": profile.augmentation, "seed 000's ranges": HUMPBACK_FLUKE.augmentation}
    out = {}
    for mirror in (Mirror.NEW_ID, Mirror.NEVER):
        for aug_name, aug in augs.items():
            out[f"mirror {mirror.value}, {aug_name}"] = replace(profile, mirror=mirror, augmentation=aug)
    return out


def halves(raw: P.RawSet, seed: int) -> list[tuple[list[int], list[int], list[int]]]:
    """[(train photos, gallery, queries)] for both halves of the train individuals."""
    by_id = R._by_individual(raw.labels, raw.groups, raw.split.train)
    ids = sorted(by_id)
    np.random.default_rng(seed).shuffle(ids)
    cut = [ids[: len(ids) // 2], ids[len(ids) // 2 :]]
    photos = {ind: [i for g in sorted(by_id[ind]) for i in by_id[ind][g]] for ind in ids}
    out = []
    for learn, score in (cut, cut[::-1]):
        train = [i for ind in learn for i in photos[ind]]
        scored = [ind for ind in score if len(photos[ind]) >= 2]
        out.append((train, [photos[ind][0] for ind in scored], [i for ind in scored for i in photos[ind][1:]]))
    return out


def closed_set(vectors: np.ndarray, raw: P.RawSet, gallery: list[int], queries: list[int]) -> np.ndarray:
    """Each query's (AP@5, top-1 hit) under cosine ranking, best photo per individual."""
    truth, ranked = S.top5(vectors[queries] @ vectors[gallery].T, raw, gallery, queries)
    return np.array([(average_precision_at_k(t, r, 5), r[0] == t) for r, t in zip(ranked, truth)], np.float64)


def fine_tuned_vectors(ds: R.ImageSet, prefixes, train: list[int], settings, enc, cache, args) -> np.ndarray:
    """Every photo's embedding under a tail fine-tuned on ``train`` with ``settings``' mirror and ranges."""
    blocks = args.lite_suffix_blocks
    x, labels = P.training_inputs(ds, train, settings, args.views, args.seed)
    tag = R._cache_key(settings.mirror, settings.augmentation, train, args.views, args.seed)  # cache per candidate
    train_set = R.ImageSet(f"{ds.name} search train {tag}", x, labels, labels)
    train_h, _ = R._prefix_outputs(enc, P.ARCH, {train_set.name: train_set}, cache, blocks)
    torch.manual_seed(args.seed)
    tuning = R._TailTuning(P.ARCH, enc, blocks)
    key = R._cache_key("search-finetune", ds.name, blocks, args.epochs, tag, labels)
    model, _info = R._load_or_finetune(tuning, key, cache, train_h[train_set.name], labels, float("inf"), args.epochs)
    model.eval()
    tuned, _ = R._suffix_all(
        prefixes, lambda h: F.normalize(tuning.features(model, h[:, 0].float()), dim=1), f"tuned-{key}", P.ARCH,
        blocks, cache,
    )  # fmt: skip
    return tuned[ds.name]


def main(argv=None) -> int:
    ap = S.selection_parser(__doc__)
    ap.set_defaults(set="right_whale_head")
    ap.add_argument("--out", default="/tmp/profile_finetune_search")
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lite-suffix-blocks", type=int, default=5)
    args = ap.parse_args(argv)
    args.sets = args.set
    torch.set_num_threads(2)
    from ml.backbones import create_encoder

    enc = create_encoder(P.ARCH).eval()
    cache = R.Cache(Path(args.out))
    (raw,) = P.load_sets(args)
    profile = PROFILES[args.set]
    ds = P.crops_of(raw, profile, cache)
    prefixes, _ = R._prefix_outputs(enc, P.ARCH, {ds.name: ds}, cache, args.lite_suffix_blocks)
    frozen, _ = R._suffix_all(
        prefixes, lambda h: enc.suffix(h[:, 0].float(), args.lite_suffix_blocks), "frozen", P.ARCH,
        args.lite_suffix_blocks, cache,
    )  # fmt: skip
    frozen_v = R._normalize(frozen[ds.name])
    parts = halves(raw, args.seed)
    n_q = sum(len(q) for _, _, q in parts)
    print(f"{raw.title}: train individuals in two halves, {n_q} queries in all; profile: mirror {profile.mirror}, "
          f"{profile.augmentation}")  # fmt: skip

    def per_query(vectors_of) -> np.ndarray:
        return np.concatenate([closed_set(vectors_of(k, train), raw, g, q) for k, (train, g, q) in enumerate(parts)])

    print(f"{'training settings':<46}{'MAP@5':>8}{'top-1':>8}{'s':>6}  MAP@5 minus the profile's own (95% CI)")
    frozen_q = per_query(lambda k, train: frozen_v)
    print(f"{'(frozen, no training)':<46}{frozen_q[:, 0].mean():>8.3f}{frozen_q[:, 1].mean():>8.3f}")
    own = next(n for n, c in candidates(profile).items() if (c.mirror, c.augmentation) == (profile.mirror,
               profile.augmentation))  # fmt: skip
    runs = {}
    for name, settings in sorted(candidates(profile).items(), key=lambda kv: kv[0] != own):  # the profile's first
        t0 = time.perf_counter()
        q = per_query(lambda k, train: fine_tuned_vectors(ds, prefixes, train, settings, enc, cache, args))  # noqa: B023
        runs[name] = q
        diff = "" if name == own else "  {:+.3f} ({:+.3f} .. {:+.3f})".format(
            *paired_difference(q[:, 0], runs[own][:, 0], resamples=2000)
        )  # fmt: skip
        took = time.perf_counter() - t0
        print(f"{name:<46}{q[:, 0].mean():>8.3f}{q[:, 1].mean():>8.3f}{took:>6.0f}{diff}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
