"""Shared Streamlit helpers for the MaskLab pages: the process-wide run manager, config widgets bound to the URL,
and the figures and panels the pages compose. Pages stay short scripts over this module and over masklab;
masklab never imports Streamlit. Nothing here runs in a worker thread: pages poll RunViews.
"""
from __future__ import annotations

import io
import math
import runpy
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots
from PIL import Image

from masklab.checkpoint import CheckpointError, load_run
from masklab.config import CHECKPOINTS, DEFAULT_PRESET, FIELD_NAMES, HELP, KNOBS, PRESETS, Config, ConfigError, Knob
from masklab.data import open_data
from masklab.explain import Collapse, collapse
from masklab.gates import GATES
from masklab.images import ACCEPTED, overlay, run_mask, to_uint8
from masklab.live import BINS, PROBE, RunManager, RunView, Snapshot
from masklab.metrics import pareto

REFRESH_S = 1.0                 # live panels poll their run this often
DEMO = "demo"
MAX_LIVE = 2                    # concurrent trainings per server: they share the CPU
WORKER_THREADS = None           # torch intra-op threads while training (None: torch's default); see the report
APP = Path(__file__).resolve().parent / "app.py"
TRAIN_PAGE, RUNS_PAGE, INSPECT_PAGE = "pages/train.py", "pages/runs.py", "pages/inspect_masks.py"


def own_navigation() -> None:
    """Call first in app.py and in every page: app.py's st.navigation, never Streamlit's legacy pages/ folder.

    Streamlit decides once per server process (and AppTest on every run), before any script has run, that an
    app with a pages/ folder is a legacy multipage app; that first run would then execute the page the URL names
    (pages/train.py for /train) on its own, under a sidebar listing the folder. st.navigation turns the legacy
    mode off, but only once app.py runs: so the first run turns it off itself and runs app.py in its place, in
    the same run (widget values, the URL and its query are kept), then stops."""
    from streamlit.runtime.pages_manager import PagesManager
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(APP), run_name="__main__")
        st.stop()


@st.cache_resource(show_spinner=False, on_release=lambda m: m.shutdown())
def manager() -> RunManager:
    """The one RunManager of this server process, shared by every session and tab (it is thread-safe).

    Released (cache cleared) means stopped: its live runs stop and are saved rather than orphaned."""
    return RunManager(CHECKPOINTS, max_live=MAX_LIVE, threads=WORKER_THREADS)


# --- config widgets, bound to the URL ----------------------------------------------------------------------

METHOD_FIELDS = tuple(f for f in FIELD_NAMES if any(f in p for p in PRESETS.values()))
TRAINING_FIELDS = ("lr", "steps", "batch_size", "data", "seed", "device")


def field_widget(name: str):
    """The input widget of one Config field, keyed and URL-bound by the field's name (the same name as in
    config.json and on the CLI); its default is Config's, so the URL holds exactly cfg.to_query(). Its label,
    range, help formula and slider come from the field's Knob (masklab.config), as do Config's own checks."""
    knob, default = KNOBS[name], getattr(Config(), name)
    common = dict(label=knob.label or name.replace("_", " "), key=name, bind="query-params",
                  help=HELP[name] + (f"  \n{knob.formula}" if knob.formula else ""))
    if knob.choices:
        return st.selectbox(options=knob.choices, index=knob.choices.index(default), **common)
    if isinstance(default, bool):
        return st.toggle(value=default, **common)
    if isinstance(default, str):
        return st.text_input(value=default, **common)
    if not knob.slider:
        return _number_box(knob, default, common)
    slide, exact = st.columns([5, 1], vertical_alignment="bottom")
    with exact.popover("", icon=":material/edit:", help=f"Type an exact {common['label']}"):
        value = _number_box(knob, default, common)
    with slide:
        _slider(name, knob, value, common)
    return value


def _number_box(knob: Knob, default, common: dict):
    """A number input over the knob's range (where the range has an `off` value outside it, the low end is left
    to Config's check, which says why)."""
    lo, hi = knob.lo, knob.hi
    if isinstance(default, float):     # an open end: the nearest float inside it, so "> 0" refuses 0 and admits 1e-9
        lo = math.nextafter(lo, math.inf) if lo is not None and knob.lo_open else lo
        hi = math.nextafter(hi, -math.inf) if hi is not None and knob.hi_open else hi
    bounds = {"min_value": None if knob.off is not None else lo, "max_value": hi}
    if isinstance(default, int):
        bounds = {k: None if v is None else int(v) for k, v in bounds.items()}
        return st.number_input(value=default, step=int(knob.step or 1), **bounds, **common)
    # %g: 0.001 stays 0.001 (the default %0.2f would show 0.00) and 2/3 does not show all its 16 digits
    step = knob.step or (knob.span[0] if knob.slider == "log" else None)   # log: +/- moves by the span's low end
    floats = {k: None if v is None else float(v) for k, v in {**bounds, "step": step}.items()}
    return st.number_input(value=float(default), format="%g", **floats, **common)


def _slider(name: str, knob: Knob, value: float, common: dict) -> None:
    """A slider over the knob's values (log-spaced where it spans decades) that writes the field's number box:
    the box stays the one URL-bound widget, and its exact value is always one of the slider's stops."""
    key = f"{name}__slider"
    st.session_state[key] = value                  # follows the box (preset, URL, typed value)
    st.select_slider(common["label"], options=knob.stops(value), key=key, help=common["help"],
                     format_func=lambda v: knob.off_means if v == knob.off_value else f"{v:g}",
                     on_change=lambda: st.session_state.__setitem__(name, st.session_state[key]))


def method_knobs(gate: str, mask_loss: str, constraint: bool) -> list[str]:
    """The fields the chosen method actually uses, besides α, β, λ (always shown: they are the question's)."""
    knobs = []
    if constraint or mask_loss == "sorted_area":
        knobs += ["area_target", "warmup", "anneal_frac", "anneal"]
    if constraint:
        knobs += ["dual_lr", "area_floor", "finetune"]
    return knobs + list(GATES[gate].knobs if gate in GATES else ())


def apply_preset(name: str | None = None) -> None:
    """Callback: set every method field to preset `name` (default: the preset selectbox's choice); the
    training fields (steps, lr, data, ...) keep their values."""
    name = name or st.session_state.get("preset", DEFAULT_PRESET)
    base = Config.from_dict(PRESETS[name])
    for f in METHOD_FIELDS:
        st.session_state[f] = getattr(base, f)
    st.session_state["preset"] = name


def matching_preset(cfg: Config) -> str | None:
    """The preset whose method fields all equal cfg's, if any."""
    for name, overrides in PRESETS.items():
        base = Config.from_dict(overrides)
        if all(getattr(base, f) == getattr(cfg, f) for f in METHOD_FIELDS):
            return name
    return None


def url_config() -> Config:
    """The config the URL describes (unknown keys such as `run` ignored; bad values fall back to defaults)."""
    params = {k: v for k, v in st.query_params.to_dict().items() if k in FIELD_NAMES}
    try:
        return Config.from_query(params)
    except ConfigError:
        return Config()


def url_problems() -> list[str]:
    """Config values in the URL that are refused (unparseable, out of range, NaN, unknown choices): their widgets
    fall back to the default, which must not happen silently."""
    problems = []
    for name, value in st.query_params.to_dict().items():
        if name in FIELD_NAMES:
            try:
                Config.from_query({name: value})
            except ConfigError as e:
                problems.append(f"?{name}={value[:40]} ({e})")
    return problems


def config_sidebar() -> tuple[Config | None, str]:
    """Render the preset picker and every Config field in the sidebar; (the config or None, the run label)."""
    refused = url_problems()                   # before the widgets bind (and rewrite) the query parameters
    with st.sidebar:
        if refused:
            st.warning("Ignored from the URL, the defaults are used instead: " + "; ".join(refused),
                       icon=":material/link_off:")
        if "preset" not in st.session_state:
            st.session_state["preset"] = matching_preset(url_config()) or DEFAULT_PRESET
        st.selectbox("Method preset", list(PRESETS), key="preset", on_change=apply_preset,
                     help="Sets the method's fields (gate, mask loss, constraint, α, β, λ, temperatures); "
                          "training fields keep their values.")
        st.subheader("Method")
        gate, mask_loss, constraint = (field_widget(f) for f in ("gate", "mask_loss", "constraint"))
        shown = ["alpha", "beta", "lam", *method_knobs(gate, mask_loss, constraint)]
        for name in shown:
            field_widget(name)
        st.subheader("Training")
        for name in TRAINING_FIELDS:
            field_widget(name)
        with st.expander("More settings"):
            for name in FIELD_NAMES:
                if name not in (*shown, *TRAINING_FIELDS, "gate", "mask_loss", "constraint"):
                    field_widget(name)
        return _config_or_error()


def _config_or_error() -> tuple[Config | None, str]:
    try:
        cfg = Config.from_dict({f: st.session_state[f] for f in FIELD_NAMES})
    except ConfigError as e:            # widget bounds are client-side only: Config has the last word
        st.error(f"This setup cannot run: {e}")
        return None, "custom"
    match = matching_preset(cfg)
    st.caption(f"Method: **{match}** preset." if match else "Method: custom (no preset matches these fields).")
    return cfg, match or "custom"


# --- runs --------------------------------------------------------------------------------------------------

STATUS_COLOURS = {"running": "blue", "pausing": "orange", "paused": "orange", "stopping": "orange",
                  "saving": "violet", "starting": "gray", "done": "green", "stopped": "gray", "failed": "red"}


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def run_controls(run, view: RunView) -> None:
    """Pause / Resume / Step / Stop for a run this server is training; links onward once it has ended."""
    with st.container(horizontal=True, vertical_alignment="center"):
        if run is not None and run.alive:
            paused = view.status in ("paused", "pausing")
            ended = view.status in ("stopping", "saving")
            # Callbacks act before the fragment reruns, so the view below already shows the new state.
            st.button("Pause", icon=":material/pause:", key="pause", disabled=paused or ended, on_click=run.pause,
                      help="Pause after the current record (log_every steps).")
            st.button("Resume", icon=":material/play_arrow:", key="resume", disabled=not paused or ended,
                      on_click=run.resume)
            st.button("Step", icon=":material/skip_next:", key="step", disabled=view.status != "paused",
                      on_click=run.step,
                      help=f"While paused: train one more record ({view.cfg.log_every} steps), then pause.")
            st.button("Stop", icon=":material/stop:", key="stop", disabled=ended, on_click=run.stop,
                      help="End the run now; it is evaluated and saved to checkpoints/ as 'stopped'.")
        elif view.final and view.summary is not None:
            st.page_link(RUNS_PAGE, label="Compare on Runs", icon=":material/table_chart:")
            st.page_link(INSPECT_PAGE, label="Inspect its masks", icon=":material/image_search:",
                         query_params={"checkpoint": view.run_id})


def run_progress(view: RunView) -> None:
    """Status badge, progress bar with elapsed time, pace and ETA, and the failure reason if any."""
    last = view.records[-1] if view.records else None
    pace = f" · {last.step / last.seconds:.1f} steps/s" if last and last.seconds > 0 else ""
    st.badge(view.status, color=STATUS_COLOURS.get(view.status, "gray"))
    text = (f"step {view.step} of {view.cfg.steps} · {clock(last.seconds if last else 0)} training{pace}"
            f" · ETA {clock(view.eta())}" if not view.final else f"step {view.step} of {view.cfg.steps}")
    st.progress(min(1.0, view.step / view.cfg.steps), text=text)
    if view.status == "failed":
        st.error(view.reason or "the run failed", title="Run failed")
    elif view.reason:
        st.caption(view.reason)


def run_metrics(view: RunView) -> None:
    """The latest values in one line (training batch while live; the test set once finished)."""
    if not view.records:
        return
    last, test = view.records[-1], (view.summary or {}).get("metrics") or {}
    where = "test set, hard mask" if test else "last training batch"
    st.markdown(f"accuracy **{test.get('accuracy_hard', last.accuracy):.1%}** · area kept "
                f"**{test.get('area', last.area):.1%}** · bimodality **{test.get('bimodality', last.bimodality):.1%}**"
                f" · multiplier μ **{last.multiplier:.3g}** · temperature τ **{last.temperature:.3g}** ({where})",
                help="bimodality: the fraction of m_eval values within 0.01 of 0 or 1")


def collapse_warning(view: RunView) -> Collapse | None:
    """A warning that explains why the mask collapsed and what to try, when it did."""
    test_area = ((view.summary or {}).get("metrics") or {}).get("area")
    found = collapse(view.cfg, view.records, test_area)
    if found is not None:
        what = "keeps no pixels (area → 0)" if found.kind == "zero" else "keeps every pixel (area → 1)"
        tips = "\n".join(f"- {t}" for t in found.tips)
        st.warning(f"{found.why}\n\n**What to try**\n{tips}", icon=":material/warning:",
                   title=f"Mask collapsed: it {what} at step {found.step} ({found.area:.2%} kept)")
    return found


# --- figures -----------------------------------------------------------------------------------------------

PALETTE = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
PANELS = [("loss", ("loss", "ce", "mask_loss")), ("accuracy (training batch)", ("accuracy",)),
          ("area kept", ("area", "area_expected", "target")), ("bimodality", ("bimodality",)),
          ("multiplier μ", ("multiplier",)), ("temperature τ", ("temperature",))]


def memo(name: str, version, build):
    """build() once per (name, version) in this session: a live panel polls every second, but its figures and
    images change only when a record arrives, so rebuilding them each poll only costs the training thread CPU."""
    cache = st.session_state.setdefault("_memo", {})
    if name not in cache or cache[name][0] != version:
        cache[name] = (version, build())
    return cache[name][1]


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


# --- images ------------------------------------------------------------------------------------------------

def enlarge(img: Image.Image, side: int = 160) -> Image.Image:
    """Upscale small images with nearest neighbours so pixels stay pixels (the browser would blur them)."""
    scale = max(1, side // max(img.size))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def mask_overlays(view: RunView, snapshot: Snapshot) -> tuple[list[bytes], list[str]]:
    """PNGs of the probe images with this snapshot's masks tinted on, and captions (true label · kept fraction)."""
    images, captions = [], []
    for i, mask in enumerate(snapshot.masks):
        m = torch.from_numpy(mask.astype(np.float32) / 255.0)[None]            # (1, H, W)
        images.append(png_bytes(enlarge(overlay(view.probe.x[i], m))))
        captions.append(f"{view.probe.labels[i]} · kept {(mask > 127).mean():.0%}")
    return images, captions


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def pick_snapshot(view: RunView, key: str) -> Snapshot:
    """A step slider back through the run's mask history; it follows the newest snapshot until moved."""
    snaps = view.snapshots
    steps = [s.step for s in snaps]
    if len(snaps) == 1:
        return snaps[0]
    chosen = st.session_state.get(f"{key}-chosen")
    follow = view.live and st.toggle("Follow training", value=True, key=f"{key}-follow",
                                     help="Show the newest masks; moving the slider turns this off.")
    st.session_state[key] = steps[-1] if follow or chosen not in steps else chosen
    step = st.select_slider("Masks at step", options=steps, key=key, on_change=_unfollow, args=(key,))
    return snaps[steps.index(step)]


def _unfollow(key: str) -> None:
    st.session_state[f"{key}-chosen"] = st.session_state[key]
    st.session_state[f"{key}-follow"] = False


def run_masks(view: RunView, key: str) -> None:
    """Mask overlays on the fixed test images with a step slider, the histogram now and over training."""
    if not view.snapshots or view.probe is None:
        st.info("Masks appear with the first record." if view.live else
                "No mask snapshots for this run (its dataset is not available here).")
        return
    snap = pick_snapshot(view, key)
    images, captions = memo(f"{key}-overlays", (view.run_id, snap.step), lambda: mask_overlays(view, snap))
    st.image(images, caption=captions, width=132, output_format="PNG",      # PNG: no re-encoding per poll
             alt=[f"mask overlay, {c}" for c in captions])
    history = "" if len(view.snapshots) > 1 or view.live else (" The histogram's evolution needs the run's "
                                                                "history, kept while its server is up.")
    st.caption(f"Red tint: the mask m_eval on {len(images)} fixed test images (true label · pixels kept) at step "
               f"{snap.step}; dimmed pixels are removed. Histograms over {PROBE} test images.{history}")
    st.plotly_chart(memo(f"{key}-hist", (view.run_id, snap.step, len(view.snapshots)),
                         lambda: histograms_figure(snap, view.snapshots)), key=f"{key}-hist")


RUNS_ORDER = ("run", "status", "accuracy", "area", "bimodality", "precision_in_box", "collapsed", "steps", "label",
              "gate", "mask_loss", "constraint", "train_s", "created")
RUNS_COLUMNS = {
    "run": st.column_config.TextColumn("run", width="medium"),
    "accuracy": st.column_config.NumberColumn("accuracy", format="percent", help="test, hard mask (live: batch)"),
    "area": st.column_config.NumberColumn("area", format="percent", help="fraction of pixels kept"),
    "bimodality": st.column_config.NumberColumn("bimodality", format="percent"),
    "precision_in_box": st.column_config.NumberColumn("in box", format="percent",
                                                      help="kept pixels inside the object's box / kept pixels"),
    "train_s": st.column_config.NumberColumn("train s", format="%.0f"),
}


# --- inspect -----------------------------------------------------------------------------------------------

IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "ppm"]


def describe_run(run_id: str) -> str:
    return f"{run_id} (shipped demo)" if run_id == DEMO else run_id


def load_checkpoint(path: str):
    """(cfg, model, summary) of a run folder, cached until its summary.json changes; or the error as a string."""
    summary = Path(path) / "summary.json"
    return _load(path, summary.stat().st_mtime if summary.exists() else 0.0)


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint…")
def _load(path: str, mtime: float):
    try:
        return load_run(Path(path))
    except CheckpointError as e:
        return f"Cannot load this checkpoint: {e}"


@st.cache_resource(max_entries=4, show_spinner="Opening the test set…")
def _test_set(cfg_json: str, n: int):
    try:
        test = open_data(Config.from_json(cfg_json)).test
    except Exception:                                  # e.g. an mnist:ROOT that is not on this machine
        return None
    return test.x[:n].cpu(), test.y[:n].cpu()


def test_samples(cfg: Config, n: int = 64):
    """(x, y) of the first n test images of the checkpoint's dataset, or None where it is unavailable."""
    return _test_set(cfg.to_json(), n)


def class_names(model, summary: dict) -> list[str]:
    return (summary.get("data") or {}).get("class_names") or [str(i) for i in range(model.classes)]


def input_size(summary: dict) -> tuple[int, int] | None:
    size = (summary.get("data") or {}).get("input_size")
    return tuple(size) if size else None


def expects(model, size, names) -> str:
    """What uploads are turned into, said plainly."""
    mode = "grayscale (1 channel)" if model.channels == 1 else "RGB (3 channels)"
    fit = f"resized to fit {size[1]}×{size[0]} pixels keeping their aspect ratio" if size else "kept at their size"
    classes = f"{', '.join(names[:10])}{'…' if len(names) > 10 else ''}"
    return (f"This model classifies {len(names)} classes ({classes}). Uploads are converted to {mode} "
            f"(transparent pixels become black, as masked pixels are) and {fit}. Accepted: {ACCEPTED}; EXIF "
            f"orientation is honoured.")


def inspect_image(name: str, x: torch.Tensor, model, cfg: Config, names: list[str], threshold: float,
                  truth: str | None = None, key: str = "") -> None:
    """One image: input, overlay, masked image, top-k predictions, kept area, histogram, mask PNG download."""
    r = run_mask(model, x, cfg.temperature_end, threshold)
    h, w = r.x.shape[-2:]
    with st.container(border=True):
        truth = f" · true label **{truth}**" if truth else ""
        st.markdown(f"**{name}**{truth} · {w}×{h} as the model sees it")
        cols = st.columns([1, 1, 1, 1.5, 1.5])
        mask_img = Image.fromarray(to_uint8(r.hard))
        for col, img, caption in zip(cols, [Image.fromarray(to_uint8(r.x)), overlay(r.x, r.hard),
                                            Image.fromarray(to_uint8(r.x * r.hard))],
                                     ["input", "mask overlay", "what the classifier sees"]):
            col.image(enlarge(img, 200), caption=caption, alt=f"{name}: {caption}")
        with cols[3]:
            st.metric("kept area", f"{r.area:.1%}", help=f"{int(r.hard.sum())} of {h * w} pixels have m_eval > "
                      f"{threshold:g}")
            st.caption("top predictions on x · hard mask")
            st.dataframe(r.top(names, 3), hide_index=True, alt=f"top predictions for {name}",
                         column_config={"probability": st.column_config.NumberColumn(format="percent")})
            st.download_button("Mask PNG", png_bytes(mask_img), f"{Path(name).stem}.mask.png", "image/png",
                               on_click="ignore", icon=":material/download:", key=f"png-{key or name}")
        hist = (torch.histc(r.relaxed.float(), bins=BINS, min=0, max=1) / r.relaxed.numel()).numpy()
        cols[4].plotly_chart(histogram_figure(hist, "mask values", threshold), key=f"hist-{key or name}")


# --- loss explorer -----------------------------------------------------------------------------------------

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


# --- sweeps ------------------------------------------------------------------------------------------------

SWEEPS = Path("sweeps")
SWEEP_METRICS = {"accuracy_hard": "accuracy (hard mask)", "area": "area kept", "bimodality": "bimodality"}


@st.cache_resource(show_spinner=False, on_release=lambda jobs: [j.stop() for j in jobs.values()])
def sweep_jobs() -> dict:
    """Sweeps launched from this server: name -> SweepJob (one runs at a time; they share the CPU with runs)."""
    return {}


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
