"""Sweeps that end early: a trial whose mask has collapsed for good is stopped early (and saved, marked so),
and a Ray sweep stops when its should_stop says so (the Sweeps page's Stop button)."""
import pytest

from masklab.device import usable_cpus
from masklab.sweep import SweepError, make_plan, read_sweep, run_sweep, run_trial

TINY = {"canvas": "32", "clutter": "2", "batch_size": "8", "log_every": "2", "test_size": "40", "width": "4",
        "classifier_width": "4", "device": "cpu", "steps": "20", "warmup": "0.0"}


def _closed_from_the_start():
    """The seed method with its gates shut from step 1 (init_bias -10: the hard sigmoid is 0 with no gradient):
    a collapse that lasts."""
    return make_plan("seed", overrides={**TINY, "init_bias": "-10"}, name="closed").trials[0]


def test_a_collapsed_trial_is_stopped_early_and_saved(tmp_path):
    """Window: max(3, 10% of 20 steps / 2) = 3 records of area 0 -> stopped at step 6 of 20, status stopped."""
    from masklab.checkpoint import load_run
    cfg = _closed_from_the_start()
    row = run_trial(cfg.to_json(), str(tmp_path / "early"))
    assert row["stopped_early"] is True and row["status"] == "stopped" and row["steps_done"] == 6
    assert row["reason"] == "stopped early: the mask kept nothing from step 6 on (collapsed)"
    assert row["area"] == 0.0 and row["collapsed"] is True
    _, _, summary = load_run(tmp_path / "early")
    assert summary["status"] == "stopped" and summary["reason"] == row["reason"]


def test_without_early_stop_the_collapsed_trial_runs_to_the_end(tmp_path):
    row = run_trial(_closed_from_the_start().to_json(), str(tmp_path / "full"), early_stop=False)
    assert row["stopped_early"] is False and row["status"] == "done" and row["steps_done"] == 20


def test_a_trial_that_keeps_pixels_is_not_stopped(tmp_path):
    cfg = make_plan("hard-concrete", overrides=TINY, name="open").trials[0]
    row = run_trial(cfg.to_json(), str(tmp_path / "open"))
    assert row["stopped_early"] is False and row["status"] == "done" and row["steps_done"] == 20


def test_the_sweep_row_and_the_cli_say_a_trial_stopped_early(tmp_path, capsys):
    from masklab.cli import main
    sets = [a for k, v in {**TINY, "init_bias": "-10"}.items() for a in ("--set", f"{k}={v}")]
    assert main(["sweep", "--preset", "seed", "--grid", "alpha=0.8,0.9", *sets, "--backend", "sequential",
                 "--root", str(tmp_path / "ck"), "--out", str(tmp_path / "sw"), "--name", "es"]) == 0
    out = capsys.readouterr().out
    assert out.count("(stopped early)") == 2
    _, rows = read_sweep(tmp_path / "sw")
    assert [r["stopped_early"] for r in rows] == [True, True] and {r["steps_done"] for r in rows} == {6}
    assert main(["sweep", "--preset", "seed", "--grid", "alpha=0.9", *sets, "--backend", "sequential",
                 "--no-early-stop", "--root", str(tmp_path / "ck2"), "--out", str(tmp_path / "sw2")]) == 0
    assert "(stopped early)" not in capsys.readouterr().out
    assert read_sweep(tmp_path / "sw2")[1][0]["steps_done"] == 20


@pytest.mark.xdist_group("ray")                        # one worker starts Ray for all (conftest's ray_session)
def test_a_trial_asking_for_more_cpus_than_ray_has_is_refused_not_left_waiting(tmp_path, ray_session):
    """Ray would queue a trial it can never place and wait for ever (a 1-core machine asked for 2 CPUs a trial
    hung): run_sweep says what to lower instead, before any trial starts."""
    plan = make_plan("hard-concrete", ["alpha=0.1,0.2"], overrides=TINY, name="ray-too-big")
    cpus = ray_session.cluster_resources()["CPU"]
    with pytest.raises(SweepError, match="lower --cpus-per-trial"):
        run_sweep(plan, tmp_path / "ck", tmp_path / "sw", "ray", cpus_per_trial=cpus + 1)
    with pytest.raises(SweepError, match="lower --gpus-per-trial"):
        run_sweep(plan, tmp_path / "ck", tmp_path / "sw", "ray",
                  gpus_per_trial=ray_session.cluster_resources().get("GPU", 0) + 1)
    assert not list((tmp_path / "ck").iterdir())


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_ray_sweep_runs_its_trials_and_stops_when_asked(tmp_path, ray_session):
    """The suite's one Ray experiment (each trial starts a worker process; one experiment took 11-42 s here), so it
    checks both: the finished trials leave what a sequential sweep's do (test_sweep's end-to-end test), and
    should_stop, true once the first trial is in, ends the experiment: the trials not finished are left out and
    sweep.csv holds exactly the finished ones."""
    from test_sweep import assert_saved_sweep
    plan = make_plan("hard-concrete", ["alpha=0.1,0.2,0.3", "area_target=0.1,0.5"], overrides={**TINY, "steps": "10"},
                     name="ray-stop")
    seen = []
    rows = run_sweep(plan, tmp_path / "ck", tmp_path / "sw", "ray", cpus_per_trial=min(2, usable_cpus()),
                     on_trial=lambda i, r: seen.append(i), should_stop=lambda: bool(seen))
    assert 1 <= len(rows) < 6 and sorted(r["trial"] for r in rows) == sorted(seen)
    meta, saved = read_sweep(tmp_path / "sw")
    assert len(saved) == len(rows)
    assert_saved_sweep(tmp_path / "ck", tmp_path / "sw", saved, meta)
