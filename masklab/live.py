"""Live training runs for the app: one worker thread per run, a process-wide RunManager, no Streamlit.

A Run is `runs.fit` on its own thread (the one run driver the CLI and the benchmark use too). The worker writes
records, mask snapshots, status and errors under the run's lock; pages read immutable RunViews (copies, see
masklab.views), so the UI never sees a list being appended to. Pause,
resume, step and stop are requests the worker honours between records (pause = do not pull the next one).
Every run ends in a run folder written by save_run, whether it finished, was stopped or failed, and an atexit
hook stops and joins the workers so a server shutdown saves live runs instead of killing them mid-step.
"""
from __future__ import annotations

import atexit
import re
import shutil
import threading
import time
from pathlib import Path

import torch

from .checkpoint import CheckpointError, new_run_id, unique_dir
from .config import CHECKPOINTS, DEMO_RUNS, Config
from .runs import fit
from .train import Record
from .views import MAX_SNAPSHOTS, Probe, RunView, Snapshot, load_view, probe_of, row, take_snapshot

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class RunError(ValueError):
    """A request the manager refuses (bad id, too many live runs, deleting a live run); one clear line."""


def check_id(run_id: str) -> str:
    """`run_id` if it names a folder directly inside the checkpoints root (it comes from URLs), else RunError."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
        raise RunError(f"{run_id!r} is not a run id (letters, digits, '.', '_' and '-', at most 128)")
    return run_id


class Run:
    """One training run on its own daemon thread. The thread writes under the lock; everyone else reads views."""

    def __init__(self, run_dir: Path, cfg: Config, label: str | None = None):
        self.id, self.dir, self.cfg, self.label = run_dir.name, run_dir, cfg, label
        self._lock = threading.Lock()
        self._wake = threading.Event()     # set by every control request; the paused worker waits on it
        self._stop = threading.Event()
        self._paused, self._credits, self._waiting = False, 0, False
        self._phase, self._reason = "starting", None
        self._records: list[Record] = []
        self._snapshots: list[Snapshot] = []
        self._probe: Probe | None = None
        self._summary: dict | None = None
        self._model, self._x = None, None            # set by fit's on_start, on this run's thread
        self._updated = time.time()
        self._every = 1                              # a snapshot every _every records; doubles when they are thinned
        self._thread = threading.Thread(target=self._work, name=f"masklab-{self.id}", daemon=True)

    # --- control (any thread) ----------------------------------------------------------------------------
    def start(self) -> "Run":
        self._thread.start()
        return self

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused, self._credits = False, 0
        self._wake.set()

    def step(self, records: int = 1) -> None:
        """While paused, let the worker pull `records` more records (log_every steps each), then pause again."""
        with self._lock:
            if self._paused:
                self._credits += records
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True if it has ended (its run folder is written)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def view(self) -> RunView:
        with self._lock:
            return RunView(self.id, self.cfg, self.label, self._status(), self._reason, tuple(self._records),
                           tuple(self._snapshots), self._probe, self._summary, self.alive, self._updated)

    def _status(self) -> str:
        if self._phase != "training":
            return self._phase
        if self._stop.is_set():
            return "stopping"
        if self._paused and not self._credits:
            return "paused" if self._waiting else "pausing"
        return "running"

    # --- worker ------------------------------------------------------------------------------------------
    def _turn(self) -> bool:
        """Block while paused (and no step credits); False once a stop is requested."""
        while True:
            with self._lock:
                if self._stop.is_set():
                    return False
                if not self._paused or self._credits:
                    self._credits = max(0, self._credits - 1)
                    self._waiting = False
                    return True
                self._waiting = True
                self._wake.clear()
            self._wake.wait()

    def _work(self) -> None:
        """fit() on this thread: the snapshot hook sees the model, and should_stop blocks while paused."""
        try:
            _, summary = fit(self.cfg, out=self.dir, label=self.label, on_start=self._started, on_record=self._add,
                             should_stop=lambda: not self._turn(), on_index=self._indexing)
            status, reason = summary["status"], summary["reason"]
        except Exception as e:                       # surfaced in the UI, not lost with the thread
            summary, status, reason = None, "failed", f"{type(e).__name__}: {e}"
            if self._model is None:                  # nothing trained: no run folder to keep
                shutil.rmtree(self.dir, ignore_errors=True)
            else:                                    # trained, but the folder could not be written (a full disk)
                reason = f"could not save the run folder: {reason}"
        with self._lock:
            self._phase, self._reason, self._summary = status, reason, summary
            self._waiting = False

    def _thin(self) -> None:
        """Keep every other snapshot (those on the doubled interval) and the newest: the history stays bounded on
        any run length, and the first masks still come with the first record. Under the lock."""
        self._every *= 2
        newest = self._snapshots[-1]
        self._snapshots = [s for s in self._snapshots            # record n is at step n * log_every (the last: steps)
                           if -(-s.step // self.cfg.log_every) % self._every == 0 or s is newest]

    def _indexing(self, done: int, total: int) -> None:
        with self._lock:
            self._phase, self._reason = "indexing", f"checking the folder's files: {done:,} of {total:,}"

    def _started(self, model, data) -> None:
        self._model = model
        self._x, probe = probe_of(data)
        with self._lock:
            self._probe, self._phase, self._reason = probe, "training", None

    def _add(self, record: Record) -> None:
        n = len(self._records) + 1                   # only this thread appends
        last = record.step >= self.cfg.steps
        snap = take_snapshot(self._model, self._x, record.temperature, record.step) \
            if last or n % self._every == 0 else None
        with self._lock:
            self._records.append(record)
            if snap is not None:
                self._snapshots.append(snap)
                if len(self._snapshots) > MAX_SNAPSHOTS:
                    self._thin()
            self._updated = time.time()
            if last or self._stop.is_set():
                self._phase = "saving"               # fit evaluates and writes the folder next


class RunManager:
    """All runs of this process (live or finished) plus the run folders under `root`. Thread-safe."""

    def __init__(self, root: Path | str = CHECKPOINTS, max_live: int = 2, threads: int | None = None):
        self.root = Path(root).resolve()     # workers save after the caller may have changed directory
        self.max_live, self.threads = max_live, threads
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.shutdown)

    def start(self, cfg: Config, label: str | None = None) -> Run:
        """Start a run of `cfg` in a new folder root/<run-id>; RunError when max_live runs are already live."""
        with self._lock:
            if self._closed:
                raise RunError("the server is shutting down: no new runs")
            live = [r.id for r in self._runs.values() if r.alive]
            if len(live) >= self.max_live:
                raise RunError(f"{len(live)} runs are already training ({', '.join(live)}): stop one first")
            if self.threads:
                torch.set_num_threads(self.threads)
            run = Run(unique_dir(self.root, new_run_id(cfg, label)), cfg, label)
            self._runs[run.id] = run
        return run.start()

    def get(self, run_id: str) -> Run | None:
        """The run of this process with that id (live or finished), or None."""
        with self._lock:
            return self._runs.get(run_id)

    def live(self) -> list[Run]:
        with self._lock:
            return [r for r in self._runs.values() if r.alive]

    def path(self, run_id: str) -> Path:
        return self.root / check_id(run_id)

    def saved_ids(self) -> list[str]:
        """Ids of complete run folders on disk (summary.json is written last), newest first."""
        if not self.root.is_dir():
            return []
        ids = [p.name for p in self.root.iterdir()
               if p.is_dir() and _RUN_ID.fullmatch(p.name) and (p / "summary.json").is_file()]
        return sorted(ids, key=lambda i: (self.root / i / "summary.json").stat().st_mtime, reverse=True)

    def ids(self) -> list[str]:
        """Every run id: live runs of this process first, then saved runs, newest first."""
        with self._lock:
            live = [r.id for r in reversed(self._runs.values()) if r.alive]
        return live + [i for i in self.saved_ids() if i not in live]

    def view(self, run_id: str, masks: bool = True) -> RunView | None:
        """The run's view: from memory when this process ran it, else from its folder (None if neither)."""
        run = self.get(check_id(run_id))
        if run is not None:                          # memory has the whole mask history, disk only the end
            return run.view()
        path = self.path(run_id)
        return load_view(path, masks) if (path / "summary.json").is_file() else None

    def rows(self) -> list[dict]:
        """One table row per run (see row())."""
        out = []
        for run_id in self.ids():
            run = self.get(run_id)
            try:
                out.append(row(run.view() if run is not None and run.alive else load_view(self.path(run_id), False)))
            except CheckpointError as e:
                out.append({"run": run_id, "status": "unreadable", "reason": str(e)})
        return out

    def delete(self, run_id: str) -> None:
        """Delete a saved run folder; RunError for live runs and the shipped demo."""
        path = self.path(run_id)
        run = self.get(run_id)
        if run is not None and run.alive:
            raise RunError(f"{run_id} is still training: stop it first")
        if run_id in DEMO_RUNS:
            raise RunError(f"{run_id} ships with the repository; the app does not delete it")
        if path.is_symlink() or not path.is_dir():
            raise RunError(f"{run_id}: no such run folder under {self.root}")
        shutil.rmtree(path)
        with self._lock:
            self._runs.pop(run_id, None)

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop every live run and wait for its folder to be written (atexit, cache release, tests)."""
        with self._lock:
            self._closed = True
            runs = list(self._runs.values())
        for run in runs:
            run.stop()
        join_all(runs, timeout)


def join_threads(match, timeout: float) -> list[str]:
    """Wait, `timeout` seconds in all, for every other live thread for which match(thread) is true; the names of
    those still alive after it. For exit hooks: a daemon thread still inside torch's C++ code when Python finalizes
    is ended mid-call, and that aborts the whole process ("terminate called without an active exception", exit
    status -6) where it would have exited cleanly a moment later."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and match(t)]
    join_all(others, timeout)
    return [t.name for t in others if t.is_alive()]


def join_all(joinables, timeout: float) -> None:
    """join(timeout) each of threads or Runs one after the other, `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    for j in joinables:
        j.join(max(0.0, deadline - time.monotonic()))


# --- runs on disk ------------------------------------------------------------------------------------------
