"""A live run as files a browser polls by itself: its status line as data (badge, progress, the latest values, a
collapse) in <run id>.json, and its charts (curves, mask overlays, histograms) as PNGs the JSON names.

Why: a Streamlit page that polls its run redraws every element on it at each poll (the sidebar's form included),
and the browser's CPU that costs is taken from the training when they share the machine's cores. The Train page
instead mounts small components that fetch these files (served by Streamlit's static serving) and update in place;
they ask Streamlit for a rerun only when the status changes or a collapse appears. Pure Python: the app decides
where the files are served from.
"""
from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .views import PROBE, RunView, overlay_pngs

COLOURS = {"running": "blue", "pausing": "orange", "paused": "orange", "stopping": "orange", "saving": "violet",
           "starting": "gray", "indexing": "gray", "done": "green", "stopped": "gray", "failed": "red"}
BIMODALITY_HINT = "bimodality: the fraction of m_eval values within 0.01 of 0 or 1"


def clock(seconds: float | None) -> str:
    """m:ss, or h:mm:ss from an hour; – for no value."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def status_of(view: RunView) -> dict:
    """What the status line shows: status and its colour, the progress fraction and its text, the latest values
    as (label, value) pairs with where they were measured, and the reason (a failure's or a phase's note)."""
    last = view.records[-1] if view.records else None
    pace = f" · {last.step / last.seconds:.1f} steps/s" if last and last.seconds > 0 else ""
    text = (f"step {view.step} of {view.cfg.steps} · {clock(last.seconds if last else 0)} training{pace}"
            f" · ETA {clock(view.eta())}" if not view.final else f"step {view.step} of {view.cfg.steps}")
    values, where = [], ""
    if last is not None:
        test = (view.summary or {}).get("metrics") or {}
        where = "test set, hard mask" if test else "last training batch"
        values = [["accuracy", f"{test.get('accuracy_hard', last.accuracy):.1%}"],
                  ["area kept", f"{test.get('area', last.area):.1%}"],
                  ["bimodality", f"{test.get('bimodality', last.bimodality):.1%}"],
                  ["multiplier μ", f"{last.multiplier:.3g}"], ["temperature τ", f"{last.temperature:.3g}"]]
    return {"run": view.run_id, "status": view.status, "colour": COLOURS.get(view.status, "gray"),
            "fraction": min(1.0, view.step / view.cfg.steps), "text": text, "values": values, "where": where,
            "reason": view.reason, "final": view.final}


def masks_caption(shown: int, step: int) -> str:
    """The caption under a snapshot's overlays (the Train page's, live or not)."""
    return (f"Red tint: the mask m_eval on {shown} fixed test images (true label · pixels kept) at step {step}; "
            f"dimmed pixels are removed. Histograms over {PROBE} test images.")


@dataclass
class _Published:
    """What the feed last wrote for one run."""
    text: str = ""                   # the JSON file's text
    final: bool = False
    charts: dict | None = None       # the PNGs' names and captions, as the JSON carries them
    version: int = 0
    drawn: tuple = ()                # (records, snapshots) drawn
    drawn_at: float = 0.0
    collapse: tuple = (-1, None)     # (records seen, the collapse's step or None)
    curves: object = None            # the run's plots.LiveCurves
    histograms: object = None        # and its plots.LiveHistograms
    files: list = field(default_factory=list)   # the PNGs of each version still on disk, oldest first


class LiveFeed:
    """Keeps folder/<token>/<run id>.json (status_of + "collapse" + "charts") for every live run of `live_ids()`,
    checking every `every` seconds on a daemon thread, and once more when a run ends; redraws a run's charts at
    most every `charts_every` seconds and only when it has a new record. `view(id)`: a run's view or None. The
    token's folder is this feed's own: removed at close (and at exit); folders of feeds gone for a day are removed
    at start."""

    def __init__(self, folder: Path, live_ids, view, every: float = 0.5, charts_every: float = 8.0,
                 collapse=None):
        self.folder, self.every, self.charts_every = Path(folder) / secrets.token_hex(8), every, charts_every
        self._live_ids, self._view, self._collapse = live_ids, view, collapse
        self._runs: dict[str, _Published] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        _remove_stale(Path(folder), max_age_s=86400)
        self.folder.mkdir(parents=True)
        self._thread = threading.Thread(target=self._loop, name="masklab-live-feed", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def name(self, file: str) -> str:
        """A file of this feed, relative to the folder the feed was given."""
        return f"{self.folder.name}/{file}"

    def current(self, run_id: str) -> dict | None:
        """The run's state now, written to its file first if it changed (so a page mounting it and the file agree)."""
        view = self._view(run_id)
        if view is None:
            return None
        with self._lock:
            pub = self._runs.setdefault(run_id, _Published())
            state = {**status_of(view), "collapse": self._collapse_step(view, pub), "charts": pub.charts}
            text = json.dumps(state)
            if text != pub.text:
                self._write(f"{run_id}.json", text.encode())
                pub.text, pub.final = text, view.final
        return state

    def _collapse_step(self, view: RunView, pub: _Published) -> int | None:
        if self._collapse is None:
            return None
        if pub.collapse[0] != len(view.records):
            found = self._collapse(view.cfg, view.records)
            pub.collapse = (len(view.records), None if found is None else found.step)
        return pub.collapse[1]

    def draw(self, run_id: str) -> bool:
        """Redraw the run's charts if it has a new record since the last drawing; True if it drew."""
        view = self._view(run_id)
        with self._lock:
            pub = self._runs.setdefault(run_id, _Published())
        drawn = (len(view.records), len(view.snapshots)) if view is not None else pub.drawn
        if view is None or not view.records or drawn == pub.drawn:
            return False
        pub.drawn_at = time.monotonic()                      # a drawing that fails is tried again only as often
        from .plots import LiveCurves, LiveHistograms        # matplotlib, on this thread only
        pub.curves = pub.curves or LiveCurves()
        pngs = {"curves": pub.curves(view.records)}
        snap = view.snapshots[-1] if view.snapshots and view.probe is not None else None
        if snap is not None:
            pub.histograms = pub.histograms or LiveHistograms(len(snap.histogram))
            pngs["histograms"] = pub.histograms(snap, view.snapshots)
            overlays, captions = overlay_pngs(view.probe, snap)
        with self._lock:
            version = pub.version + 1
            names = {key: f"{run_id}-{key}-{version}.png" for key in pngs}
            for key, png in pngs.items():
                self._write(names[key], png)
            charts = {"version": version, **{key: self.name(n) for key, n in names.items()}}
            if snap is not None:
                shown = [f"{run_id}-mask{i}-{version}.png" for i in range(len(overlays))]
                for name, png in zip(shown, overlays):
                    self._write(name, png)
                charts.update(masks=[self.name(n) for n in shown], captions=captions,
                              caption=masks_caption(len(shown), snap.step))
            pub.files.append([*names.values(), *(shown if snap is not None else [])])
            while len(pub.files) > 2:                # a page may still be loading the previous version
                for name in pub.files.pop(0):
                    (self.folder / name).unlink(missing_ok=True)
            pub.charts, pub.version, pub.drawn = charts, version, drawn
        self.current(run_id)
        return True

    def _write(self, name: str, data: bytes) -> None:
        """Write atomically (a poll never reads half a file); the folder is made again if another server removed
        it as stale, never after close. Called under the lock, which close takes too."""
        if self._closed.is_set():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.folder / name)

    def _loop(self) -> None:
        from . import plots                           # noqa: F401  matplotlib, imported before any run needs it
        while not self._closed.wait(self.every):
            with self._lock:
                open_ids = [i for i, pub in self._runs.items() if not pub.final]
            for run_id in dict.fromkeys([*self._live_ids(), *open_ids]):
                if self._closed.is_set():
                    return
                with self._lock:
                    pub = self._runs.get(run_id)
                due = pub is None or time.monotonic() - pub.drawn_at >= self.charts_every
                for publish in ((self.draw, self.current) if due else (self.current,)):
                    try:
                        publish(run_id)
                    except Exception:                 # a full disk, a removed folder, a failed drawing: the thread
                        pass                          # lives on, the status line too; the next tick tries again

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread and remove the folder. Waits for a drawing in flight: at exit, a daemon thread still in
        torch's or matplotlib's C code when the interpreter finalizes aborts the whole process ("terminate called
        without an active exception") instead of letting it exit cleanly."""
        self._closed.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:                              # a drawing's writes in flight finish first, none follow
            shutil.rmtree(self.folder, ignore_errors=True)


def _remove_stale(folder: Path, max_age_s: float) -> None:
    """Other feeds' folders not touched for max_age_s (their server died without closing them)."""
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        try:
            if child.is_dir() and time.time() - child.stat().st_mtime > max_age_s:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            pass
