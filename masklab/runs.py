"""One training run from Config to run folder: open the data, build the model, drive train(), evaluate, save.

`fit` is what the CLI and the benchmark call; it takes callbacks (`on_record`, `should_stop`) rather than
printing, so any front end can show progress. A stop, Ctrl-C or a non-finite loss still saves the run, with
its status and reason in summary.json.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Callable

import torch

from .checkpoint import new_run_id, save_run, unique_dir
from .config import CHECKPOINTS, Config
from .data import open_data
from .metrics import clean, evaluate
from .device import out_of_memory, pick_device
from .models import build_model
from .train import NonFiniteLoss, Record, train


def fit(cfg: Config, out: Path | None = None, label: str | None = None,
        on_record: Callable[[Record], None] | None = None,
        should_stop: Callable[[], bool | str] | None = None, root: Path = CHECKPOINTS,
        on_start: Callable[[object, object], None] | None = None,
        on_index: Callable[[int, int], None] | None = None) -> tuple[Path, dict]:
    """Train cfg to completion (or stop / failure), evaluate on the test set and write the run folder: the one
    run driver, used by the CLI, the benchmark, sweeps and the app's training threads.

    Args:
        out: the run folder; default root/<run-id>.
        label: names the run id (a preset name, say); default the gate.
        on_start(model, data): called once the model and the data exist, before the first step (the app keeps
            them to draw masks as training goes).
        on_index(done, total): follows the indexing of a folder's files before training starts.
        on_record(record): called after each record.
        should_stop(): called after each record; a true value ends the run as 'stopped' (a string is kept as the
            reason). It may block: the app pauses a run by not returning.
    A non-finite loss, running out of memory or any other error while training ends the run as 'failed' with the
    reason; the run folder is written all the same (the steps before the fault are kept). An error before the
    model exists (the data cannot be opened, say) is raised: there is nothing to keep.
    Returns (run folder, summary dict).
    """
    started = time.time()
    device = pick_device(cfg.device)
    data = open_data(cfg, device, on_index)
    model = build_model(cfg, data.channels, data.classes).to(device)
    if on_start:
        on_start(model, data)
    records: list[dict] = []
    status, reason = "done", None
    try:
        for record in train(cfg, model, data, device):
            records.append(record.to_dict())
            if on_record:
                on_record(record)
            why = should_stop() if should_stop else None
            if why:
                status = "stopped"
                reason = why if isinstance(why, str) else f"stopped at step {record.step} of {cfg.steps}"
                break
    except NonFiniteLoss as e:
        status, reason = "failed", str(e)
    except torch.OutOfMemoryError:
        status, reason = "failed", out_of_memory(cfg, device)
    except KeyboardInterrupt:
        status, reason = "stopped", f"interrupted after step {records[-1]['step'] if records else 0}"
    except Exception as e:                           # kept in summary.json, not lost with a traceback or a thread
        status, reason = "failed", f"{type(e).__name__}: {e}"
    data.close()                                     # the loader's workers are done
    summary = summarise(cfg, model, data, records, status, reason, device, started, label)
    run_dir = Path(out) if out else unique_dir(root, new_run_id(cfg, label))
    save_run(run_dir, cfg, model, records, summary | {"run_id": run_dir.name})
    return run_dir, summary | {"run_id": run_dir.name}


def summarise(cfg, model, data, records, status, reason, device, started, label=None) -> dict:
    """summary.json: status, timing, the final test metrics and what rebuilding the model needs."""
    metrics = {}
    if records or status == "done":
        try:
            metrics = clean(evaluate(model, data.test, cfg.temperature_end))
        except torch.OutOfMemoryError:
            reason = f"{reason + '; ' if reason else ''}no test metrics: {out_of_memory(cfg, device)}"
    train_s = records[-1]["seconds"] if records else 0.0
    steps_done = records[-1]["step"] if records else 0
    return {
        "status": status, "reason": reason, "label": label,
        "steps_done": steps_done, "steps": cfg.steps,
        "train_s": round(train_s, 3), "wall_s": round(time.time() - started, 3),
        "images_per_s": round(steps_done * cfg.batch_size / train_s, 1) if train_s else None,
        "device": str(device), "metrics": metrics, "final": records[-1] if records else None,
        "data": data.describe(),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
