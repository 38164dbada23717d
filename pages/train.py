"""Train: pick a method and its knobs (bound to the URL), start a run, watch it live, pause / step / stop it."""
import streamlit as st

import ui
from masklab.explain import Collapse, collapse, objective_latex
from masklab.figures import curves_figure, histograms_figure
from masklab.live import RunError, check_id
from masklab.plots import curves_png, histograms_png
from masklab.feed import BIMODALITY_HINT, masks_caption, status_of
from masklab.views import RunView, Snapshot, overlay_pngs

ui.own_navigation()


# The live status line, updated in place from its run's file (masklab.feed.LiveFeed): no Streamlit rerun per
# update. It asks for one (trigger "changed") when the status changes or a collapse appears, keeps showing the file
# and asks again every 10 s until that rerun mounts a new line (a rerun queued behind a slow one, or lost, never
# freezes it), and gives up (trigger "lost") when the file cannot be fetched several times running; the page then
# polls with fragment reruns instead.
STATUS_LINE = st.components.v2.component("masklab.status_line", isolate_styles=False, html="""
<div class="ml-status"><span class="ml-badge"></span>
<div class="ml-text"></div><div class="ml-track"><div class="ml-bar"></div></div>
<div class="ml-reason"></div><div class="ml-values"></div></div>""", css="""
.ml-status {font-family: var(--st-font); color: var(--st-text-color); font-size: 0.875rem}
.ml-badge {display: inline-block; padding: 0 0.4rem; border-radius: 0.5rem; font-size: 0.875rem;
           background: rgba(128, 132, 149, 0.15); color: var(--st-text-color)}
.ml-badge[data-colour=blue] {background: rgba(28, 131, 225, 0.1); color: rgb(0, 84, 163)}
.ml-badge[data-colour=orange] {background: rgba(255, 164, 33, 0.1); color: rgb(230, 110, 0)}
.ml-badge[data-colour=violet] {background: rgba(128, 61, 245, 0.1); color: rgb(88, 63, 132)}
.ml-text {margin: 0.75rem 0 0.25rem}
.ml-track {height: 0.5rem; border-radius: 0.25rem; background: var(--st-secondary-background-color)}
.ml-bar {height: 100%; border-radius: 0.25rem; background: var(--st-primary-color)}
.ml-reason {opacity: 0.6; margin-top: 0.5rem}
.ml-values {margin-top: 0.75rem; font-size: 1rem}""", js="""
export default function ({ parentElement, data, setTriggerValue }) {
  const $ = (c) => parentElement.querySelector(c);
  const show = (s) => {
    $(".ml-badge").textContent = s.status;
    $(".ml-badge").dataset.colour = s.colour;
    $(".ml-text").textContent = s.text;
    $(".ml-bar").style.width = (100 * s.fraction).toFixed(2) + "%";
    $(".ml-reason").textContent = s.reason || "";
    const values = $(".ml-values");
    values.replaceChildren();
    s.values.forEach(([label, value], i) => {
      values.append((i ? " · " : "") + label + " ");
      values.append(Object.assign(document.createElement("b"), { textContent: value }));
    });
    if (s.where) values.append(` (${s.where})`);
    values.title = data.hint;
  };
  show(data.state);
  // Polls since the line asked for a redraw; it asks again every `again` polls until the redraw unmounts it.
  let failures = 0, asked = 0, lost = false;
  const again = Math.ceil(10000 / data.every_ms);
  const timer = setInterval(async () => {
    try {
      const response = await fetch(data.url, { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const s = await response.json();
      if (lost) return;
      failures = 0;
      show(s);                        // the line stays live while a redraw is pending (a slow or queued rerun)
      // A new status or a collapse: Streamlit redraws the panel (the controls too) and mounts the line again.
      if (s.status !== data.state.status || s.collapse !== data.state.collapse) {
        if (asked++ % again === 0) setTriggerValue("changed", s.status);
      }
    } catch (e) {
      if (!lost && ++failures >= 5) {
        lost = true;
        clearInterval(timer);
        setTriggerValue("lost", String(e));
      }
    }
  }, data.every_ms);
  return () => clearInterval(timer);
}""")


def _feed_lost() -> None:
    st.session_state["status-feed-lost"] = True


# The live charts while a run trains and this tab follows it with images: curves, mask overlays and histograms as
# PNGs the feed draws (masklab.feed), swapped in place when it has drawn new ones; no Streamlit rerun.
LIVE_CHARTS = st.components.v2.component("masklab.live_charts", isolate_styles=False, html="""
<div class="ml-charts"><div class="ml-wait">Masks appear with the first record.</div><img class="ml-curves">
<div class="ml-masks"></div><div class="ml-caption"></div><img class="ml-histograms"></div>""", css="""
.ml-charts {font-family: var(--st-font); color: var(--st-text-color)}
.ml-charts img:not([src]) {display: none}
.ml-wait {padding: 1rem; border-radius: 0.5rem; background: rgba(28, 131, 225, 0.1)}
.ml-curves, .ml-histograms {width: 100%; margin: 0.5rem 0}
.ml-masks {display: flex; flex-wrap: wrap; gap: 0.5rem}
.ml-masks figure {margin: 0; text-align: center}
.ml-masks figcaption, .ml-caption {font-size: 0.875rem; opacity: 0.6}""", js="""
export default function ({ parentElement, data }) {
  const $ = (c) => parentElement.querySelector(c);
  let version = null;
  const show = (c) => {
    if (!c || c.version === version) return;
    version = c.version;
    $(".ml-wait").hidden = true;
    $(".ml-curves").src = data.base + c.curves;
    if (!c.masks) return;
    $(".ml-masks").replaceChildren(...c.masks.map((src, i) => {
      const figure = document.createElement("figure");
      figure.append(Object.assign(document.createElement("img"),
                                  { src: data.base + src, width: 132, alt: "mask overlay, " + c.captions[i] }),
                    Object.assign(document.createElement("figcaption"), { textContent: c.captions[i] }));
      return figure;
    }));
    $(".ml-caption").textContent = c.caption;
    $(".ml-histograms").src = data.base + c.histograms;
  };
  show(data.charts);
  const timer = setInterval(async () => {
    try {
      const response = await fetch(data.url, { cache: "no-store" });
      if (response.ok) show((await response.json()).charts);
    } catch (e) {}                                     // the status line reports a lost feed
  }, data.every_ms);
  return () => clearInterval(timer);
}""")

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


def run_status(view: RunView, feed) -> None:
    """Status badge, progress bar with elapsed time, pace and ETA, the failure reason if any, and the latest values
    (training batch while live; the test set once finished). Live with a feed: the component updates it in place."""
    if feed is not None and not view.final:
        state = feed.current(view.run_id)
        STATUS_LINE(data={"state": state, "url": ui.feed_url(feed.name(f"{view.run_id}.json")),
                          "every_ms": int(ui.STATUS_S * 1000), "hint": BIMODALITY_HINT},
                    key=f"status-line-{state['status']}", on_changed_change=lambda: None, on_lost_change=_feed_lost)
        return
    state = status_of(view)
    st.badge(state["status"], color=state["colour"])
    st.progress(state["fraction"], text=state["text"])
    if view.status == "failed":
        st.error(view.reason or "the run failed", title="Run failed")
    elif view.reason:
        st.caption(view.reason)
    if state["values"]:
        st.markdown(" · ".join(f"{label} **{value}**" for label, value in state["values"]) + f" ({state['where']})",
                    help=BIMODALITY_HINT)


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


def pick_snapshot(view: RunView, key: str) -> Snapshot:
    """A step slider back through the run's mask history; it follows the newest snapshot until moved."""
    snaps = view.snapshots
    steps = [s.step for s in snaps]
    if len(snaps) == 1:
        return snaps[0]
    chosen = st.session_state.get(f"{key}-chosen")
    follow = view.live and follow_toggle(key)
    st.session_state[key] = steps[-1] if follow or chosen not in steps else chosen
    step = st.select_slider("Masks at step", options=steps, key=key, on_change=_unfollow, args=(key,))
    return snaps[steps.index(step)]


def follow_toggle(key: str) -> bool:
    return st.toggle("Follow training", value=True, key=f"{key}-follow",
                     help="Show the newest masks; moving the slider (shown when this is off) turns it off.")


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
    images, captions = ui.shared_memo("overlays", (view.run_id, snap.step), lambda: overlay_pngs(view.probe, snap))
    st.image(images, caption=captions, width=132, output_format="PNG",      # PNG: no re-encoding per poll
             alt=[f"mask overlay, {c}" for c in captions])
    history = "" if len(view.snapshots) > 1 or view.live else (" The histogram's evolution needs the run's "
                                                                "history, kept while its server is up.")
    st.caption(masks_caption(len(images), snap.step) + history)
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


# Made on the page's first visit, so its thread imports matplotlib before a run trains rather than during one.
feed = ui.live_feed() if not st.session_state.get("status-feed-lost") else None
feed = feed if polling else None
# This tab shows the feed's chart images unless it asked for interactive charts or a look back (Follow off).
feed_charts = feed is not None and not st.session_state.get("train-interactive") and \
    st.session_state.get("train-masks-follow", True)


@st.fragment(run_every=ui.REFRESH_S if polling and feed is None else None)
def status_panel(run_id: str) -> bool:
    """Controls, the status line and a collapse warning. With the live feed it reruns only when the status changes
    or a collapse appears (the status line asks for it); without, it polls the run every REFRESH_S."""
    view = runs.view(run_id)
    if view is None:
        st.warning(f"No run {run_id} here: it is neither training in this server nor saved under "
                   f"{runs.root}.", icon=":material/search_off:")
        return False
    if polling and view.final:
        st.rerun()                      # the run just ended: redraw the page once and stop polling
    st.subheader(view.run_id)
    run_controls(runs.get(run_id), view)
    run_status(view, feed)
    collapse_warning(view)
    return True


@st.fragment(run_every=ui.CHARTS_S if polling and not feed_charts else None)
def charts_panel(run_id: str) -> None:
    """Curves, masks and histograms. While the run trains they are PNGs drawn by matplotlib on the server (a
    browser laying out interactive charts takes CPU from the training when they share the machine's cores), by
    the live feed, which the page shows without rerunning; a tab that asks for interactive charts or turns
    Follow off polls every CHARTS_S instead (tools/app_throughput.py measures the training's speed)."""
    view = runs.view(run_id)
    if view is None:
        return
    static = view.live and not st.toggle(
        "Interactive charts while training", key="train-interactive",
        help="While a run trains its curves and histograms are images drawn on the server: a browser laying out "
             "interactive charts takes CPU from the training when they share the machine's cores. The charts "
             "become interactive when the run ends.")
    if view.live and feed is not None:
        follow = follow_toggle("train-masks")
        if (static and follow) != feed_charts:
            st.rerun()                  # the page decides how this panel polls: redraw it whole
        if feed_charts:
            LIVE_CHARTS(data={"charts": feed.current(run_id)["charts"], "every_ms": int(ui.CHARTS_S * 250),
                              "url": ui.feed_url(feed.name(f"{run_id}.json")), "base": ui.feed_url()},
                        key="live-charts")
            return
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
