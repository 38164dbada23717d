"""The static figures (masklab.plots): what each one shows, drawn from made-up rows without training."""
import io
import subprocess
import sys

import numpy as np
import pandas as pd
from PIL import Image

from masklab import plots
from masklab.figures import PALETTE


def _rows():
    runs = [("unmasked", 1.0, 0.96), ("hard-concrete", 0.045, 0.93), ("hard-concrete", 0.05, 0.95),
            ("ste", 0.03, 0.86), ("ste", 0.06, 0.90), ("seed", 0.0, 0.10)]
    return [{"method": m, "area": a, "accuracy_hard": acc, "collapsed": a == 0.0} for m, a, acc in runs]


def test_pareto_plot_has_a_log_area_axis_that_spreads_the_small_areas():
    """Areas of 3% and 5% are far apart on the log axis; a collapsed run (area 0) sits on the axis's floor, below
    every real area, and its method is named there."""
    fig = plots.pareto_plot(_rows())
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    assert 0 < lo < 0.03 and hi >= 1.0
    assert (np.log10(0.05) - np.log10(0.03)) / (np.log10(hi) - np.log10(lo)) > 0.08     # linear: 0.02 of the width
    seed = next(c for c in ax.collections if c.get_label() == "seed")
    floor = seed.get_offsets()[0][0]
    assert lo < floor < 0.03
    assert any("seed" in t.get_text() and "collapsed" in t.get_text() for t in ax.texts)


def test_pareto_plot_colours_methods_from_the_apps_palette_and_dashes_the_front():
    fig = plots.pareto_plot(_rows())
    ax = fig.axes[0]
    methods = [c.get_label() for c in ax.collections]
    assert methods == ["unmasked", "hard-concrete", "ste", "seed"]
    colours = [c.get_facecolor()[0] for c in ax.collections]
    from matplotlib.colors import to_rgba
    assert [to_rgba(c) for c in PALETTE[:4]] == [tuple(c) for c in colours]
    front = next(line for line in ax.lines if line.get_label() == "Pareto front")
    assert front.get_linestyle() == "--"
    assert list(front.get_xdata()) == [0.03, 0.045, 0.05, 1.0]  # not the dominated ste run, not the collapsed one


def test_pareto_plot_legend_is_outside_the_data():
    """The legend sits right of the axes, so it covers no point."""
    fig = plots.pareto_plot(_rows())
    fig.draw_without_rendering()                                  # lays the figure out as saving would
    ax = fig.axes[0]
    legend, box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= box.x1


def test_area_curves_draws_a_line_per_run_and_the_target_dashed():
    curve = [{"step": s, "area": 1 - s / 200, "target": max(0.05, 1 - s / 100)} for s in range(0, 101, 25)]
    fig = plots.area_curves({"seed": curve, "hard-concrete": curve}, curve)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert set(lines) == {"seed area", "hard-concrete area", "target (default)"}
    assert lines["target (default)"].get_linestyle() == "--"
    assert list(lines["target (default)"].get_ydata()) == [r["target"] for r in curve]


def test_image_grid_labels_each_row_and_shows_each_tile(tmp_path):
    tiles = [[Image.new("RGB", (12, 12), (255, 0, 0))] * 3, [Image.new("RGB", (12, 12), (0, 0, 255))] * 2]
    fig = plots.image_grid(tiles, ["red", "blue"])
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["red", "blue"]
    assert sum(len(ax.images) for ax in fig.axes) == 5
    path = plots.save(fig, tmp_path / "grid.png")
    assert Image.open(path).size[0] > 300
    assert plots.image_grid([], []).texts                         # no run folder: says so rather than failing


def test_front_plot_is_log_scaled_with_the_oracles_as_stars():
    frame = pd.DataFrame([{"method": "hard-concrete", "area_target": t, "area": t, "accuracy_hard": 0.9 + t}
                          for t in (0.02, 0.05, 0.11)] + [{"method": "oracle-ink", "area_target": None, "area": 0.05,
                                                           "accuracy_hard": 0.98}])
    ax = plots.front_plot(frame).axes[0]
    assert ax.get_xscale() == "log"
    assert [c.get_label() for c in ax.collections] == ["default, each seed", "oracle-ink, each seed"]


def test_importing_masklab_does_not_import_matplotlib():
    """matplotlib is imported when a figure is drawn, not with the library (the app never draws these)."""
    code = "import sys, masklab.bench, masklab.plots, masklab.sweep, masklab.cli; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() \
        == "False"


def _colours(png: bytes) -> set[tuple]:
    return {tuple(c) for c in np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).tolist()}


def _rgb(hex_colour: str) -> tuple:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def test_a_live_runs_curves_and_histograms_are_png_images_of_what_the_interactive_figures_show():
    """The Train page shows these while a run trains: six curve panels in the palette's colours, and the mask-value
    histogram beside its evolution (a heat map once there are two snapshots)."""
    from masklab.train import Record
    from masklab.views import BINS, Snapshot
    records = [Record(s, 2 / (s + 1), 1.0, 0.1, s / 100, 0.5, 0.5, 0.8, 0.1, 0.5, 0.3, s / 10)
               for s in range(0, 100, 10)]
    curves = plots.curves_png(records)
    assert Image.open(io.BytesIO(curves)).format == "PNG"
    assert {_rgb(PALETTE[0]), _rgb(PALETTE[1]), _rgb(PALETTE[2])} <= _colours(curves)    # loss, ce, mask_loss ...
    hist = np.zeros(BINS)
    hist[[0, -1]] = 0.5
    snaps = tuple(Snapshot(s, np.zeros((1, 2, 2), np.uint8), hist, 0.5) for s in (0, 10))
    two, one = plots.histograms_png(snaps[-1], snaps), plots.histograms_png(snaps[0], snaps[:1])
    assert _rgb(PALETTE[0]) in _colours(two)                                           # the bars
    assert len(_colours(two)) > len(_colours(one))                                     # + the heat map's reds
    assert Image.open(io.BytesIO(two)).size == Image.open(io.BytesIO(one)).size


def test_a_live_runs_redrawn_figures_give_the_images_a_fresh_drawing_gives():
    """The feed redraws one figure per run in place (LiveCurves, LiveHistograms): after drawing an earlier state of
    the run, the image of the latest state is the one a new figure draws, pixel for pixel (no stale bars, heat map
    range, axis limits or title)."""
    from masklab.train import Record
    from masklab.views import BINS, Snapshot
    records = [Record(s, 2 / (s + 1), 1.0, 0.1, s / 100, 0.5, 0.5, 0.8, 0.1, 0.5, 0.3, s / 10)
               for s in range(0, 200, 10)]
    rng = np.random.default_rng(0)
    snaps = []
    for s in range(0, 200, 10):
        hist = rng.random(BINS)
        hist[[0, -1]] += s / 2                      # from uniform to bimodal: the bars' range grows
        snaps.append(Snapshot(s, np.zeros((1, 2, 2), np.uint8), hist / hist.sum(), 0.5))
    curves, histograms = plots.LiveCurves(), plots.LiveHistograms(BINS)
    first = curves(records[:3]), histograms(snaps[0], snaps[:1]), histograms(snaps[4], snaps[:5])
    latest = curves(records), histograms(snaps[-1], snaps)
    fresh = plots.curves_png(records), plots.histograms_png(snaps[-1], snaps)
    for redrawn, new in zip(latest, fresh):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(redrawn))), np.asarray(Image.open(io.BytesIO(new))))
    assert not np.array_equal(np.asarray(Image.open(io.BytesIO(first[2]))), np.asarray(Image.open(io.BytesIO(latest[1]))))
    low, high = histograms.now.get_ylim()                     # the bars' axis follows the tallest bar
    assert low == 0 and snaps[-1].histogram.max() <= high < 1.2 * snaps[-1].histogram.max()
