"""Small PNG charts drawn with Pillow alone (no plotting dependency): scatter, lines and an image grid.

Used by the benchmark to write its figures; the app draws its own interactive charts with plotly.
"""
from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont

PALETTE = ["#4c78a8", "#e45756", "#f58518", "#72b7b2", "#54a24b", "#b279a2", "#eeca3b", "#9d755d", "#bab0ac"]


def _font(size: int = 13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:                                   # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 2.5, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


class Axes:
    """A plot area with linear axes, ticks, labels and a legend; data coordinates in, pixels out."""

    def __init__(self, xlim, ylim, title="", xlabel="", ylabel="", size=(720, 460)):
        self.img = Image.new("RGB", size, "white")
        self.draw = ImageDraw.Draw(self.img)
        self.box = (70, 40, size[0] - 190, size[1] - 55)     # left, top, right, bottom
        self.xlim, self.ylim = xlim, ylim
        self.legend: list[tuple[str, str]] = []
        self._frame(title, xlabel, ylabel)

    def px(self, x: float, y: float) -> tuple[float, float]:
        (l, t, r, b), (x0, x1), (y0, y1) = self.box, self.xlim, self.ylim
        return l + (x - x0) / (x1 - x0 or 1) * (r - l), b - (y - y0) / (y1 - y0 or 1) * (b - t)

    def _frame(self, title, xlabel, ylabel):
        d, (l, t, r, b), f = self.draw, self.box, _font()
        for x in _ticks(*self.xlim):
            X, _ = self.px(x, self.ylim[0])
            d.line([(X, t), (X, b)], fill="#eeeeee")
            d.text((X, b + 6), f"{x:g}", fill="black", font=f, anchor="mt")
        for y in _ticks(*self.ylim):
            _, Y = self.px(self.xlim[0], y)
            d.line([(l, Y), (r, Y)], fill="#eeeeee")
            d.text((l - 6, Y), f"{y:g}", fill="black", font=f, anchor="rm")
        d.rectangle([l, t, r, b], outline="black")
        d.text(((l + r) / 2, 12), title, fill="black", font=_font(15), anchor="mt")
        d.text(((l + r) / 2, b + 30), xlabel, fill="black", font=f, anchor="mt")
        d.text((8, t - 22), ylabel, fill="black", font=f)

    def points(self, xs, ys, colour, label=None, radius=4):
        for x, y in zip(xs, ys):
            X, Y = self.px(x, y)
            self.draw.ellipse([X - radius, Y - radius, X + radius, Y + radius], fill=colour, outline="black")
        if label:
            self.legend.append((label, colour))

    def line(self, xs, ys, colour, label=None, width=2, dashed=False):
        pts = [self.px(x, y) for x, y in zip(xs, ys)]
        if dashed:
            for a, b in list(zip(pts, pts[1:]))[::2]:
                self.draw.line([a, b], fill=colour, width=width)
        elif len(pts) > 1:
            self.draw.line(pts, fill=colour, width=width)
        if label:
            self.legend.append((label, colour))

    def image(self) -> Image.Image:
        x, y, f = self.box[2] + 15, self.box[1], _font()
        for label, colour in self.legend:
            self.draw.rectangle([x, y + 2, x + 12, y + 14], fill=colour, outline="black")
            self.draw.text((x + 18, y), label, fill="black", font=f)
            y += 20
        return self.img


def limits(values, pad=0.05, floor=None, ceil=None) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)] or [0.0, 1.0]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    lo, hi = lo - pad * span, hi + pad * span
    return (max(lo, floor) if floor is not None else lo, min(hi, ceil) if ceil is not None else hi)


def image_grid(rows: list[list[Image.Image]], row_labels: list[str], cell: int = 72, label_width: int = 130):
    """Rows of equally sized tiles, each row labelled on the left."""
    cols = max(len(r) for r in rows)
    grid = Image.new("RGB", (label_width + cols * (cell + 4), len(rows) * (cell + 4) + 4), "white")
    d, f = ImageDraw.Draw(grid), _font()
    for i, (row, label) in enumerate(zip(rows, row_labels)):
        y = 4 + i * (cell + 4)
        d.text((6, y + cell / 2), label, fill="black", font=f, anchor="lm")
        for j, tile in enumerate(row):
            grid.paste(tile.resize((cell, cell), Image.NEAREST), (label_width + j * (cell + 4), y))
    return grid
