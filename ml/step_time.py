"""Seconds per training step of an architecture and image size on this machine, measured.

The site's retrain form multiplies this by the run's steps (epochs x batches) to say how long a run
would take before it starts (issue 12, item 6: ResNet-50 at 224 px for 20 epochs showed no estimate
for 4 minutes, then "8 h 47 m"). The step is ``ml.train``'s own: the model ``build_model`` builds
(frozen layers included), its optimizer, the ArcFace loss, backward and the optimizer step, on random
crops of the run's batch shape. Loading and augmenting batches and the per-epoch validation are not
in it (a few percent of a step's time on the CPU; bench/train_throughput.py measures the whole loop).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from ml.presets import DEFAULT

N_CLASSES = 64  # the head's size barely matters next to the backbone


@dataclass(frozen=True)
class StepTime:
    arch: str
    image_size: int
    batch_size: int
    device: str
    seconds_per_step: float  # the median of the timed steps
    steps: int  # timed steps (after one untimed warm-up step)


def measure_step_time(
    arch: str = DEFAULT.arch,
    image_size: int = DEFAULT.image_size,
    batch_size: int = DEFAULT.batch_size,
    device: str = "",
    steps: int = 3,
    **config: Any,
) -> StepTime:
    """Time ``steps`` optimizer steps of ``ml.train``'s training step (after one warm-up step)."""
    import torch

    from ml.device import pick_device
    from ml.train import TrainConfig, build_model, make_optimizer, step_loss

    cfg = TrainConfig(
        csv="", images_dir="", out_dir="", arch=arch, image_size=int(image_size), batch_size=int(batch_size), **config
    )
    dev = pick_device(device)
    model, _ = build_model(cfg, [str(i) for i in range(N_CLASSES)], dev)
    optimizer, _ = make_optimizer(model, cfg)
    model.train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.batch_size, 1, cfg.image_size, cfg.image_size, generator=gen).to(dev)
    y = torch.randint(0, N_CLASSES, (cfg.batch_size,), generator=gen).to(dev)
    run = _StepRun(model, cfg, dev)
    times = []
    for i in range(int(steps) + 1):
        start = time.perf_counter()
        loss = step_loss(run, x, y)  # type: ignore[arg-type]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i:  # the first step allocates and warms caches
            times.append(time.perf_counter() - start)
    return StepTime(arch, cfg.image_size, cfg.batch_size, str(dev), statistics.median(times), len(times))


@dataclass
class _StepRun:
    """What ``ml.train.step_loss`` reads of a run."""

    model: object
    config: object
    device: object
