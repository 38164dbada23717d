"""Sweeps: launch a grid of trials in the background (Ray Tune when installed, else one after another), watch
them finish, and read the landscape: heatmaps over two axes, the accuracy-vs-area Pareto front, collapses."""
import pandas as pd
import streamlit as st

import ui
from masklab.config import FIELD_NAMES, PRESETS, ConfigError
from masklab.figures import SWEEP_METRICS, pareto_figure, sweep_heatmap
from masklab.metrics import pareto
from masklab.sweep import (RAY_HINT, SweepJob, make_plan, parse_sets, ray_available, read_sweep,
                           saved_sweeps)

ui.own_navigation()

st.title("Sweeps")
jobs = ui.sweep_jobs()
live = [j for j in jobs.values() if j.alive]
has_ray = ray_available()
saved = saved_sweeps(ui.SWEEPS)

with st.expander("Launch a sweep", expanded=not live and not saved, icon=":material/grid_on:"):
    left, mid, right = st.columns(3)
    preset = left.selectbox("Preset", list(PRESETS), index=list(PRESETS).index("seed"), key="sweep-preset",
                            help="The method every trial starts from; the axes below override its fields.")
    axis_x = mid.selectbox("Axis 1", FIELD_NAMES, index=FIELD_NAMES.index("alpha"), key="sweep-x")
    values_x = mid.text_input("Axis 1 values", "0.5,0.7,0.9", key="sweep-xv", help="Comma-separated values.")
    axis_y = right.selectbox("Axis 2", ["(none)", *FIELD_NAMES], index=1 + FIELD_NAMES.index("beta"), key="sweep-y")
    values_y = right.text_input("Axis 2 values", "0.01,0.1,1", key="sweep-yv")
    a, b, c, d = st.columns(4)
    steps = a.number_input("Steps per trial", 10, 100_000, 300, 50, key="sweep-steps")
    seeds = b.number_input("Seeds", 1, 10, 1, key="sweep-seeds")
    backend = c.radio("Backend", ["ray", "sequential"], index=0 if has_ray else 1, key="sweep-backend",
                      horizontal=True, help="Ray Tune runs trials in parallel (local, one CPU each); sequential "
                                            "runs them one after another in this server." + ("" if has_ray else
                                                                                             f" {RAY_HINT}."))
    cpus = d.number_input("CPUs per trial", 1, 64, 1, key="sweep-cpus", help="torch threads per trial (Ray)")
    fixed = st.text_input("Fixed fields", "", key="sweep-set", placeholder="e.g. area_target=0.05 batch_size=32",
                          help="FIELD=VALUE pairs (space-separated) applied to every trial, like --set on the CLI.")
    grids = [f"{axis_x}={values_x}"] + ([f"{axis_y}={values_y}"] if axis_y != "(none)" else [])
    try:
        overrides = {"steps": str(steps), **parse_sets(fixed.split(), "fixed fields:")}
        plan = make_plan(preset, grids, seeds=int(seeds), overrides=overrides)
    except ConfigError as e:
        plan = None
        st.error(f"This sweep cannot run: {e}")
    if backend == "ray" and not has_ray:
        st.warning(RAY_HINT, icon=":material/extension_off:")
    if plan is not None:
        st.caption(f"{len(plan.trials)} trials of `{preset}` · run folders under {ui.CHECKPOINTS}/ as "
                   f"`{plan.name}-tNNN` · results in {ui.SWEEPS}/{plan.name}/")
    if st.button("Launch sweep", type="primary", icon=":material/play_arrow:", key="sweep-launch",
                 disabled=plan is None or bool(live) or (backend == "ray" and not has_ray),
                 help="One sweep at a time per server."):
        jobs[plan.name] = SweepJob(plan, ui.CHECKPOINTS, ui.SWEEPS / plan.name, backend, float(cpus)).start()
        st.session_state["sweep"] = plan.name
        st.rerun()

names = [n for n in jobs if n not in saved] + saved
if not names:
    st.info("No sweeps yet: launch one above. A 3×3 α×β grid of the seed preset shows where it collapses.",
            icon=":material/info:")
    st.stop()
shown = st.selectbox("Sweep", names, key="sweep", bind="query-params",
                     help=f"Sweeps launched here and sweep folders under {ui.SWEEPS}/.")


@st.fragment(run_every=2.0 if shown in jobs and jobs[shown].alive else None)
def panel(name: str) -> None:
    job = jobs.get(name)
    if job is not None:
        rows, total, swept = job.rows(), len(job.plan.trials), job.plan.swept
        status = job.status
    else:
        try:
            meta, rows = read_sweep(ui.SWEEPS / name)
        except ConfigError as e:
            st.error(str(e))
            return
        total, swept, status = meta["trials"], meta["swept"], "saved"
    if job is not None and job.alive:
        st.progress(len(rows) / total, text=f"{len(rows)} of {total} trials finished · {job.backend}")
        st.button("Stop sweep", key="sweep-stop", on_click=job.stop, icon=":material/stop:",
                  help="No new trials start. Sequential: the trial under way stops and is saved as stopped; "
                       "Ray: the experiment ends with its running trials.")
    else:
        st.caption(f"{status} · {len(rows)} of {total} trials")
        if job is not None and job.error:
            st.error(f"The sweep failed: {job.error}")
    if not rows:
        st.info("Trials appear here as they finish.", icon=":material/hourglass_top:")
        return
    axes = [a for a in swept if a != "seed"] or swept or ["trial"]
    left, right = st.columns(2)
    x = left.selectbox("Heatmap x", axes, key=f"hx-{name}")
    y = right.selectbox("Heatmap y", axes, index=min(1, len(axes) - 1), key=f"hy-{name}")
    for col, metric in zip(st.columns(3), SWEEP_METRICS):
        col.plotly_chart(sweep_heatmap(rows, x, y, metric), key=f"heat-{metric}")
    st.caption("Cells average the trials (seeds) that share their values; ✕ marks a cell where a trial's mask "
               "collapsed: all-0 keeps nothing (area < 0.5%), all-1 keeps everything (area > 95%, no sparsity).")
    front = {r["run"] for r in pareto(rows)}
    points = [{"run": r["run"], "area": r.get("area"), "accuracy": r.get("accuracy_hard"),
               "collapsed": r.get("collapsed") in (True, "True"), "created": True} for r in rows]
    left, right = st.columns([3, 2])
    left.plotly_chart(pareto_figure(points, sorted(front)), key="sweep-pareto")
    left.caption("Red: the trials on the Pareto front (no other trial keeps less area with more accuracy).")
    table = pd.DataFrame(rows)[["trial", *axes, "status", "accuracy_hard", "area", "bimodality", "collapsed",
                                "run"]]
    right.dataframe(table, hide_index=True, key="sweep-table", alt="trials of the sweep with their metrics")
    trial = right.selectbox("Open trial", [r["run"] for r in rows], key=f"open-{name}")
    with right.container(horizontal=True):
        st.page_link(ui.TRAIN_PAGE, label="curves and masks", icon=":material/monitoring:",
                     query_params={"run": trial})
        st.page_link(ui.INSPECT_PAGE, label="inspect", icon=":material/image_search:",
                     query_params={"checkpoint": trial})


panel(shown)
