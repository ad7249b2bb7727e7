"""Device selection and mixed precision (CUDA + bf16 when present, CPU otherwise).

torch is imported inside the functions that use it: ``available_cores`` and ``worker_threads`` serve
``manage.py run_site``, which must not spend a torch import before the web server starts."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from ml.presets import PRECISIONS

if TYPE_CHECKING:
    import torch


def pick_device(preferred: str = "") -> torch.device:
    """The device to run on: ``preferred`` when given and usable, else CUDA if available, else CPU."""
    import torch

    preferred = (preferred or "").strip().lower()
    if preferred and preferred != "auto":
        dev = torch.device(preferred)
        if dev.type == "cuda" and not torch.cuda.is_available():
            return torch.device("cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def uses_bf16(device: torch.device | str, precision: str = "auto") -> bool:
    """Whether ``autocast(device, precision)`` runs in bf16: on CUDA for ``"auto"``, anywhere for ``"bf16"``."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision == "bf16" or (precision == "auto" and torch.device(device).type == "cuda")


def autocast(device: torch.device | str, precision: str = "auto"):
    """bf16 autocast on CUDA (``"auto"``), off on the CPU. ``"bf16"`` asks for it on any device:
    with no GPU at hand, the CPU's autocast runs the same mixed-precision code path, so the dtype
    mistakes that only show up on CUDA (bf16 activations meeting fp32 weights) are caught there."""
    import torch

    if uses_bf16(device, precision):
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's cpuset), not the host's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_threads(processes: int, cores: int | None = None) -> int:
    """Torch threads for each of ``processes`` worker processes sharing ``cores``: an equal share,
    at least one. torch's default is every core in every process; with two or more processes busy
    at once their OpenMP threads spin-wait for each other, and on 2 cores two ResNet50 pipeline
    processes then managed a tenth of the photos/s of one thread each (bench/worker_threads.py)."""
    cores = available_cores() if cores is None else int(cores)
    return max(1, cores // max(1, int(processes)))


def set_threads(threads: int) -> int:
    """Set this process's torch intra-op threads (BLAS and oneDNN follow); returns the number set."""
    import torch

    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    return threads
