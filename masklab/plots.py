"""The static (PNG) figures, drawn with matplotlib: accuracy against area (a log-scaled area axis), the area
curves of training, a grid of masked images and the benchmark's accuracy-vs-area front.

Each function takes plain data gathered by its caller (masklab.bench) and returns a matplotlib Figure; `save`
writes one as a PNG. matplotlib is imported when a figure is drawn, not with masklab, and the figures are made
without pyplot (matplotlib's Agg canvas renders them on save: no window, no global figure list that a long
benchmark would fill). The colours are the app's (masklab.figures.PALETTE).
"""
from __future__ import annotations

import math
from pathlib import Path

from .figures import PALETTE
from .metrics import pareto

REFERENCE = "gray"        # lines that are not a method: a Pareto front, an area target
MARKERS = "os^D"          # a second cue once the methods outnumber the palette's colours


def _figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), layout=layout)


def save(fig, path: Path) -> Path:
    """Write `fig` to `path` as a PNG at 110 dpi, trimmed to what is drawn."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)


def _log_area_axis(ax, label: str, subs=(1.0, 2.0, 5.0)) -> None:
    """A log-scaled area axis with labelled ticks (in percent) at `subs` of each decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(label)
    ax.grid(True, which="major", alpha=0.3)


def pareto_plot(rows: list[dict]):
    """accuracy_hard against area for every run (a colour per method, in the order the rows name them), and the
    Pareto front of the runs that did not collapse, dashed. The area axis is logarithmic so that masks keeping
    under 10% of the pixels spread out; it starts at half the decade of the smallest area above 0, and an area
    of 0 (a collapsed mask) is drawn there, at the dotted line."""
    rows = [r for r in rows if r.get("area") is not None and r.get("accuracy_hard") is not None]
    floor = 10 ** math.floor(math.log10(min((r["area"] for r in rows if r["area"] > 0), default=1.0))) / 2
    fig = _figure(8, 4.8)
    ax = fig.add_subplot()
    at = lambda r: max(r["area"], floor)
    for i, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        group = [r for r in rows if r["method"] == method]
        ax.scatter([at(r) for r in group], [r["accuracy_hard"] for r in group], s=32, label=method, zorder=3,
                   color=PALETTE[i % len(PALETTE)], marker=MARKERS[i // len(PALETTE) % len(MARKERS)],
                   edgecolor="black", linewidth=0.5)
    front = pareto(rows)                                      # less area, more accuracy; collapsed runs left out
    ax.plot([at(r) for r in front], [r["accuracy_hard"] for r in front], "--", color=REFERENCE, linewidth=1,
            label="Pareto front", zorder=2)
    _log_area_axis(ax, "area (fraction of pixels kept, log scale)")
    ax.set_xlim(floor / 1.4, 1.4)
    collapsed = dict.fromkeys(r["method"] for r in rows if r["area"] < floor)
    if collapsed:
        ax.axvline(floor, color=REFERENCE, linewidth=0.8, linestyle=":")
        ax.annotate("area 0 (collapsed):\n" + "\n".join(collapsed), (floor, 0.5), xytext=(4, 0), fontsize=7,
                    xycoords=("data", "axes fraction"), textcoords="offset points", color=REFERENCE, va="center")
    ax.set_ylabel("accuracy_hard")
    ax.set_title("Accuracy vs area kept; front without collapsed runs")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return fig


def area_curves(curves: dict[str, list[dict]], target: list[dict] | None = None):
    """Mask area of the training batch against step, a line per run (`curves`: label -> records with step and
    area, as metrics.csv holds them); `target`'s records' area target dashed."""
    fig = _figure(8, 4.6)
    ax = fig.add_subplot()
    for i, (label, records) in enumerate(curves.items()):
        ax.plot([r["step"] for r in records], [r["area"] for r in records], color=PALETTE[i % len(PALETTE)],
                linewidth=1.8, label=f"{label} area")
    if target:
        ax.plot([r["step"] for r in target], [r["target"] for r in target], "--", color=REFERENCE, linewidth=1,
                label="target (default)")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel("step")
    ax.set_ylabel("area (hard mask, training batch)")
    ax.set_title("Mask area during training (seed 0)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def image_grid(rows: list[list], labels: list[str], cell: float = 0.8, titles: list[str] | None = None):
    """Rows of equally sized tiles (PIL images or arrays), each row labelled on its left, each column titled with
    `titles` (if given) above the first row; `cell`: inches a tile."""
    import numpy as np
    cols = max((len(r) for r in rows), default=0)
    fig = _figure(1.4 + cell * max(cols, 1), cell * max(len(rows), 1))
    if not rows:
        fig.text(0.5, 0.5, "no run folders to show", ha="center", va="center")
        return fig
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)
    for axes, row, label in zip(fig.subplots(len(rows), cols, squeeze=False), rows, labels):
        for ax, tile in zip(axes, row):
            ax.imshow(np.asarray(tile), interpolation="nearest")
        for ax in axes:
            ax.set(xticks=[], yticks=[])
            ax.spines[:].set_visible(False)
        axes[0].set_ylabel(label, rotation=0, ha="right", va="center")
    for ax, title in zip(fig.axes[:cols], titles or []):
        ax.set_title(title, fontsize=8)
    return fig


def front_plot(frame):
    """accuracy_hard against area (log scale) from a front.csv frame: every run of the method (the default, or the
    preset the front ran) as a dot, each area target's mean as a line; the oracles as stars."""
    from .config import DEFAULT_PRESET
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    learned = frame[frame.area_target.notna()]
    method = learned.method.iloc[0] if len(learned) else DEFAULT_PRESET
    who = "default" if method == DEFAULT_PRESET else method
    ax.scatter(learned.area, learned.accuracy_hard, s=14, alpha=0.5, color=PALETTE[1], label=f"{who}, each seed")
    mean = learned.groupby("area_target")[["area", "accuracy_hard"]].mean()
    ax.plot(mean.area, mean.accuracy_hard, "-o", color=PALETTE[1], label=f"{who}, mean per area target")
    for method, colour in (("oracle-ink", PALETTE[0]), ("oracle-box", PALETTE[4])):
        o = frame[frame.method == method]
        if len(o):
            ax.scatter(o.area, o.accuracy_hard, marker="*", s=160, color=colour, label=f"{method}, each seed")
    _log_area_axis(ax, "area (fraction of pixels kept, log scale)", subs=range(1, 10))   # spans about a decade
    ax.set_ylabel("accuracy_hard")
    ax.set_title(f"Accuracy vs area kept: {'the default' if who == 'default' else who} at five area targets, "
                 "and the oracles")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def curves_png(records, width: float = 12.0) -> bytes:
    """A run's training curves as a PNG, in the six panels of the app's interactive figure
    (masklab.figures.PANELS). While a run trains the Train page shows this image instead of the plotly figure:
    the browser only decodes an image, where laying out six plotly subplots every redraw cost the training
    thread's cores (tools/app_throughput.py)."""
    return LiveCurves(width)(records)


class LiveCurves:
    """curves_png for one live run, redrawn in place: the figure, its axes and lines are built once and later
    calls only replace the data (half the CPU of a new figure; ticks and text are most of what is left)."""

    def __init__(self, width: float = 12.0):
        from .figures import PANELS
        self.fig = _figure(width, width * 0.36, layout=None)     # a fixed layout: constrained doubles the time
        self.fig.subplots_adjust(left=0.05, right=0.99, top=0.93, bottom=0.07, wspace=0.2, hspace=0.35)
        self.lines = []
        for ax, (title, fields) in zip(self.fig.subplots(2, 3).flat, PANELS):
            for i, field in enumerate(fields):
                line, = ax.plot([], [], color=PALETTE[i], linewidth=1.4, label=field, markersize=3,
                                linestyle=":" if field == "target" else "-")
                self.lines.append((field, line))
            ax.set_title(title, fontsize=10, y=1.0)       # a fixed y: no placing it above the ticks each draw
            ax.tick_params(labelsize=8)
            ax.locator_params(nbins=4)              # matplotlib's time goes to making ticks: few of them
            ax.grid(True, alpha=0.3)
            if len(fields) > 1:
                ax.legend(fontsize=7, loc="upper right", frameon=False)

    def __call__(self, records) -> bytes:
        steps = [r.step for r in records]
        for field, line in self.lines:
            line.set_data(steps, [getattr(r, field) for r in records])
            line.set_marker("o" if len(records) < 12 else "None")
        for ax in self.fig.axes:
            ax.relim()
            ax.autoscale_view()
        return _png(self.fig)


def histograms_png(snapshot, snapshots, threshold: float = 0.5, width: float = 12.0) -> bytes:
    """The mask-value histogram at `snapshot` and its evolution over `snapshots` (darker = more pixels), as the
    app's interactive histograms_figure draws them, as a PNG for a live run (see curves_png)."""
    return LiveHistograms(len(snapshot.histogram), threshold, width)(snapshot, snapshots)


class LiveHistograms:
    """histograms_png for one live run, redrawn in place like LiveCurves: the bars, the heat map and the text are
    built once; later calls set the bars' heights, the heat map's data and extent, and the title."""

    def __init__(self, bins: int, threshold: float = 0.5, width: float = 12.0):
        import numpy as np
        self.fig = _figure(width, width * 0.25, layout=None)
        self.fig.subplots_adjust(left=0.06, right=0.99, top=0.88, bottom=0.17, wspace=0.15)
        self.now, self.over = self.fig.subplots(1, 2)
        self.bars = self.now.bar((np.arange(bins) + 0.5) / bins, np.zeros(bins), width=0.9 / bins, color=PALETTE[0])
        self.now.axvline(threshold, color=REFERENCE, linestyle=":")
        self.now.set(xlim=(0, 1), xlabel="m_eval", ylabel="fraction of pixels")
        self.heat = None                            # the heat map, from the second snapshot on
        self.over.set_title("mask values over training (darker = more pixels)", fontsize=10, y=1.0)
        self.over.set(xlabel="step", ylabel="m_eval", ylim=(0, 1))

    def __call__(self, snapshot, snapshots) -> bytes:
        import numpy as np
        for bar, height in zip(self.bars, snapshot.histogram):
            bar.set_height(height)
        self.now.relim()
        self.now.autoscale_view(scalex=False)
        self.now.set_title(f"mask values at step {snapshot.step}", fontsize=10, y=1.0)
        if len(snapshots) > 1:
            z = np.sqrt(np.stack([s.histogram for s in snapshots], axis=1))          # (bins, snapshots)
            extent = (snapshots[0].step, snapshots[-1].step, 0, 1)
            if self.heat is None:
                self.heat = self.over.imshow(z, origin="lower", aspect="auto", cmap="Reds", vmin=0,
                                             interpolation="nearest", extent=extent)
            else:
                self.heat.set_data(z)
                self.heat.set_extent(extent)
                self.heat.set_clim(0, z.max())
            self.over.set_ylim(0, 1)
        return _png(self.fig)


def _png(fig, dpi: int = 80) -> bytes:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
