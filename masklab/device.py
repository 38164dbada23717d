"""Where a run trains: the device picked by name, the CPU cores this process may use, how its memory allocator
serves a training loop, and what running out of memory tells the user to change."""
from __future__ import annotations

import ctypes
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


# glibc's mallopt parameters, and the values keep_heap gives them (bytes).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
HEAP = {M_MMAP_THRESHOLD: 16 << 20, M_TRIM_THRESHOLD: 128 << 20, M_TOP_PAD: 64 << 20}
_heap_kept = None


def keep_heap() -> bool:
    """Have glibc's malloc keep a training loop's buffers instead of handing them back to the kernel each step.

    A step's CPU tensors (activations, gradients) are freed and allocated again on the next step. By default glibc
    serves a block over 128 kB with a fresh mmap and gives a heap's free top back, so each step page-faults its
    buffers in again: 7 million minor faults and 12 s of kernel time in a 600-step default run on 2 cores, and as
    many in a training thread (the app's), whose heaps glibc unmaps once empty. Blocks under 16 MB from the heap, 128
    MB of free top kept and 64 MB of padding (so a thread's empty heap stays): 0.2 million faults and 0.6 s, 13.6 ->
    16.2 steps/s, for about 0.1 GB more resident memory. Not 32 MB (the first value): the same at 48 px (150 steps:
    63 k faults against 80 k), but at 128 px the heap kept 16-32 MB blocks it could not reuse, 1.73 against 1.45 GB
    resident after 6 steps, the price of 16: a 128-px step faults its 16-32 MB buffers in again, about 35% slower
    (12 steps on 2 threads: 17.2 against 12.4-12.9 s; README, "Memory at 128 px is a trade against speed").
    Training is bit-identical either way. Once per process, on
    Linux with glibc only, and never where the user set one of glibc's MALLOC_*_ variables (their choice stands).
    Returns whether it is in effect."""
    global _heap_kept
    if _heap_kept is None:
        _heap_kept = False
        mine = any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ)
        if not mine and _glibc():
            try:
                mallopt = ctypes.CDLL("libc.so.6").mallopt
            except (OSError, AttributeError):
                return False
            # The mmap threshold first: setting either threshold turns glibc's own adjustment of both off.
            _heap_kept = all(mallopt(param, value) == 1 for param, value in HEAP.items())
    return _heap_kept


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


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
