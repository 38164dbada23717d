"""The app's run manager without Streamlit: threads, pause / step / stop, saving, ids, downloads."""
import io
import threading
import time
import zipfile

import pytest

from masklab.checkpoint import FILES, read_metrics, read_summary
from masklab.live import RunError, RunManager, check_id
from masklab.runs import fit
from masklab.views import SHOWN, config_diff, load_view, masks_zip, records_of, zip_folder


@pytest.fixture
def manager(tmp_path):
    m = RunManager(tmp_path / "checkpoints")
    yield m
    m.shutdown(timeout=60)


def wait(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def strip(records):
    return [{k: v for k, v in r.to_dict().items() if k != "seconds"} for r in records]


def test_a_run_trains_on_its_thread_saves_its_folder_and_reloads(manager, tiny):
    """A finished run has every record, a snapshot per record, and a complete folder that loads back the same."""
    run = manager.start(tiny, "tiny")
    assert run.join(60)
    view = run.view()
    assert view.status == "done" and [r.step for r in view.records] == [2, 4, 6]
    assert len(view.snapshots) == 3 and view.snapshots[0].masks.shape == (SHOWN, 32, 32)
    assert abs(view.snapshots[-1].histogram.sum() - 1) < 1e-5
    assert sorted(p.name for p in run.dir.iterdir()) == sorted(FILES)
    disk = load_view(run.dir)
    assert strip(disk.records) == strip(view.records) and disk.status == "done" and len(disk.snapshots) == 1
    assert read_summary(run.dir)["run_id"] == run.id and manager.saved_ids() == [run.id]


def test_a_long_run_shows_masks_from_its_first_record_and_keeps_a_bounded_evenly_spaced_history(manager, tiny,
                                                                                                monkeypatch):
    """However long the run, the first record brings masks; past MAX_SNAPSHOTS every other snapshot is dropped and
    the interval doubles, so the history stays bounded and evenly spaced, and the last record's masks are kept."""
    long = manager.start(tiny.replace(steps=100000, log_every=1))
    wait(lambda: long.view().snapshots)
    assert long.view().snapshots[0].step == 1
    long.stop()
    assert long.join(60)
    import masklab.live
    monkeypatch.setattr(masklab.live, "MAX_SNAPSHOTS", 4)
    run = manager.start(tiny.replace(steps=23, log_every=1))
    assert run.join(60)
    # 1-5 -> thinned to 2 4 5 (the newest stays); 6 8 -> 4 8 (every 4th); 12 16 20 -> 8 16 20; 23 (the last)
    assert [s.step for s in run.view().snapshots] == [8, 16, 20, 23]
    every_other = manager.start(tiny.replace(steps=45, log_every=2))          # records at steps 2, 4, ..., 44, 45
    assert every_other.join(60)
    assert [s.step for s in every_other.view().snapshots] == [16, 32, 40, 45]


def test_runs_are_reproducible_even_when_two_train_at_once(manager, tiny, tmp_path):
    """Each run has its own generators: two concurrent runs of one config match each other and the CLI's fit()."""
    cfg = tiny.replace(steps=10)
    a, b = manager.start(cfg), manager.start(cfg)
    assert a.join(60) and b.join(60)
    _, summary = fit(cfg, root=tmp_path / "cli")
    reference = records_of(read_metrics(tmp_path / "cli" / summary["run_id"]))
    assert strip(a.view().records) == strip(b.view().records) == strip(reference)


def test_pause_holds_the_model_step_advances_one_record_and_stop_saves(manager, tiny):
    """Paused: no records arrive; Step: exactly one more; Resume: training continues; Stop: saved as stopped."""
    run = manager.start(tiny.replace(steps=100000))
    wait(lambda: run.view().step >= 2)
    run.pause()
    wait(lambda: run.view().status == "paused")
    held = run.view().step
    time.sleep(0.2)
    assert run.view().step == held
    run.step()
    wait(lambda: run.view().step == held + 2 and run.view().status == "paused")
    time.sleep(0.2)
    assert run.view().step == held + 2
    run.resume()
    wait(lambda: run.view().step > held + 2)
    run.stop()
    assert run.join(60)
    view = run.view()
    assert view.status == "stopped" and read_summary(run.dir)["status"] == "stopped"
    assert view.reason == f"stopped at step {view.step} of 100000"


def test_stop_while_paused_ends_the_run(manager, tiny):
    """A paused worker wakes up for a stop and saves the run."""
    run = manager.start(tiny.replace(steps=100000))
    run.pause()
    wait(lambda: run.view().status == "paused")
    run.stop()
    assert run.join(60) and run.view().status == "stopped"


def test_a_failing_run_reports_why_and_leaves_no_empty_folder(manager, tiny, tmp_path):
    """An unusable dataset fails the run with the library's message; nothing half-made stays on disk."""
    run = manager.start(tiny.replace(data=f"folder:{tmp_path / 'missing'}"))
    assert run.join(60)
    view = run.view()
    assert view.status == "failed" and "not a directory" in view.reason
    assert not run.dir.exists() and manager.view(run.id).status == "failed"


def test_views_are_copies_that_do_not_change_under_the_reader(manager, tiny):
    """A view taken mid-run keeps its records while the worker appends more."""
    run = manager.start(tiny.replace(steps=40))
    wait(lambda: run.view().step >= 2)
    early = run.view()
    count = len(early.records)
    assert run.join(60)
    assert len(early.records) == count < len(run.view().records)


def test_the_manager_caps_live_runs(tmp_path, tiny):
    """Starting more than max_live concurrent runs is refused with a clear message."""
    m = RunManager(tmp_path, max_live=1)
    try:
        m.start(tiny.replace(steps=100000))
        with pytest.raises(RunError, match="already training"):
            m.start(tiny)
    finally:
        m.shutdown()


def test_shutdown_stops_joins_and_saves_live_runs(tmp_path, tiny):
    """What atexit does at server shutdown: every worker stops, its folder is written, no thread is left."""
    m = RunManager(tmp_path)
    run = m.start(tiny.replace(steps=100000))
    wait(lambda: run.view().step >= 2)
    m.shutdown(timeout=60)
    assert not run.alive and read_summary(run.dir)["status"] == "stopped"
    assert not [t for t in threading.enumerate() if t.name == f"masklab-{run.id}"]
    with pytest.raises(RunError, match="shutting down"):
        m.start(tiny)


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "/etc", "x" * 200, "a\\b", "~root", ".hidden"])
def test_run_ids_from_urls_cannot_escape_the_checkpoints_folder(bad):
    """Ids are single path components of safe characters; anything else is a RunError."""
    with pytest.raises(RunError):
        check_id(bad)


def test_valid_run_ids_pass():
    """The ids the library makes, and the shipped demo, are accepted unchanged."""
    for good in ["demo", "20261125-174200-hard-concrete-s0", "20261125-174200-seed-s1-2"]:
        assert check_id(good) == good


def test_saved_ids_skip_incomplete_and_odd_folders(manager, tiny):
    """Only folders with summary.json count as saved runs; a run still being written is not listed."""
    run = manager.start(tiny)
    assert run.join(60)
    (manager.root / "half-written").mkdir()
    (manager.root / "bad name!").mkdir()
    (manager.root / "bad name!" / "summary.json").write_text("{}")
    assert manager.saved_ids() == [run.id]


def test_delete_removes_a_saved_run_but_not_live_runs_or_the_demos(manager, tiny):
    """Deleting is refused for a training run and for the shipped demos, and removes a saved folder."""
    live = manager.start(tiny.replace(steps=100000))
    with pytest.raises(RunError, match="still training"):
        manager.delete(live.id)
    for demo in ("demo", "demo-photos"):
        (manager.root / demo).mkdir()
        with pytest.raises(RunError, match="ships with the repository"):
            manager.delete(demo)
    live.stop()
    assert live.join(60)
    manager.delete(live.id)
    assert not live.dir.exists() and manager.get(live.id) is None


def test_rows_cover_live_and_saved_runs(manager, tiny):
    """The runs table has a row per run with test metrics once saved and the live batch's while training."""
    done = manager.start(tiny)
    assert done.join(60)
    live = manager.start(tiny.replace(steps=100000))
    wait(lambda: live.view().step >= 2)
    rows = {r["run"]: r for r in manager.rows()}
    assert rows[done.id]["status"] == "done" and rows[done.id]["created"]
    assert rows[live.id]["status"] in ("running", "pausing") and rows[live.id]["accuracy"] is not None


def test_downloads_hold_the_folder_and_one_png_set_per_test_image(manager, tiny):
    """The checkpoint zip holds the four run files; the masks zip a mask, overlay and masked PNG per image."""
    run = manager.start(tiny)
    assert run.join(60)
    names = zipfile.ZipFile(io.BytesIO(zip_folder(run.dir))).namelist()
    assert sorted(names) == sorted(f"{run.id}/{f}" for f in FILES)
    pngs = zipfile.ZipFile(io.BytesIO(masks_zip(run.dir))).namelist()
    assert len(pngs) == 3 * SHOWN and all(n.endswith(".png") for n in pngs)


def test_config_diff_lists_only_differing_fields(tiny):
    """The diff of two configs is exactly the fields that differ, with each run's value."""
    diff = config_diff({"a": tiny, "b": tiny.replace(seed=3, lr=0.01)})
    assert diff == {"lr": {"a": tiny.lr, "b": 0.01}, "seed": {"a": 0, "b": 3}}


EXIT_RACE = """
import atexit, sys, threading, time, torch
from masklab.live import join_threads
torch.set_num_threads(1)
def work():                                   # a page or a feed still computing when the server exits
    x = torch.randn(400, 400)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        x = torch.tanh(x @ x)
threading.Thread(target=work, name="busy", daemon=True).start()
if sys.argv[1] == "wait":
    atexit.register(join_threads, lambda t: t.name == "busy", 30)
time.sleep(0.2)
"""


@pytest.mark.parametrize("how, code", [("exit", -6), ("wait", 0)])
def test_an_exit_hook_that_joins_busy_threads_keeps_the_exit_clean(how, code):
    """A daemon thread inside a torch call when Python finalizes aborts the process (SIGABRT, "terminate called
    without an active exception"): what the server did at SIGTERM when a page or the live feed was still computing.
    join_threads at exit lets the call finish, and the process exits with 0."""
    import subprocess
    import sys
    from pathlib import Path
    done = subprocess.run([sys.executable, "-c", EXIT_RACE, how], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == code, done.stderr[-1000:]
    if code:
        assert "terminate called without an active exception" in done.stderr


def test_join_threads_gives_up_at_its_deadline_and_names_the_threads_left():
    from masklab.live import join_threads
    quick = threading.Thread(target=time.sleep, args=(0.2,), name="quick", daemon=True)
    slow = threading.Thread(target=time.sleep, args=(5,), name="slow", daemon=True)
    quick.start(), slow.start()
    started = time.monotonic()
    assert join_threads(lambda t: t.name in ("quick", "slow"), timeout=1.0) == ["slow"]
    assert not quick.is_alive() and time.monotonic() - started < 3
    assert join_threads(lambda t: t.name == "nothing-by-this-name", timeout=10) == []
