"""Device selection and mixed precision (CUDA + bf16 when present, CPU otherwise)."""
from __future__ import annotations

import contextlib

import torch


def pick_device(preferred: str = "") -> torch.device:
    """The device to run on: ``preferred`` when given and usable, else CUDA if available, else CPU."""
    preferred = (preferred or "").strip().lower()
    if preferred and preferred != "auto":
        dev = torch.device(preferred)
        if dev.type == "cuda" and not torch.cuda.is_available():
            return torch.device("cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


PRECISIONS = ("auto", "bf16", "fp32")


def autocast(device: torch.device | str, precision: str = "auto"):
    """bf16 autocast on CUDA (``"auto"``), off on the CPU. ``"bf16"`` asks for it on any device:
    with no GPU at hand, the CPU's autocast runs the same mixed-precision code path, so the dtype
    mistakes that only show up on CUDA (bf16 activations meeting fp32 weights) are caught there."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if precision == "bf16" or (precision == "auto" and dev.type == "cuda"):
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
