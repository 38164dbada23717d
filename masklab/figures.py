"""The app's interactive figures (plotly), built from plain data: no Streamlit here, one palette.

Training curves, mask-value histograms, accuracy against area, the loss explorer's four panels and the sweep
heatmaps. Pages only place them; the benchmark's static PNGs use the same palette (masklab.plots).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .views import BINS, Snapshot
from .metrics import pareto

PALETTE = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
PANELS = [("loss", ("loss", "ce", "mask_loss")), ("accuracy (training batch)", ("accuracy",)),
          ("area kept", ("area", "area_expected", "target")), ("bimodality", ("bimodality",)),
          ("multiplier μ", ("multiplier",)), ("temperature τ", ("temperature",))]


def curves_figure(runs: dict[str, tuple]) -> go.Figure:
    """Training curves in six panels; one run: every series of a panel; several: the panel's first series per run."""
    fig = make_subplots(rows=2, cols=3, subplot_titles=[p[0] for p in PANELS], horizontal_spacing=0.06,
                        vertical_spacing=0.16)
    single, seen = len(runs) == 1, set()
    for p, (_, fields) in enumerate(PANELS):
        for r, (name, records) in enumerate(runs.items()):
            for f, field in enumerate(fields if single else fields[:1]):
                label = field if single else name
                legend = label not in seen and (len(fields) > 1 or not single)   # panel titles name the rest
                fig.add_trace(_series(records, field, label, PALETTE[(f if single else r) % len(PALETTE)], legend),
                              row=p // 3 + 1, col=p % 3 + 1)
                seen.add(label)
    fig.update_layout(height=500, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0))
    return fig


def _series(records, field: str, label: str, colour: str, legend: bool) -> go.Scatter:
    return go.Scatter(x=[r.step for r in records], y=[getattr(r, field) for r in records], name=label,
                      mode="lines+markers" if len(records) < 12 else "lines", legendgroup=label, showlegend=legend,
                      line=dict(color=colour, dash="dot" if field == "target" else None))


def histogram_figure(fractions: np.ndarray, title: str, threshold: float = 0.5) -> go.Figure:
    """Bar chart of the fraction of mask values per bin (BINS over [0, 1]); a bimodal mask has two bars at
    the ends, a dotted line marks the threshold of the hard mask."""
    centres = (np.arange(BINS) + 0.5) / BINS
    fig = go.Figure(go.Bar(x=centres, y=fractions, width=1 / BINS * 0.9, marker_color="#d62728"))
    fig.add_vline(x=threshold, line_dash="dot")
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=40, b=10), title=title, xaxis_title="m_eval",
                      yaxis_title="fraction of pixels", xaxis_range=[0, 1])
    return fig


def histograms_figure(snapshot: Snapshot, snapshots: tuple[Snapshot, ...], threshold: float = 0.5) -> go.Figure:
    """Left: the mask-value histogram at this snapshot. Right: the histogram over training as a heatmap (darker
    = more pixels); a mask turning binary shows as mass leaving the middle rows for the top and bottom ones."""
    centres = (np.arange(BINS) + 0.5) / BINS
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=[
        f"mask values at step {snapshot.step}", "mask values over training (darker = more pixels)"])
    fig.add_trace(go.Bar(x=centres, y=snapshot.histogram, width=0.9 / BINS, marker_color="#d62728",
                         showlegend=False), row=1, col=1)
    fig.add_vline(x=threshold, line_dash="dot", row=1, col=1)
    if len(snapshots) > 1:
        z = np.sqrt(np.stack([s.histogram for s in snapshots], axis=1))         # (BINS, snapshots)
        fig.add_trace(go.Heatmap(x=[s.step for s in snapshots], y=centres, z=z, zmin=0, showscale=False,
                                 colorscale=[[0, "#ffffff"], [1, "#8b0000"]],
                                 hovertemplate="step %{x}<br>m ≈ %{y:.2f}<extra></extra>"), row=1, col=2)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_xaxes(title_text="m_eval", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="fraction of pixels", row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=2)
    fig.update_yaxes(title_text="m_eval", range=[0, 1], row=1, col=2)
    return fig


def pareto_figure(rows: list[dict], selected: list[str]) -> go.Figure:
    """Test accuracy against area kept for every finished run (x: collapsed), the Pareto front of the runs that
    did not collapse (more accuracy for less area) as a line, the selected runs in red."""
    done = [r for r in rows if r.get("created") and r.get("area") is not None and r.get("accuracy") is not None]
    pts = sorted((r["area"], r["accuracy"], r["run"], bool(r.get("collapsed"))) for r in done)
    front = [(r["area"], r["accuracy"]) for r in pareto(done, accuracy="accuracy")]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name="runs",
                             text=[p[2] for p in pts], hovertemplate="%{text}<br>area %{x:.1%}<br>acc %{y:.1%}",
                             marker=dict(size=[14 if p[2] in selected else 9 for p in pts],
                                         symbol=["x" if p[3] else "circle" for p in pts],
                                         color=["#d62728" if p[2] in selected else "#1f77b4" for p in pts])))
    fig.add_trace(go.Scatter(x=[p[0] for p in front], y=[p[1] for p in front], mode="lines", name="Pareto front",
                             line=dict(dash="dot", color="gray", shape="hv")))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="area kept (test)",
                      yaxis_title="accuracy on x · hard mask (test)", xaxis_tickformat=".0%", yaxis_tickformat=".0%")
    return fig


# --- loss explorer ----------------------------------------------------------------------------------------

FLOOR = 1e-6        # |gradient| is drawn on a log axis: zeros sit on this floor, inside shaded dead zones


def _axes(title: str, x: str, y: str, log: bool = False) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), title=title, xaxis_title=x, yaxis_title=y,
                      legend=dict(orientation="h", y=-0.25))
    if log:
        fig.update_yaxes(type="log", exponentformat="power")
    return fig


def explorer_figures(methods: list, knobs) -> list[go.Figure]:
    """Four figures: loss and |gradient| against the mask value, and against the logit through the gate
    (dashed: the gate's slope dm/dl, which every gradient, cross-entropy's too, is multiplied by)."""
    from masklab.explain import against_logit, against_mask
    figs = [_axes("mask loss per pixel vs m", "mask value m", "loss"),
            _axes("|dL/dm| vs m", "mask value m", "|dL/dm|", log=True),
            _axes("mask loss per pixel vs logit (through the gate)", "logit l", "loss"),
            _axes("|dL/dl| vs logit: where gradients die", "logit l", "|dL/dl|", log=True)]
    for i, method in enumerate(methods):
        colour, name = PALETTE[i % len(PALETTE)], method.preset
        on_m, on_l = against_mask(method, knobs), against_logit(method, knobs)
        if on_m is not None:
            figs[0].add_scatter(x=on_m.x, y=on_m.loss, name=name, line_color=colour)
            figs[1].add_scatter(x=on_m.x, y=np.maximum(np.abs(on_m.grad), FLOOR), name=name, line_color=colour)
        figs[2].add_scatter(x=on_l.x, y=on_l.loss, name=name, line_color=colour)
        figs[3].add_scatter(x=on_l.x, y=np.maximum(np.abs(on_l.grad), FLOOR), name=name, line_color=colour)
        figs[3].add_scatter(x=on_l.x, y=np.maximum(np.abs(on_l.slope), FLOOR), name=f"{name}: gate slope dm/dl",
                            line=dict(color=colour, dash="dot", width=1))
        for lo, hi in on_l.dead:
            if hi > lo:
                figs[3].add_vrect(x0=lo, x1=hi, fillcolor=colour, opacity=0.08, line_width=0,
                                  annotation_text=f"{name}: zero gradient", annotation_position="top left")
    return figs


# --- sweeps -----------------------------------------------------------------------------------------------

SWEEP_METRICS = {"accuracy_hard": "accuracy (hard mask)", "area": "area kept", "bimodality": "bimodality"}


def sweep_heatmap(rows: list[dict], x: str, y: str, metric: str) -> go.Figure:
    """Mean of `metric` over trials (seeds, samples) per (x, y) cell; ✕ marks cells where a trial collapsed, to an
    all-0 mask (keeps nothing) or an all-1 mask (keeps everything: no sparsity)."""
    xs = sorted({r[x] for r in rows if r.get(x) is not None}, key=_order)
    ys = sorted({r[y] for r in rows if r.get(y) is not None}, key=_order) if y != x else [""]
    z = np.full((len(ys), len(xs)), np.nan)
    marks = [["" for _ in xs] for _ in ys]
    for j, yv in enumerate(ys):
        for i, xv in enumerate(xs):
            cell = [r for r in rows if r.get(x) == xv and (y == x or r.get(y) == yv)]
            values = [r[metric] for r in cell if isinstance(r.get(metric), (int, float))]
            if values:
                z[j, i] = float(np.mean(values))
            collapsed = [r for r in cell if r.get("collapsed") in (True, "True")]
            if collapsed:
                ends = {"all-0" if (r.get("area") or 0) < 0.5 else "all-1" for r in collapsed}
                marks[j][i] = "✕ " + "/".join(sorted(ends))
    text = [[(f"{z[j, i]:.3f}" if np.isfinite(z[j, i]) else "") + (f"<br>{marks[j][i]}" if marks[j][i] else "")
             for i in range(len(xs))] for j in range(len(ys))]
    fig = go.Figure(go.Heatmap(x=[str(v) for v in xs], y=[str(v) for v in ys], z=z, text=text,
                               texttemplate="%{text}", colorscale="RdBu" if metric != "area" else "Blues",
                               zmin=0, zmax=1, hovertemplate=f"{x} %{{x}}<br>{y} %{{y}}<br>{metric} %{{z:.3f}}"
                                                             "<extra></extra>"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), title=SWEEP_METRICS.get(metric, metric),
                      xaxis_title=x, yaxis_title=y if y != x else "", xaxis_type="category", yaxis_type="category")
    return fig


def _order(v):
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))
