"""Train: pick a method and its knobs (bound to the URL), start a run, watch it live, pause / step / stop it."""
import numpy as np
import streamlit as st
import torch

import ui
from masklab.explain import Collapse, collapse, objective_latex
from masklab.figures import curves_figure, histograms_figure
from masklab.images import enlarge, overlay, png_bytes
from masklab.live import RunError, check_id
from masklab.plots import curves_png, histograms_png
from masklab.views import PROBE, RunView, Snapshot

ui.own_navigation()


STATUS_COLOURS = {"running": "blue", "pausing": "orange", "paused": "orange", "stopping": "orange",
                  "saving": "violet", "starting": "gray", "indexing": "gray", "done": "green", "stopped": "gray",
                  "failed": "red"}


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
            st.page_link(ui.RUNS_PAGE, label="Compare on Runs", icon=":material/table_chart:")
            st.page_link(ui.INSPECT_PAGE, label="Inspect its masks", icon=":material/image_search:",
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
    found = ui.shared_memo("train-collapse", (view.run_id, len(view.records), test_area),     # not once per poll
                    lambda: collapse(view.cfg, view.records, test_area))
    if found is not None:
        what = "keeps no pixels (area → 0)" if found.kind == "zero" else "keeps every pixel (area → 1)"
        tips = "\n".join(f"- {t}" for t in found.tips)
        st.warning(f"{found.why}\n\n**What to try**\n{tips}", icon=":material/warning:",
                   title=f"Mask collapsed: it {what} at step {found.step} ({found.area:.2%} kept)")
    return found


def mask_overlays(view: RunView, snapshot: Snapshot) -> tuple[list[bytes], list[str]]:
    """PNGs of the probe images with this snapshot's masks tinted on, and captions (true label · kept fraction)."""
    images, captions = [], []
    for i, mask in enumerate(snapshot.masks):
        m = torch.from_numpy(mask.astype(np.float32) / 255.0)[None]            # (1, H, W)
        images.append(png_bytes(enlarge(overlay(view.probe.x[i], m))))
        captions.append(f"{view.probe.labels[i]} · kept {(mask > 127).mean():.0%}")
    return images, captions


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


def run_masks(view: RunView, key: str, static: bool = False) -> None:
    """Mask overlays on the fixed test images with a step slider, the histogram now and over training (a PNG if
    `static`, else an interactive figure)."""
    if not view.snapshots or view.probe is None:
        st.info("Masks appear with the first record." if view.live else
                "No mask snapshots for this run (its dataset is not available here).")
        return
    snap = pick_snapshot(view, key)
    images, captions = ui.shared_memo("overlays", (view.run_id, snap.step), lambda: mask_overlays(view, snap))
    st.image(images, caption=captions, width=132, output_format="PNG",      # PNG: no re-encoding per poll
             alt=[f"mask overlay, {c}" for c in captions])
    history = "" if len(view.snapshots) > 1 or view.live else (" The histogram's evolution needs the run's "
                                                                "history, kept while its server is up.")
    st.caption(f"Red tint: the mask m_eval on {len(images)} fixed test images (true label · pixels kept) at step "
               f"{snap.step}; dimmed pixels are removed. Histograms over {PROBE} test images.{history}")
    version = (view.run_id, snap.step, len(view.snapshots), static)
    if static:
        st.image(ui.shared_memo("histograms", version, lambda: histograms_png(snap, view.snapshots)),
                 output_format="PNG", width="stretch")
    else:
        st.plotly_chart(ui.shared_memo("histograms", version, lambda: histograms_figure(snap, view.snapshots)),
                        key=f"{key}-hist")



st.title("Train")
cfg, label = ui.config_sidebar()
runs = ui.manager()

# The run this tab shows: ?run=<id> (a link, a refresh, a second tab), else the last one this session opened.
run_id = st.query_params.get("run") or st.session_state.get("train_run")
if run_id and "run" not in st.query_params:
    st.query_params["run"] = run_id

live = runs.live()
with st.container(horizontal=True, vertical_alignment="center"):
    start = st.button("Start run", type="primary", icon=":material/play_arrow:", key="start",
                      disabled=cfg is None or len(live) >= ui.MAX_LIVE,
                      help=f"Train this setup in the background; at most {ui.MAX_LIVE} runs train at once.")
    for other in live:
        if other.id != run_id:
            st.page_link(ui.TRAIN_PAGE, label=f"live: {other.id}", icon=":material/sync:",
                         query_params={"run": other.id})
if start:
    try:
        run_id = runs.start(cfg, label).id
    except RunError as e:
        st.error(str(e))
    else:
        st.query_params["run"] = st.session_state["train_run"] = run_id

with st.expander("Objective in effect", expanded=not run_id, icon=":material/functions:"):
    for line in objective_latex(cfg) if cfg else []:
        st.latex(line)
    st.caption("m: the mask, l: its per-pixel logit, t: the annealed target area, μ: the Lagrange multiplier. "
               "The seed loss is a reconstruction of the question's (its formula was an image that is lost).")

try:
    run = runs.get(check_id(run_id)) if run_id else None
except RunError as e:
    st.error(f"Ignoring ?run=: {e}")
    run_id = run = None
polling = run is not None and run.alive
if polling:
    # While the run trains, the page redraws every REFRESH_S: CSS transitions and animations (the progress bar's
    # slide, the running indicator) would make the browser render frames all the time, CPU the training needs
    # when they share the cores. Without them each update is one frame.
    st.html("<style>*, *::before, *::after {animation: none !important; transition: none !important}</style>")


@st.fragment(run_every=ui.REFRESH_S if polling else None)
def status_panel(run_id: str) -> bool:
    """Polls the run every REFRESH_S: controls, progress, collapse warning, latest values (cheap to draw)."""
    view = runs.view(run_id)
    if view is None:
        st.warning(f"No run {run_id} here: it is neither training in this server nor saved under "
                   f"{runs.root}.", icon=":material/search_off:")
        return False
    if polling and view.final:
        st.rerun()                      # the run just ended: redraw the page once and stop polling
    st.subheader(view.run_id)
    run_controls(runs.get(run_id), view)
    run_progress(view)
    collapse_warning(view)
    run_metrics(view)
    return True


@st.fragment(run_every=ui.CHARTS_S if polling else None)
def charts_panel(run_id: str) -> None:
    """Polls every CHARTS_S: curves, masks and histograms, the costly part to send and for the browser to lay out.
    While the run trains, curves and histograms are PNGs drawn by matplotlib (about 0.3 CPU-s a redraw, on the
    server) unless the user asks for interactive ones: on the 2-core machine headless Chromium took 0.20-0.23 of a
    core with interactive charts, 0.17-0.20 with the images and 0.13-0.17 with the images and no CSS animations
    (30 s windows; tools/app_throughput.py measures the training's speed)."""
    view = runs.view(run_id)
    if view is None:
        return
    static = view.live and not st.toggle(
        "Interactive charts while training", key="train-interactive",
        help="While a run trains its curves and histograms are images drawn on the server: a browser laying out "
             "interactive charts takes CPU from the training when they share the machine's cores. The charts "
             "become interactive when the run ends.")
    if view.records:
        version = (view.run_id, len(view.records), static)
        if static:
            st.image(ui.shared_memo("curves", version, lambda: curves_png(view.records)), output_format="PNG",
                     width="stretch")
        else:
            st.plotly_chart(ui.shared_memo("curves", version, lambda: curves_figure({view.run_id: view.records})),
                            key="train-curves")
    run_masks(view, key="train-masks", static=static)


if not run_id:
    st.info("Choose a method preset and its knobs in the sidebar, then **Start run**. The URL keeps the setup: "
            "share it to reproduce the run.", icon=":material/info:")
elif status_panel(run_id):
    charts_panel(run_id)
