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


def autocast(device: torch.device | str):
    """bf16 autocast on CUDA; a no-op context on CPU."""
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if dev.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
