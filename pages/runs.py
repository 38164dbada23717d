"""Runs: every run (live in this server and saved in checkpoints/), compared; downloads; delete."""
import pandas as pd
import streamlit as st

import ui
from masklab.figures import curves_figure, pareto_figure
from masklab.live import RunError
from masklab.views import config_diff, masks_zip, zip_folder

ui.own_navigation()

RUNS_ORDER = ("run", "status", "accuracy", "area", "bimodality", "contiguity", "precision_in_box", "collapsed", "steps",
              "label", "gate", "mask_loss", "constraint", "train_s", "created")
RUNS_COLUMNS = {
    "run": st.column_config.TextColumn("run", width="medium"),
    "accuracy": st.column_config.NumberColumn("accuracy", format="percent", help="test, hard mask (live: batch)"),
    "area": st.column_config.NumberColumn("area", format="percent", help="fraction of pixels kept"),
    "bimodality": st.column_config.NumberColumn("bimodality", format="percent"),
    "contiguity": st.column_config.NumberColumn("contiguity", format="percent",
                                                help="kept pixels in their image's largest connected piece: low "
                                                     "for scattered pixels or blocks"),
    "precision_in_box": st.column_config.NumberColumn("in box", format="percent",
                                                      help="kept pixels inside the object's box / kept pixels; "
                                                           "None where the data has no boxes (photo folders)"),
    "train_s": st.column_config.NumberColumn("train s", format="%.0f"),
}

st.title("Runs")
runs = ui.manager()


@st.fragment(run_every=ui.REFRESH_S * 2 if runs.live() else None)
def table() -> None:
    """The runs table; refreshes itself while any run is training."""
    rows = runs.rows()
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="runs-table", column_config=RUNS_COLUMNS,
                 column_order=RUNS_ORDER, alt="table of runs with their status and test metrics")
    plural = "" if len(rows) == 1 else "s"
    st.caption(f"{len(rows)} run{plural} · folders under {runs.root} · live runs show their last training batch, "
               "saved runs their test-set metrics (hard mask).")


rows = runs.rows()
if not rows:
    st.info(f"No runs yet: start one on the Train page. Saved runs appear from {runs.root}.", icon=":material/info:")
    st.stop()
table()
ids = [r["run"] for r in rows if r.get("status") != "unreadable"]

st.subheader("Compare")
selected = st.multiselect("Runs to compare", ids, default=ids[:2], key="compare",
                          help="Overlaid curves, the config fields that differ, and their place on the Pareto plot.")
views = {i: v for i in selected if (v := runs.view(i, masks=False)) is not None}
if views:
    st.plotly_chart(curves_figure({i: v.records for i, v in views.items()}), key="compare-curves")
    left, right = st.columns([2, 3])
    diff = config_diff({i: v.cfg for i, v in views.items()})
    left.markdown("**Config fields that differ**")
    if diff:
        left.dataframe(pd.DataFrame(diff).T.astype(str), alt="config fields that differ between the selected runs")
    else:
        left.caption("The selected runs share one config." if len(views) > 1 else "Select two runs to diff.")
    right.markdown("**Accuracy against area kept** (test set; up and to the left is better)")
    right.plotly_chart(pareto_figure(rows, list(views)), key="pareto")

st.subheader("One run")
chosen = st.selectbox("Run", ids, key="one-run")
path = runs.path(chosen)
saved = (path / "summary.json").is_file()
with st.container(horizontal=True, vertical_alignment="center"):
    st.page_link(ui.TRAIN_PAGE, label="Open in Train", icon=":material/model_training:", query_params={"run": chosen})
    if saved:
        st.page_link(ui.INSPECT_PAGE, label="Inspect", icon=":material/image_search:",
                     query_params={"checkpoint": chosen})
        st.download_button("Metrics CSV", (path / "metrics.csv").read_bytes(), f"{chosen}-metrics.csv", "text/csv",
                           on_click="ignore", icon=":material/download:", key="dl-csv")
        st.download_button("Checkpoint (zip)", lambda: zip_folder(path), f"{chosen}.zip", "application/zip",
                           on_click="ignore", icon=":material/download:", key="dl-zip")
        st.download_button("Mask PNGs (zip)", lambda: masks_zip(path), f"{chosen}-masks.zip", "application/zip",
                           on_click="ignore", icon=":material/download:", key="dl-masks")


def delete(run_id: str) -> None:
    """Callback: delete the run, untick the confirmation, and leave a message for the rerun."""
    try:
        runs.delete(run_id)
    except RunError as e:
        st.session_state["runs-message"] = ("error", str(e))
    else:
        st.session_state["runs-message"] = ("success", f"Deleted {run_id}.")
    st.session_state["confirm-delete"] = False


if saved:
    confirm = st.checkbox(f"Yes, delete {chosen} and its folder for good", key="confirm-delete")
    st.button("Delete run", icon=":material/delete:", disabled=not confirm, key="delete", on_click=delete,
              args=(chosen,))
else:
    st.caption("Still training: downloads and delete appear once it is saved.")
if message := st.session_state.pop("runs-message", None):
    (st.error if message[0] == "error" else st.success)(message[1])
