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
TRIM_FLOOR, TOP_PAD = 128 << 20, 64 << 20
MMAP_FLOOR, MMAP_MAX = 16 << 20, 32 << 20     # MMAP_MAX: the largest mmap threshold glibc takes (64-bit)
C_INT_MAX = (1 << 31) - 1                      # mallopt's value is a C int: ctypes wraps a larger one round
_mallopt = None


def heap_settings(buffers: list[int]) -> dict[int, int]:
    """mallopt settings for a step whose tensors (activations; their gradients are as large) take `buffers` bytes.

    The mmap threshold: just above the largest buffer where glibc allows (the whole step is served from the heap),
    else MMAP_FLOOR (the largest buffers are mapped whatever the threshold, and a heap that kept the mid-sized ones
    could not reuse them: at 128 px, 1.73 GB resident after 6 steps with 32 MB against 1.45 GB with 16). The trim
    threshold: above what the step frees at its end (twice the buffers the heap serves), so the heap's top is not
    given back and faulted in again every step. Both flat (16 MB, 128 MB) left the default 48-px step's 18.9 MB
    buffers (64 images x 32 channels) mapped afresh, or its 90 MB of activations trimmed, each step: up to 4,500
    page faults a step, changing from one run to the next with where the heap's long-lived blocks happened to lie."""
    largest = max(buffers, default=0) + (1 << 20)
    mmap = largest if MMAP_FLOOR < largest <= MMAP_MAX else MMAP_FLOOR
    heap = sum(b for b in buffers if b < mmap)
    return {M_MMAP_THRESHOLD: mmap, M_TRIM_THRESHOLD: min(C_INT_MAX, max(TRIM_FLOOR, 2 * heap)), M_TOP_PAD: TOP_PAD}


def keep_heap(buffers: list[int] = ()) -> bool:
    """Have glibc's malloc keep a training loop's buffers instead of handing them back to the kernel each step.

    A step's CPU tensors (activations, gradients) are freed and allocated again on the next step. By default glibc
    serves a block over 128 kB with a fresh mmap and gives a heap's free top back, so each step page-faults its
    buffers in again: 7 million minor faults and 12 s of kernel time in a 600-step default run on 2 cores, and as
    many in a training thread (the app's), whose heaps glibc unmaps once empty. With heap_settings(buffers)
    (`buffers`: the sizes of the step's tensors, see train.step_buffers) and 64 MB of padding (so a thread's empty
    heap stays): 0.2 million faults and 0.6 s, 13.6 -> 16.2 steps/s, for about 0.1 GB more resident memory. Where
    a step's largest buffers are over glibc's 32 MB they are mapped each step: a 128-px step is about 35% slower
    than with the mid-sized ones kept (12 steps on 2 threads: 17.2 against 12.4-12.9 s; README, "Memory at 128 px
    is a trade against speed"). Training is bit-identical either way. Each run sets them for its own sizes (the
    last one started wins); on Linux with glibc only, and never where the user set one of glibc's MALLOC_*_
    variables (their choice stands). Returns whether it is in effect."""
    global _mallopt
    if _mallopt is None:
        _mallopt = False
        mine = any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ)
        if not mine and _glibc():
            try:
                _mallopt = ctypes.CDLL("libc.so.6").mallopt
            except (OSError, AttributeError):
                _mallopt = False
    if not _mallopt:
        return False
    # dict order: the mmap threshold first (setting either threshold turns glibc's own adjustment of both off)
    return all(_mallopt(param, value) == 1 for param, value in heap_settings(list(buffers)).items())


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
