"""The two synthetic datasets, drawn on the fly on the run's device with the run's own generator; their fixed test
sets carry each object's true box and ink (for the oracle references and the localisation metrics).

  cluttered-digits    scikit-learn's bundled UCI handwritten digits (1797 8x8 images) upscaled 2x onto a larger
                      canvas with fragments of other digits as clutter ("cluttered MNIST", Mnih et al. 2014, at
                      laptop scale).
  shapes              synthetic RGB: a coloured disk / square / triangle / cross on a smooth texture with
                      distractor blobs; the label is the shape.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data import SPLIT_SEED, TEST_SEED, Dataset, TestSet, stratified_split

# --- cluttered digits ------------------------------------------------------------------------------------

DIGIT = 16      # upscaled digit side (8x8 source, 2x)
FRAGMENT = 6    # side of a clutter fragment
INK = 0.25      # a digit's pixels brighter than this are its ink


def source_digits() -> tuple[Tensor, Tensor]:
    images, labels = _uci_digits()
    x = torch.tensor(images, dtype=torch.float32)[:, None] / 16.0                     # (1797, 1, 8, 8)
    x = F.interpolate(x, scale_factor=DIGIT // 8, mode="bilinear", align_corners=False)[:, 0]
    return x.clamp(0, 1), torch.tensor(labels, dtype=torch.int64)                      # (1797, 16, 16)


@functools.lru_cache(maxsize=1)
def _uci_digits():
    """(images (1797, 8, 8), labels) of the UCI digits, as scikit-learn's load_digits gives them: read from the
    digits.csv.gz its wheel ships (64 pixel columns, then the label) without importing scikit-learn, whose import
    (scipy and all) took 2-4 s of every process's first run, the app's and `masklab train`'s included; through
    load_digits where that file is not where this version of scikit-learn keeps it. Read once a process."""
    spec = importlib.util.find_spec("sklearn")
    try:
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        if table.shape != (1797, 65):
            raise ValueError(f"{path}: {table.shape}")
        return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)
    except (AttributeError, IndexError, OSError, TypeError, ValueError):
        from sklearn.datasets import load_digits
        d = load_digits()
        return d.images, d.target


def _paste(canvas: Tensor, patch: Tensor, y0: Tensor, x0: Tensor) -> None:
    """canvas[b, y0:y0+h, x0:x0+w] = max(canvas, patch[b]) for every b at once. canvas (B, H, W), patch (B, h, w)."""
    b, r, c = window_index(patch.shape[0], patch.shape[1], patch.shape[2], y0, x0, canvas.device)
    canvas[b, r, c] = torch.maximum(canvas[b, r, c], patch)


def window_index(n, h, w, y0, x0, device):
    """(b, r, c) that index an h x w window at (y0[i], x0[i]) of each of n images: t[b, r, c] is (n, h, w)."""
    b = torch.arange(n, device=device)[:, None, None]
    r = (y0[:, None] + torch.arange(h, device=device))[:, :, None]
    c = (x0[:, None] + torch.arange(w, device=device))[:, None, :]
    return b, r, c


class ClutteredDigits:
    """Draws cluttered-digit images from a fixed pool of 16x16 source digits."""

    def __init__(self, digits: Tensor, labels: Tensor, canvas: int, clutter: int):
        self.digits, self.labels, self.canvas, self.clutter = digits, labels, canvas, clutter

    def to(self, device):
        self.digits, self.labels = self.digits.to(device), self.labels.to(device)

    def batch(self, n, generator):
        x, y, _, _ = self.draw(n, generator)
        return x, y

    def draw(self, n: int, generator: torch.Generator, order: Tensor | None = None):
        """(x (n,1,S,S), y, boxes (n,4), ink (n,1,S,S)); `order` picks the source digits instead of at random."""
        dev, S, N = self.digits.device, self.canvas, len(self.digits)
        rand = lambda hi, shape: torch.randint(0, hi, shape, generator=generator, device=dev)
        idx = order.to(dev) if order is not None else rand(N, (n,))
        canvas = torch.zeros(n, S, S, device=dev)
        for _ in range(self.clutter):                  # fragments of other digits, pasted first
            src = rand(N, (n,))
            oy, ox = rand(DIGIT - FRAGMENT + 1, (n,)), rand(DIGIT - FRAGMENT + 1, (n,))
            b, r, c = window_index(n, FRAGMENT, FRAGMENT, oy, ox, dev)
            fragment = self.digits[src[:, None, None], r, c]                  # (n, 6, 6)
            _paste(canvas, fragment, rand(S - FRAGMENT + 1, (n,)), rand(S - FRAGMENT + 1, (n,)))
        y0, x0 = rand(S - DIGIT + 1, (n,)), rand(S - DIGIT + 1, (n,))
        digit = self.digits[idx]                                              # (n, 16, 16)
        _paste(canvas, digit, y0, x0)
        ink = torch.zeros(n, S, S, dtype=torch.bool, device=dev)
        b, r, c = window_index(n, DIGIT, DIGIT, y0, x0, dev)
        ink[b, r, c] = digit > INK
        boxes = torch.stack([x0, y0, x0 + DIGIT, y0 + DIGIT], 1).float()
        return canvas[:, None], self.labels[idx], boxes, ink[:, None]


def cluttered_digits(cfg) -> Dataset:
    digits, labels = source_digits()
    train_idx, test_idx = stratified_split(labels, 0.2, SPLIT_SEED)
    train = ClutteredDigits(digits[train_idx], labels[train_idx], cfg.canvas, cfg.clutter)
    test_pool = ClutteredDigits(digits[test_idx], labels[test_idx], cfg.canvas, cfg.clutter)
    n = cfg.test_size or 2 * len(test_idx)
    g = torch.Generator().manual_seed(TEST_SEED)
    order = torch.arange(n) % len(test_idx)           # every test digit used about equally often
    x, y, boxes, ink = test_pool.draw(n, g, order=order[torch.randperm(n, generator=g)])
    return Dataset("cluttered-digits", [str(i) for i in range(10)], 1, (cfg.canvas, cfg.canvas),
                   TestSet(x, y, boxes, ink), train)


# --- synthetic RGB shapes ----------------------------------------------------------------------------------

SHAPES = ["disk", "square", "triangle", "cross"]


class Shapes:
    """Coloured shapes on smooth texture with two distractor blobs; generated on the fly."""

    def __init__(self, canvas: int):
        self.canvas, self.device = canvas, torch.device("cpu")

    def to(self, device):
        self.device = torch.device(device)

    def batch(self, n, generator):
        x, y, _, _ = self.draw(n, generator)
        return x, y

    def draw(self, n: int, generator: torch.Generator):
        dev, S = self.device, self.canvas
        u = lambda *shape: torch.rand(shape, generator=generator, device=dev)
        y = torch.randint(0, len(SHAPES), (n,), generator=generator, device=dev)
        r = (0.11 + 0.06 * u(n)) * S                                       # radius: 11-17% of the canvas
        cy, cx = [r + u(n) * (S - 1 - 2 * r) for _ in range(2)]
        grid = torch.arange(S, device=dev, dtype=torch.float32)
        yy, xx = grid[None, :, None], grid[None, None, :]
        dy, dx = yy - cy[:, None, None], xx - cx[:, None, None]
        rr = r[:, None, None]
        masks = torch.stack([
            dx ** 2 + dy ** 2 <= rr ** 2,
            (dx.abs() <= 0.8 * rr) & (dy.abs() <= 0.8 * rr),
            (dy >= -rr) & (dy <= rr) & (dx.abs() <= 0.6 * (dy + rr)),
            ((dx.abs() <= rr / 3) & (dy.abs() <= rr)) | ((dy.abs() <= rr / 3) & (dx.abs() <= rr)),
        ], 1)                                                               # (n, 4, S, S)
        obj = masks[torch.arange(n, device=dev), y]                         # (n, S, S)
        texture = F.interpolate(u(n, 3, 6, 6), size=(S, S), mode="bilinear", align_corners=False)
        x = 0.15 + 0.4 * texture + 0.05 * u(n, 3, S, S)
        for _ in range(2):                                                  # distractor blobs, 4x4
            by, bx = (u(n) * (S - 4)).long(), (u(n) * (S - 4)).long()
            blob = torch.zeros(n, S, S, dtype=torch.bool, device=dev)
            b, rws, cls = window_index(n, 4, 4, by, bx, dev)
            blob[b, rws, cls] = True
            x = torch.where(blob[:, None] & ~obj[:, None], u(n, 3, 1, 1), x)
        colour = 0.3 + 0.7 * u(n, 3, 1, 1)
        colour[torch.arange(n, device=dev), torch.randint(0, 3, (n,), generator=generator, device=dev)] = 1.0
        x = torch.where(obj[:, None], colour, x).clamp(0, 1)
        rows, cols = obj.any(2), obj.any(1)                                  # (n, S)
        first = lambda m: m.float().argmax(1)
        last = lambda m: S - first(m.flip(1))
        boxes = torch.stack([first(cols), first(rows), last(cols), last(rows)], 1).float()
        return x, y, boxes, obj[:, None]


def shapes(cfg) -> Dataset:
    n = cfg.test_size or 1000
    x, y, boxes, ink = Shapes(cfg.canvas).draw(n, torch.Generator().manual_seed(TEST_SEED))
    return Dataset("shapes", list(SHAPES), 3, (cfg.canvas, cfg.canvas), TestSet(x, y, boxes, ink),
                   Shapes(cfg.canvas))
