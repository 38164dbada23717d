"""Live training runs for the app: one worker thread per run, a process-wide RunManager, no Streamlit.

A Run drives `train()` on its own thread. The worker writes records, mask snapshots, status and errors under
the run's lock; pages read immutable RunViews (copies), so the UI never sees a list being appended to. Pause,
resume, step and stop are requests the worker honours between records (pause = do not pull the next one).
Every run ends in a run folder written by save_run, whether it finished, was stopped or failed, and an atexit
hook stops and joins the workers so a server shutdown saves live runs instead of killing them mid-step.
"""
from __future__ import annotations

import atexit
import io
import math
import re
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import (CheckpointError, load_run, new_run_id, read_config, read_metrics, read_summary,
                         save_run, unique_dir)
from .config import CHECKPOINTS, FIELD_NAMES, Config
from .data import open_data
from .device import out_of_memory, pick_device
from .images import overlay, run_mask, to_uint8
from .models import build_model
from .runs import summarise
from .train import RECORD_FIELDS, NonFiniteLoss, Record, train

SHOWN = 8              # test images whose masks the app shows at every snapshot
PROBE = 64             # test images the mask histogram is taken over
BINS = 20              # histogram bins over [0, 1]
MAX_SNAPSHOTS = 120    # snapshots kept per run (every record, or every k-th on long runs)
FINAL = ("done", "stopped", "failed")
PROTECTED = ("demo",)  # shipped with the repository: the app does not delete it
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class RunError(ValueError):
    """A request the manager refuses (bad id, too many live runs, deleting a live run); one clear line."""


def check_id(run_id: str) -> str:
    """`run_id` if it names a folder directly inside the checkpoints root (it comes from URLs), else RunError."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
        raise RunError(f"{run_id!r} is not a run id (letters, digits, '.', '_' and '-', at most 128)")
    return run_id


@dataclass(frozen=True)
class Snapshot:
    step: int
    masks: np.ndarray       # (SHOWN, H, W) uint8: m_eval * 255 on the fixed test images
    histogram: np.ndarray   # (BINS,) fraction of m_eval values per bin over the PROBE test images
    area: float             # fraction of probe pixels in the hard mask (m_eval > 0.5)


@dataclass(frozen=True)
class Probe:
    """The fixed test images a run's masks are shown on."""
    x: torch.Tensor          # (SHOWN, C, H, W) float in [0, 1], CPU
    labels: tuple[str, ...]  # true class names


@dataclass(frozen=True)
class RunView:
    """A consistent copy of a run's state at one moment, for display."""
    run_id: str
    cfg: Config
    label: str | None
    status: str              # starting, running, pausing, paused, stopping, saving, done, stopped, failed
    reason: str | None       # why it stopped or failed
    records: tuple[Record, ...]
    snapshots: tuple[Snapshot, ...] = ()
    probe: Probe | None = None
    summary: dict | None = None
    live: bool = False       # a worker thread of this server process owns it
    updated: float = 0.0     # time.time() of the last record

    @property
    def step(self) -> int:
        return self.records[-1].step if self.records else 0

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def eta(self) -> float | None:
        """Seconds of training left at the pace so far (pauses excluded), None before the first record."""
        if not self.records or self.final or self.records[-1].seconds <= 0:
            return None
        last = self.records[-1]
        return last.seconds / last.step * (self.cfg.steps - last.step)


@torch.no_grad()
def take_snapshot(model, x: torch.Tensor, temperature: float, step: int) -> Snapshot:
    """Masks of the first SHOWN images of x and the m_eval histogram over all of x, for the model as it is now."""
    m = model.gate_relaxed(x, temperature).float()                       # (N, 1, H, W)
    hist = torch.histc(m, bins=BINS, min=0.0, max=1.0) / m.numel()
    masks = (m[:SHOWN, 0] * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return Snapshot(step, masks, hist.cpu().numpy(), (m > 0.5).float().mean().item())


def probe_of(data) -> tuple[torch.Tensor, Probe]:
    """(the PROBE test images on the data's device, the Probe of the first SHOWN of them)."""
    x = data.test.x[:PROBE]
    labels = tuple(data.class_names[i] for i in data.test.y[:SHOWN].tolist())
    return x, Probe(x[:SHOWN].detach().cpu(), labels)


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
        self._updated = time.time()
        total = math.ceil(cfg.steps / cfg.log_every)
        self._every = max(1, math.ceil(total / MAX_SNAPSHOTS))
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
        started, model, data, device = time.time(), None, None, None
        status, reason = "done", None
        try:
            device = pick_device(self.cfg.device)
            data = open_data(self.cfg, device)
            model = build_model(self.cfg, data.channels, data.classes).to(device)
            status, reason = self._train(model, data, device)
        except NonFiniteLoss as e:
            status, reason = "failed", str(e)
        except torch.OutOfMemoryError:
            status, reason = "failed", out_of_memory(self.cfg, device)
        except Exception as e:                       # surfaced in the UI, not lost with the thread
            status, reason = "failed", f"{type(e).__name__}: {e}"
        self._finish(model, data, device, status, reason, started)

    def _train(self, model, data, device) -> tuple[str, str | None]:
        x, probe = probe_of(data)
        with self._lock:
            self._probe, self._phase = probe, "training"
        records = train(self.cfg, model, data, device)
        try:
            while self._turn():
                record = next(records, None)
                if record is None:
                    return "done", None
                self._add(record, model, x)
            return "stopped", f"stopped at step {self.view().step} of {self.cfg.steps}"
        finally:
            records.close()

    def _add(self, record: Record, model, x: torch.Tensor) -> None:
        n = len(self._records) + 1                   # only this thread appends
        last = record.step >= self.cfg.steps
        snap = take_snapshot(model, x, record.temperature, record.step) if last or n % self._every == 0 else None
        with self._lock:
            self._records.append(record)
            if snap is not None:
                self._snapshots.append(snap)
            self._updated = time.time()

    def _finish(self, model, data, device, status: str, reason: str | None, started: float) -> None:
        with self._lock:
            self._phase = "saving"
        summary = None
        if model is None:                            # nothing trained: no run folder to keep
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            summary, reason = self._save(model, data, device, status, reason, started)
        with self._lock:
            self._phase, self._reason, self._summary = status, reason, summary
            self._waiting = False

    def _save(self, model, data, device, status, reason, started) -> tuple[dict | None, str | None]:
        records = [r.to_dict() for r in self.view().records]
        try:
            summary = summarise(self.cfg, model, data, records, status, reason, device, started, self.label)
            summary["run_id"] = self.id
            save_run(self.dir, self.cfg, model, records, summary)
            return summary, reason
        except Exception as e:                       # a full disk must not kill the view of the run
            return None, f"{reason + '; ' if reason else ''}could not save the run folder: {type(e).__name__}: {e}"


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
        if run_id in PROTECTED:
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
        deadline = time.monotonic() + timeout
        for run in runs:
            run.join(max(0.0, deadline - time.monotonic()))


# --- runs on disk ------------------------------------------------------------------------------------------

def records_of(rows: list[dict]) -> tuple[Record, ...]:
    """metrics.csv rows (floats) back to Records; columns this version does not know are ignored."""
    return tuple(Record(**{k: int(r[k]) if k == "step" else float(r[k]) for k in RECORD_FIELDS})
                 for r in rows if all(k in r for k in RECORD_FIELDS))


def load_view(run_dir: Path, masks: bool = True) -> RunView:
    """A finished run from its folder; with `masks`, one snapshot of the final model on the probe images."""
    cfg, summary = read_config(run_dir), read_summary(run_dir)
    records = records_of(read_metrics(run_dir))
    snapshots, probe = (), None
    if masks:
        snapshots, probe = _final_masks(run_dir, cfg, summary)
    return RunView(run_dir.name, cfg, summary.get("label"), str(summary.get("status", "done")),
                   summary.get("reason"), records, snapshots, probe, summary, False,
                   (run_dir / "summary.json").stat().st_mtime)


def _final_masks(run_dir: Path, cfg: Config, summary: dict) -> tuple[tuple[Snapshot, ...], Probe | None]:
    try:
        _, model, _ = load_run(run_dir)
        data = open_data(cfg)
    except Exception:                                # e.g. a dataset root that is not on this machine
        return (), None
    x, probe = probe_of(data)
    return (take_snapshot(model, x, cfg.temperature_end, int(summary.get("steps_done") or 0)),), probe


def row(view: RunView) -> dict:
    """The runs-table row: identity, status and the test metrics (live runs: the last training batch's)."""
    metrics = (view.summary or {}).get("metrics") or {}
    last = view.records[-1] if view.records else None
    pick = lambda k, live_k: metrics.get(k) if metrics else (getattr(last, live_k) if last else None)
    return {
        "run": view.run_id, "status": view.status, "label": view.label,
        "gate": view.cfg.gate, "mask_loss": view.cfg.mask_loss, "constraint": view.cfg.constraint,
        "steps": f"{view.step}/{view.cfg.steps}",
        "accuracy": pick("accuracy_hard", "accuracy"), "area": pick("area", "area"),
        "bimodality": pick("bimodality", "bimodality"), "precision_in_box": metrics.get("precision_in_box"),
        "collapsed": metrics.get("collapsed"), "train_s": last.seconds if last else None,
        "created": (view.summary or {}).get("created"),
    }


def config_diff(cfgs: dict[str, Config]) -> dict[str, dict[str, object]]:
    """{field: {run: value}} for the fields whose values differ between the given runs' configs."""
    return {f: {run: getattr(c, f) for run, c in cfgs.items()} for f in FIELD_NAMES
            if len({repr(getattr(c, f)) for c in cfgs.values()}) > 1}


def masks_zip(run_dir: Path, threshold: float = 0.5) -> bytes:
    """A zip of mask, overlay and masked-image PNGs of the run's final model on the fixed test images."""
    cfg, model, _ = load_run(run_dir)
    x, probe = probe_of(open_data(cfg))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for i, label in enumerate(probe.labels):
            r = run_mask(model, x[i:i + 1], cfg.temperature_end, threshold)
            pictures = {"mask": Image.fromarray(to_uint8(r.hard)), "overlay": overlay(r.x, r.hard),
                        "masked": Image.fromarray(to_uint8(r.x * r.hard))}
            for kind, img in pictures.items():
                png = io.BytesIO()
                img.save(png, format="PNG")
                z.writestr(f"{Path(run_dir).name}/test{i:02d}-label{label}.{kind}.png", png.getvalue())
    return buffer.getvalue()


def zip_folder(run_dir: Path) -> bytes:
    """The run folder as a zip archive (files under <run-id>/), for download."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(Path(run_dir).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                z.write(path, f"{Path(run_dir).name}/{path.name}")
    return buffer.getvalue()
