"""Where a run trains: the device picked by name, the CPU cores this process may use, and what running out of
memory tells the user to change."""
from __future__ import annotations

import os

import torch


def out_of_memory(cfg, device) -> str:
    """The reason a run that ran out of (GPU) memory gives, with what to change."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return (f"out of memory on {device} at batch_size {cfg.batch_size}, canvas {cfg.canvas}: lower batch_size, "
            f"the image size or width, or train on the CPU (device=cpu); the weights so far are kept")


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def pick_device(name: str = "auto") -> torch.device:
    """auto: CUDA, then MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda was asked for, but torch sees no CUDA GPU (use device auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device mps was asked for, but it is not available (use device auto or cpu)")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA GPU {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"CPU, {usable_cpus()} cores"
    return str(device)
