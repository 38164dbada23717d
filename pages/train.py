"""Train: pick a method and its knobs (bound to the URL), start a run, watch it live, pause / step / stop it."""
import streamlit as st

import ui
from masklab.explain import objective_latex
from masklab.live import RunError, check_id

ui.own_navigation()

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


@st.fragment(run_every=ui.REFRESH_S if polling else None)
def panel(run_id: str) -> None:
    """Polls the run: controls, progress, collapse warning, curves, masks and histograms."""
    view = runs.view(run_id)
    if view is None:
        st.warning(f"No run {run_id} here: it is neither training in this server nor saved under "
                   f"{runs.root}.", icon=":material/search_off:")
        return
    if polling and view.final:
        st.rerun()                      # the run just ended: redraw the page once and stop polling
    st.subheader(view.run_id)
    ui.run_controls(runs.get(run_id), view)
    ui.run_progress(view)
    ui.collapse_warning(view)
    ui.run_metrics(view)
    if view.records:
        figure = ui.memo("train-curves", (view.run_id, len(view.records)),
                         lambda: ui.curves_figure({view.run_id: view.records}))
        st.plotly_chart(figure, key="train-curves")
    ui.run_masks(view, key="train-masks")


if run_id:
    panel(run_id)
else:
    st.info("Choose a method preset and its knobs in the sidebar, then **Start run**. The URL keeps the setup: "
            "share it to reproduce the run.", icon=":material/info:")
