"""Run folders: config.json + model.pt (a state_dict only) + metrics.csv + summary.json, written atomically.

model.pt is only ever read with torch.load(..., weights_only=True): loading a checkpoint from anywhere must
not run anyone's code. Every problem with a folder is a CheckpointError naming the file and what is wrong.
"""
from __future__ import annotations

import csv
import io
import json
import os
import pickle
import re
import tempfile
import time
from pathlib import Path

import torch

from .config import Config, ConfigError
from .models import MaskedClassifier, build_model

FILES = ("config.json", "model.pt", "metrics.csv", "summary.json")


class CheckpointError(ValueError):
    """A run folder that cannot be loaded; the message names the file and the problem."""


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)                               # mkstemp makes 0600; run folders are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_run(run_dir: Path, cfg: Config, model: MaskedClassifier, records: list[dict], summary: dict) -> Path:
    """Write the four run files (each atomically); summary.json last, so its presence means complete."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    torch.save(state, buffer)
    write_atomic(run_dir / "model.pt", buffer.getvalue())
    write_atomic(run_dir / "config.json", (cfg.to_json() + "\n").encode())
    write_atomic(run_dir / "metrics.csv", metrics_csv(records).encode())
    write_atomic(run_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return run_dir


def metrics_csv(records: list[dict]) -> str:
    out = io.StringIO()
    if records:
        writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return out.getvalue()


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.csv as a list of dicts of floats (empty if the run logged nothing)."""
    path = Path(run_dir) / "metrics.csv"
    try:
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError, csv.Error) as e:
        raise CheckpointError(f"{path}: not a metrics table ({e})") from None


def read_summary(run_dir: Path) -> dict:
    path = Path(run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (the run did not finish writing, or this is not a run folder)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(summary, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return summary


# Fields added after runs were saved, with the value that reproduces how such a run trained (their defaults
# may since have changed): a run saved before the field existed gets this value, not today's default.
BEFORE = {"clamp_backward": True, "mask_norm": False, "logit_bound": 0.0, "area_floor": 0.0, "area_seen": False,
          "finetune": 0.0, "mask_upsample": "nearest", "gain_site": "bounded", "noise_end": 1.0, "damping": 0.0,
          "commit": False, "average": 0.0}


def read_config(run_dir: Path) -> Config:
    """The run's Config. A field the file lacks takes its default, except where the default changed since
    (BEFORE): a hard-concrete run saved before `clamp_backward` existed trained with the backward through the
    clamp, one saved before `mask_norm` without normalised attention features, and so on."""
    path = Path(run_dir) / "config.json"
    try:
        text = path.read_text()
        cfg = Config.from_json(text)
        given = json.loads(text)
        missing = {k: v for k, v in BEFORE.items() if k not in given
                   and (k != "clamp_backward" or cfg.gate == "hard_concrete")}
        return cfg.replace(**missing) if missing else cfg
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing: is {Path(run_dir)} a MaskLab run folder?") from None
    except (ConfigError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: {e}") from None


def load_run(run_dir: Path, device: str | torch.device = "cpu") -> tuple[Config, MaskedClassifier, dict]:
    """(config, model in eval mode on `device`, summary) of a run folder, or a CheckpointError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: not a folder (expected a run folder with {', '.join(FILES)})")
    cfg, summary = read_config(run_dir), read_summary(run_dir)
    shape = summary.get("data", {})
    try:
        channels, classes = int(shape["channels"]), int(shape["classes"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{run_dir / 'summary.json'}: lacks data.channels / data.classes") from None
    state = load_state(run_dir / "model.pt")
    model = build_model(cfg, channels, classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{run_dir / 'model.pt'}: weights do not fit the model of config.json "
                              f"({'; '.join(line.strip() for line in first[:3])})") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{run_dir / 'model.pt'}: non-finite weights in {', '.join(bad[:3])}")
    return cfg, model.to(device).eval(), summary


def load_state(path: Path) -> dict:
    """A state_dict from `path`, read with weights_only=True: a pickle that would run code is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, ImportError,
            TypeError, UnicodeDecodeError, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: refused or unreadable as plain weights ({reason[:200]}). Only "
                              f"state_dicts of tensors load; nothing in the file was executed.") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{path}: not a state_dict (a dict of name -> tensor)")
    return state


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def new_run_id(cfg: Config, label: str | None = None) -> str:
    """A readable, sortable id: 20261125-174200-hard-concrete-s0."""
    name = _UNSAFE.sub("-", label or cfg.gate).strip("-") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-s{cfg.seed}"


def unique_dir(root: Path, run_id: str) -> Path:
    """root/run_id, created now, with -2, -3 ... appended if it already exists."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = root / (run_id if n == 1 else f"{run_id}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise CheckpointError(f"{root}: cannot find a free folder name for {run_id}")
