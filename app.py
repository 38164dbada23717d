"""MaskLab, the Streamlit lab: `streamlit run app.py`. The router and frame; pages are thin views over masklab."""
import streamlit as st

import ui

ui.own_navigation()

# The icon is a file: a :material/...: page icon makes the browser fetch it from fonts.gstatic.com (offline: none).
st.set_page_config(page_title="MaskLab", page_icon=str(ui.STATIC / "icon.png"), layout="wide")
st.navigation([
    st.Page("pages/home.py", title="Overview", icon=":material/home:", default=True,
            help="The question in a few lines, and one-click method presets."),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:",
            help="Set a method and its knobs, start a run and watch loss, masks and histograms live."),
    st.Page("pages/runs.py", title="Runs", icon=":material/table_chart:",
            help="All runs, live and saved: compare curves, configs and accuracy against area; download or delete."),
    st.Page("pages/inspect.py", title="Inspect", icon=":material/image_search:",
            help="Mask your own images or test samples with a checkpoint: overlay, predictions, kept area."),
    st.Page("pages/sweeps.py", title="Sweeps", icon=":material/grid_on:",
            help="Grids of α, β, λ, area target …: launch on Ray Tune, read heatmaps and the Pareto front."),
    st.Page("pages/loss_explorer.py", title="Loss explorer", icon=":material/ssid_chart:",
            help="Per-pixel loss and gradient of every method against the mask and the logit."),
]).run()
