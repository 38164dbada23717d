"""Sweeps: plans from grid/random specs (validated before anything runs), the sequential and Ray Tune backends
end to end on a tiny 2x2 grid, the early stop of collapsed trials, and the Sweeps page."""
import json
import sys
import time
from pathlib import Path

import pytest

from masklab.cli import main
from masklab.config import Config
from masklab.sweep import SweepError, collapsed_for_long, make_plan, parse_grid, parse_random, read_sweep, run_sweep
from masklab.metrics import pareto
from masklab.train import Record

TINY = {"canvas": "32", "clutter": "2", "batch_size": "8", "steps": "6", "log_every": "2", "test_size": "40",
        "width": "4", "classifier_width": "4", "device": "cpu"}


def test_grid_and_random_axes_parse_like_cli_flags():
    assert parse_grid("alpha=0.5,0.7").values == (0.5, 0.7)
    assert parse_grid("constraint=true,false").values == (True, False)
    axis = parse_random("lr=loguniform:1e-4:1e-2")
    assert axis.distribution == "loguniform" and (axis.low, axis.high) == (1e-4, 1e-2)


@pytest.mark.parametrize("grids, randoms, message", [
    (["alpah=1"], [], "not a config field"),
    (["alpha=2"], [], "alpha must be in [0, 1]"),
    (["alpha"], [], "expected FIELD=VALUES"),
    (["steps=ten"], [], "cannot read"),
    (["seed=1,2"], [], "--seeds"),
    (["alpha=0.1", "alpha=0.2"], [], "swept twice"),
    ([], ["lr=normal:0:1"], "uniform, loguniform, choice"),
    ([], ["lr=loguniform:0:1"], "LOW > 0"),
])
def test_bad_sweeps_are_refused_before_anything_runs(grids, randoms, message):
    with pytest.raises(SweepError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_plan("seed", grids, randoms)


def test_a_plan_is_the_product_of_its_axes_times_seeds_and_samples():
    plan = make_plan("seed", ["alpha=0.5,0.9", "beta=0.1,1,10"], ["lr=loguniform:1e-4:1e-2"], seeds=2, samples=2,
                     overrides={"steps": "50"})
    assert len(plan.trials) == 2 * 3 * 2 * 2
    assert {(c.alpha, c.beta) for c in plan.trials} == {(a, b) for a in (0.5, 0.9) for b in (0.1, 1.0, 10.0)}
    assert {c.seed for c in plan.trials} == {0, 1} and {c.steps for c in plan.trials} == {50}
    assert len({c.lr for c in plan.trials}) == 2                     # one draw per sample, shared by its grid
    again = make_plan("seed", ["alpha=0.5,0.9", "beta=0.1,1,10"], ["lr=loguniform:1e-4:1e-2"], seeds=2, samples=2,
                      overrides={"steps": "50"})
    assert [c.lr for c in again.trials] == [c.lr for c in plan.trials]   # seeded
    assert plan.swept == ["alpha", "beta", "lr", "seed"]


def _record(step, area):
    return Record(step, 1.0, 1.0, 0.0, 0.1, area, area, 1.0, 0.0, 0.67, 1.0, 0.0)


def test_the_early_stop_waits_for_a_lasting_collapse_after_the_warm_up():
    cfg = Config(steps=100, log_every=5, warmup=0.1, gate="hard_sigmoid", mask_loss="seed", constraint=False)
    closed = [_record(s, 0.0) for s in range(5, 31, 5)]
    assert collapsed_for_long(cfg, closed)
    assert not collapsed_for_long(cfg, closed[:2])                   # too short
    assert not collapsed_for_long(cfg, closed[:-1] + [_record(30, 0.2)])   # reopened
    assert not collapsed_for_long(Config(steps=100, log_every=5, gate="none", mask_loss="none",
                                         constraint=False), closed)


def test_pareto_keeps_the_undominated_and_skips_collapsed():
    rows = [{"trial": 0, "area": 0.1, "accuracy_hard": 0.9, "collapsed": False},
            {"trial": 1, "area": 0.2, "accuracy_hard": 0.8, "collapsed": False},      # dominated by 0
            {"trial": 2, "area": 0.05, "accuracy_hard": 0.7, "collapsed": False},
            {"trial": 3, "area": 0.0, "accuracy_hard": 0.1, "collapsed": True}]
    assert [r["trial"] for r in pareto(rows)] == [2, 0]


def test_read_sweep_gives_back_the_rows_written_with_their_types(tmp_path):
    """sweep.csv read back: ints stay ints, floats floats, True/False bools, a failed trial's missing metrics None
    (not NaN), text stays text even where it reads like a missing value ('None'); no sweep.csv: no rows."""
    from masklab.sweep import write_results
    plan = make_plan("seed", ["alpha=0.5,0.9"], overrides=TINY, name="rt")
    metrics = {"accuracy_hard": 0.75, "area": 0.0, "collapsed": True}
    rows = [{"trial": i, **cfg.to_dict(), "run": f"rt-t00{i}", "status": status, "reason": reason,
             "steps_done": steps, "wall_s": 1.5, "stopped_early": i == 0, **(metrics if i == 0 else {})}
            for i, (cfg, status, reason, steps) in enumerate(zip(plan.trials, ("stopped", "failed"),
                                                                  ("None", ""), (4, 0)))]
    (tmp_path / "sweep.json").write_text(plan.to_json())
    assert read_sweep(tmp_path)[1] == []
    write_results(plan, rows, tmp_path)
    meta, saved = read_sweep(tmp_path)
    assert meta["trials"] == 2 and [r["trial"] for r in saved] == [0, 1]
    first, failed = saved
    assert (first["alpha"], first["steps_done"], first["stopped_early"], first["collapsed"]) == (0.5, 4, True, True)
    assert type(first["steps_done"]) is int and type(first["alpha"]) is float and type(first["collapsed"]) is bool
    assert first["reason"] == "None" and first["canvas"] == 32 and first["gate"] == "hard_sigmoid"
    assert failed["accuracy_hard"] is None and failed["collapsed"] is None and failed["reason"] is None
    assert failed["stopped_early"] is False and failed["alpha"] == 0.9


def test_a_tiny_grid_sweep_runs_end_to_end(tmp_path):
    """Every trial of a 2x2 grid in this process: run folders that load, sweep.csv with config fields and
    metrics, SWEEP.md. (Ray's backend: test_sweep_stops, one Ray experiment for the suite's time.)"""
    alphas, targets = (0.5, 0.9), (0.1, 0.5)
    grid = [f"alpha={','.join(map(str, alphas))}", f"area_target={','.join(map(str, targets))}"]
    plan = make_plan("hard-concrete", grid, overrides=TINY, name="t-sequential")
    n = len(alphas) * len(targets)
    seen = []
    rows = run_sweep(plan, tmp_path / "checkpoints", tmp_path / "sweep", "sequential",
                     on_trial=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(n)) and len(rows) == n
    meta, saved = read_sweep(tmp_path / "sweep")
    assert meta["trials"] == n
    assert {(r["alpha"], r["area_target"]) for r in saved} == {(a, t) for a in alphas for t in targets}
    assert_saved_sweep(tmp_path / "checkpoints", tmp_path / "sweep", saved, meta)


def assert_saved_sweep(root, out, saved, meta):
    """What every finished trial of a sweep leaves, on either backend: a done row with its metrics and swept
    values, a run folder that loads with that config, and the SWEEP.md table."""
    from masklab.checkpoint import load_run
    assert meta["swept"] == ["alpha", "area_target"] and saved
    for r in saved:
        assert r["status"] == "done" and 0 <= r["area"] <= 1 and 0 <= r["accuracy_hard"] <= 1
        cfg, _, summary = load_run(root / r["run"])
        assert (cfg.alpha, cfg.area_target) == (r["alpha"], r["area_target"]) and summary["status"] == "done"
    assert "| trial | alpha | area_target |" in (out / "SWEEP.md").read_text()


def test_cli_sweep_writes_its_files_and_refuses_bad_axes(tmp_path, capsys):
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    code = main(["sweep", "--preset", "seed", "--grid", "alpha=0.5,0.9", *sets, "--backend", "sequential",
                 "--root", str(tmp_path / "ck"), "--out", str(tmp_path / "sw"), "--name", "cli"])
    out = capsys.readouterr().out
    assert code == 0 and "2 trials of seed over alpha" in out and "trial 1: done" in out
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["cli-t000", "cli-t001"]
    assert json.loads((tmp_path / "sw" / "sweep.json").read_text())["trials"] == 2
    assert main(["sweep", "--grid", "alpha=3"]) == 2
    assert "alpha must be in [0, 1]" in capsys.readouterr().err


def test_without_ray_the_command_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)                     # as if not installed
    code = main(["sweep", "--grid", "alpha=0.5", "--set", "steps=2", "--root", str(tmp_path / "ck"),
                 "--out", str(tmp_path / "sw")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install -r requirements-sweep.txt" in err and "--backend sequential" in err


def test_the_sweeps_page_launches_watches_and_links_trials(tmp_path, monkeypatch):
    """Launch a tiny sequential sweep from the page, wait for it, see heatmaps, Pareto and the trial links."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    import ui
    monkeypatch.chdir(tmp_path)
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(root / "app.py"), default_timeout=60)
        at.run()
        at.switch_page("pages/sweeps.py").run()
        assert not at.exception
        at.get_by_key("sweep-xv").set_value("0.5,0.9")
        at.get_by_key("sweep-yv").set_value("0.1,1")
        at.get_by_key("sweep-steps").set_value(10)
        at.get_by_key("sweep-backend").set_value("sequential")
        at.get_by_key("sweep-set").set_value(" ".join(f"{k}={v}" for k, v in TINY.items() if k != "steps"))
        at.run()
        assert "4 trials" in " ".join(c.value for c in at.caption)
        at.button(key="sweep-launch").click().run()
        (job,) = ui.sweep_jobs().values()
        assert job.join(120) and job.status == "done", job.error
        at.run()
        assert not at.exception
        assert len(at.get("plotly_chart")) == 4                         # three heatmaps and the Pareto plot
        assert len(at.dataframe[0].value) == 4
        assert (tmp_path / "sweeps" / job.plan.name / "sweep.csv").is_file()
        assert len(list((tmp_path / "checkpoints").iterdir())) == 4
    finally:
        for job in ui.sweep_jobs().values():
            job.stop()
            job.join(60)
        st.cache_resource.clear()


def test_a_background_sweep_stops_its_trial_in_flight_and_starts_no_other(tmp_path):
    """SweepJob.stop() (the Stop button, or close() at the server's exit): the trial under way stops within a
    record and is saved as stopped, no new one starts, the job's status is 'stopped'."""
    from masklab.sweep import SweepJob
    plan = make_plan("seed", ["alpha=0.1,0.2,0.3"], overrides={**TINY, "steps": "100000"}, name="stop")
    job = SweepJob(plan, tmp_path / "ck", tmp_path / "sw", "sequential").start()
    time.sleep(1.0)                                 # the first trial trains (its folder is written when it ends)
    assert job.close(60) and job.status == "stopped" and job.error is None
    rows = job.rows()
    assert len(rows) == 1 and rows[0]["status"] == "stopped" and rows[0]["steps_done"] < 100000, rows
    assert len(read_sweep(tmp_path / "sw")[1]) == 1
