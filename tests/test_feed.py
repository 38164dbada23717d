"""The live feed without a browser: the files the Train page's status line and live charts fetch."""
import json
import os
import time

import pytest
from PIL import Image

from masklab.config import preset
from masklab.explain import collapse
from masklab.feed import LiveFeed, clock, status_of
from masklab.live import RunManager
from masklab.views import SHOWN


@pytest.fixture
def manager(tmp_path):
    m = RunManager(tmp_path / "checkpoints")
    yield m
    m.shutdown(timeout=60)


def feed_of(manager, folder, **kw):
    return LiveFeed(folder, lambda: [r.id for r in manager.live()], lambda i: manager.view(i, masks=False), **kw)


def wait(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def read(feed, run_id):
    return json.loads((feed.folder / f"{run_id}.json").read_text())


def test_the_feed_follows_a_run_to_its_end_and_draws_its_charts(manager, tiny, tmp_path):
    """While the run trains its file has the status line and the newest charts' PNGs (at most two versions on
    disk); once it ends the file says so without anyone asking; close removes the feed's folder."""
    run = manager.start(tiny.replace(steps=400, log_every=2))
    feed = feed_of(manager, tmp_path / "live", every=0.02, charts_every=0.05)
    path = feed.folder / f"{run.id}.json"
    wait(lambda: path.is_file() and (read(feed, run.id)["charts"] or {}).get("version", 0) >= 3)
    state = read(feed, run.id)
    assert state["status"] in ("running", "saving") and state["run"] == run.id and not state["final"]
    assert state["text"].startswith("step ") and " of 400 · " in state["text"] and "ETA" in state["text"]
    charts = state["charts"]
    assert len(charts["masks"]) == len(charts["captions"]) == SHOWN and "at step" in charts["caption"]
    for name in [charts["curves"], charts["histograms"], *charts["masks"]]:
        assert name.startswith(feed.folder.name + "/") and name.endswith(f"-{charts['version']}.png")
        Image.open(tmp_path / "live" / name).verify()                     # a whole PNG, not a half-written one
    run.stop()
    assert run.join(60)
    wait(lambda: read(feed, run.id)["final"])
    assert read(feed, run.id)["status"] == "stopped"
    versions = {p.name.rsplit("-", 1)[1] for p in feed.folder.glob("*.png")}
    assert len(versions) <= 2                                           # older versions are removed
    assert not list(feed.folder.glob(".*.tmp"))
    feed.close()
    assert not feed.folder.exists()


def test_current_writes_only_on_change_and_survives_its_folder_being_removed(manager, tiny, tmp_path):
    """A page mounting the line gets what the file says; an unchanged state is not written again; a folder removed
    under the feed (another server's stale cleanup) is made again; an unknown run has no state."""
    run = manager.start(tiny)
    assert run.join(60)
    feed = feed_of(manager, tmp_path / "live", every=60)
    state = feed.current(run.id)
    path = feed.folder / f"{run.id}.json"
    assert read(feed, run.id) == state and state["status"] == "done" and state["final"]
    before = path.stat().st_mtime_ns
    time.sleep(0.02)
    assert feed.current(run.id) == state and path.stat().st_mtime_ns == before
    assert feed.current("no-such-run") is None
    for p in feed.folder.iterdir():
        p.unlink()
    feed.folder.rmdir()
    feed.draw(run.id)                                                   # a new record since no drawing yet
    assert (feed.folder / f"{run.id}.json").is_file() and read(feed, run.id)["charts"]["version"] == 1
    assert not feed.draw(run.id)                                         # nothing new: no redraw
    feed.close()


def test_a_collapse_reaches_the_file(manager, tmp_path):
    """The seed loss closes every gate: the feed's file carries the collapse's step (the page reruns on it)."""
    cfg = preset("seed", canvas=32, clutter=2, batch_size=8, steps=12, log_every=4, test_size=40, lr=0.02,
                 device="cpu")
    run = manager.start(cfg)
    assert run.join(60)
    feed = feed_of(manager, tmp_path / "live", every=60, collapse=collapse)
    found = collapse(cfg, run.view().records)
    assert found is not None and feed.current(run.id)["collapse"] == found.step
    assert feed_of(manager, tmp_path / "other", every=60).current(run.id)["collapse"] is None
    feed.close()


def test_folders_of_feeds_gone_for_a_day_are_removed_and_live_ones_kept(manager, tmp_path):
    stale, fresh = tmp_path / "live" / "0", tmp_path / "live" / "1"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "x.json").write_text("{}")
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))
    feed = feed_of(manager, tmp_path / "live", every=60)
    assert not stale.exists() and fresh.exists() and feed.folder.parent == tmp_path / "live"
    feed.close()
    assert fresh.exists()


def test_the_status_line_reads_as_the_page_showed_it(manager, tiny):
    """Text, fraction, values and where they were measured: the training batch while live, the test set after."""
    run = manager.start(tiny)
    assert run.join(60)
    view = run.view()
    state = status_of(view)
    assert state["text"] == "step 6 of 6" and state["fraction"] == 1.0 and state["colour"] == "green"
    assert [label for label, _ in state["values"]] == ["accuracy", "area kept", "bimodality", "multiplier μ",
                                                       "temperature τ"]
    assert state["where"] == "test set, hard mask"
    assert state["values"][0][1] == f"{view.summary['metrics']['accuracy_hard']:.1%}"
    assert clock(None) == "–" and clock(59.6) == "1:00" and clock(3600 + 61) == "1:01:01"


def test_a_failing_drawing_does_not_stop_the_feed(manager, tiny, tmp_path, monkeypatch):
    """The feed's thread outlives an exception in a drawing: the status line keeps being published."""
    import masklab.plots
    monkeypatch.setattr(masklab.plots, "LiveCurves", lambda: 1 / 0)
    run = manager.start(tiny.replace(steps=400, log_every=2))
    feed = feed_of(manager, tmp_path / "live", every=0.02, charts_every=0.01)
    path = feed.folder / f"{run.id}.json"
    wait(lambda: path.is_file() and " of 400" in read(feed, run.id)["text"])
    first = read(feed, run.id)["text"]
    wait(lambda: read(feed, run.id)["text"] != first)
    assert read(feed, run.id)["charts"] is None and feed._thread.is_alive()
    run.stop()
    assert run.join(60)
    feed.close()


def test_a_closed_feed_writes_nothing_and_leaves_no_folder(manager, tiny, tmp_path):
    """A drawing after close (the server's exit racing the feed's thread) must not make the folder again."""
    run = manager.start(tiny)
    assert run.join(60)
    feed = feed_of(manager, tmp_path / "live", every=60)
    feed.close()
    feed.draw(run.id)
    feed.current(run.id)
    assert not feed.folder.exists()


def test_close_waits_for_a_drawing_in_flight(manager, tmp_path):
    """The server's exit closes the feed while its thread may be drawing: close returns only once that thread has
    ended (a daemon thread still inside torch or matplotlib when Python finalizes aborts the process), and the
    thread publishes nothing more."""
    import threading
    entered, calls = threading.Event(), []

    def slow_view(run_id):
        calls.append(run_id)
        entered.set()
        time.sleep(0.5)                               # a drawing under load
        return None

    feed = LiveFeed(tmp_path / "live", lambda: ["a", "b", "c"], slow_view, every=0.01)
    assert entered.wait(30)
    feed.close()
    assert not feed._thread.is_alive() and not feed.folder.exists()
    assert len(calls) <= 2                            # the run in flight (draw, then its status); none after it
