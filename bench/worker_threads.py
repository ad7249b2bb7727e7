"""Photos/s of pipeline worker processes side by side, by torch threads per process.

A Celery prefork worker runs ``-c N`` child processes; each one's torch defaults to one OpenMP
thread per core. With N children busy at once (or a training run beside a pipeline worker, as
``make run`` has on one machine) the machine then has N x cores threads that spin-wait for each
other. This bench measures what that costs, against what ``ml.device.worker_threads`` gives them.

Each configuration starts fresh processes (spawned, so that the thread settings and
``OMP_WAIT_POLICY`` are read before torch starts), each with the production calls
(``Identifier.open`` -> ``prepare`` -> ``embed`` -> ``GalleryIndex.rank`` on a 10k exact gallery),
random weights (speed does not depend on them). They wait at a barrier, then each runs --photos
photos; photos/s = all photos / the slowest process's time. ``--neighbour train`` puts a
training process (resnet18, 128 px, batch 16, same threads) beside one pipeline process instead,
as an admin's retrain beside the pipeline worker on a one-machine site.

    python bench/worker_threads.py [--photos 30] [--arch resnet50] [--image PHOTO.jpg]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _photo(path):
    if path:
        return Path(path).read_bytes()
    from ml.synth import render_photo

    img, _ = render_photo(1, 1, size=(1050, 700))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def pipeline_process(threads, photos, arch, image, barrier, results):
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from ml.device import set_threads
    from ml.gallery import GalleryIndex
    from ml.identifier import Identifier
    from ml.localizer import Localizer
    from ml.models import create_model

    set_threads(threads)
    torch.manual_seed(0)
    model = create_model(arch, embedding_dim=512, num_classes=10).eval()
    localizer = Localizer(conf_threshold=0.0)
    with torch.no_grad():
        localizer.net.upside.bias.fill_(-10.0)  # "upright", as a trained localizer says for most photos
    ident = Identifier(model, [str(i) for i in range(10)], 0.5, 224, "bench", torch.device("cpu"), localizer=localizer)
    rng = np.random.default_rng(0)
    gallery = GalleryIndex(512)
    gallery.add(
        [str(i) for i in range(10_000)],
        [str(i % 2000) for i in range(10_000)],
        rng.standard_normal((10_000, 512)).astype(np.float32),
    )
    data = _photo(image)

    def one():
        t = time.perf_counter()
        prepared = ident.prepare(ident.open(data))
        gallery.rank(ident.embed([prepared.crop])[0], k=5, new_threshold=0.5)
        return time.perf_counter() - t

    for _ in range(3):
        one()
    barrier.wait()
    start = time.perf_counter()
    latencies = [one() for _ in range(photos)]
    results.put(("pipeline", time.perf_counter() - start, latencies))


def training_process(threads, seconds, barrier, results):
    sys.path.insert(0, str(ROOT))
    import torch
    import torch.nn.functional as F

    from ml.device import set_threads
    from ml.models import create_model

    set_threads(threads)
    torch.manual_seed(0)
    model = create_model("resnet18", 512, 100).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(16, 1, 128, 128), torch.randint(0, 100, (16,))

    def step():
        loss = F.cross_entropy(model(x, y).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    barrier.wait()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    results.put(("training", time.perf_counter() - start, steps))


def run(config, args):
    """One configuration in fresh processes: {"photos_s", "latency_ms", "train_steps_s"}."""
    procs, threads, policy, neighbour = config
    env_before = os.environ.get("OMP_WAIT_POLICY")
    if policy:
        os.environ["OMP_WAIT_POLICY"] = policy
    else:
        os.environ.pop("OMP_WAIT_POLICY", None)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(procs + (1 if neighbour else 0))
    children = [
        ctx.Process(target=pipeline_process, args=(threads, args.photos, args.arch, args.image, barrier, results))
        for _ in range(procs)
    ]
    if neighbour:
        children.append(ctx.Process(target=training_process, args=(threads, args.train_seconds, barrier, results)))
    for c in children:
        c.start()
    got = [results.get(timeout=1800) for _ in children]
    for c in children:
        c.join()
    if env_before is None:
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = env_before
    pipes = [g for g in got if g[0] == "pipeline"]
    slowest = max(g[1] for g in pipes)
    latencies = sorted(x for g in pipes for x in g[2])
    out = {"photos_s": procs * args.photos / slowest, "latency_ms": latencies[len(latencies) // 2] * 1000}
    trains = [g for g in got if g[0] == "training"]
    if trains:
        out["train_steps_s"] = trains[0][2] / trains[0][1]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=30, help="photos per pipeline process")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--image", default=None, help="a JPEG (default: a synthetic 1050x700 photo)")
    ap.add_argument(
        "--train-seconds",
        type=float,
        default=None,
        help="how long the training neighbour runs (default: about as long as the pipeline)",
    )
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tqdm import tqdm

    from ml.device import available_cores, worker_threads

    cores = available_cores()
    single = worker_threads(1, cores)
    split = worker_threads(2, cores)
    # (processes, torch threads each, OMP_WAIT_POLICY, training neighbour)
    configs = [
        (1, cores, "", False),
        (2, cores, "", False),  # -c 2 with torch's default: every child takes every core
        (2, split, "", False),  # -c 2 with ml.device.worker_threads
        (1, cores, "PASSIVE", False),  # threads sleep between parallel regions instead of spinning
        (2, cores, "PASSIVE", False),
        (1, cores, "", True),  # pipeline + retrain on one machine, torch's default
        (1, split, "", True),  # the same with ml.device.worker_threads for two workers
    ]
    if args.train_seconds is None:
        args.train_seconds = args.photos * 0.2
    rows = []
    for config in tqdm(configs, desc="configurations"):
        rows.append((config, run(config, args)))
    print(
        f"{args.arch} 224 px, {args.photos} photos per process, {cores} cores; "
        f"ml.device.worker_threads: {single} for one child, {split} each for two"
    )
    print(
        f"{'processes':>9} {'threads':>7} {'OMP_WAIT_POLICY':>15} {'neighbour':>9} {'photos/s':>8} "
        f"{'median ms':>9} {'train steps/s':>13}"
    )
    for (procs, threads, policy, neighbour), r in rows:
        print(
            f"{procs:>9} {threads:>7} {policy or 'default':>15} {'training' if neighbour else '-':>9} "
            f"{r['photos_s']:>8.2f} {r['latency_ms']:>9.0f} {r.get('train_steps_s', float('nan')):>13.2f}"
        )
    base = {(p, t, pol, n): r for (p, t, pol, n), r in rows}
    two_default, two_split = base[(2, cores, "", False)], base[(2, split, "", False)]
    print(
        f"two children: worker_threads gives {two_split['photos_s'] / two_default['photos_s']:.1f}x the photos/s "
        f"of torch's default"
    )
    nb_default, nb_split = base[(1, cores, "", True)], base[(1, split, "", True)]
    print(
        f"beside a retrain: pipeline photos/s {nb_split['photos_s'] / nb_default['photos_s']:.1f}x, "
        f"training steps/s {nb_split['train_steps_s'] / nb_default['train_steps_s']:.1f}x with worker_threads"
    )


if __name__ == "__main__":
    main()
