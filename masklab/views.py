"""What a run looks like to a reader, while it trains or from its folder: RunView (records, mask snapshots on a
few fixed test images, summary), and the on-disk side that reads run folders for the app: the view of a saved
run, the runs-table row, config differences, and zip downloads of masks or of the whole folder.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import load_run, read_config, read_metrics, read_summary
from .config import FIELD_NAMES, Config
from .data import open_data
from .images import enlarge, overlay, png_bytes, run_mask, to_uint8
from .train import RECORD_FIELDS, Record

SHOWN = 8              # test images whose masks the app shows at every snapshot
PROBE = 64             # test images the mask histogram is taken over
BINS = 20              # histogram bins over [0, 1]
MAX_SNAPSHOTS = 120    # snapshots kept per live run: every record, then every other one dropped, interval doubled
FINAL = ("done", "stopped", "failed")


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


def overlay_pngs(probe: Probe, snapshot: Snapshot) -> tuple[list[bytes], list[str]]:
    """PNGs of the probe images with the snapshot's masks tinted on, and captions (true label · kept fraction)."""
    images, captions = [], []
    for i, mask in enumerate(snapshot.masks):
        m = torch.from_numpy(mask.astype(np.float32) / 255.0)[None]            # (1, H, W)
        images.append(png_bytes(enlarge(overlay(probe.x[i], m))))
        captions.append(f"{probe.labels[i]} · kept {(mask > 127).mean():.0%}")
    return images, captions


def probe_of(data) -> tuple[torch.Tensor, Probe]:
    """(the PROBE test images on the data's device, the Probe of the first SHOWN of them)."""
    x = data.test.x[:PROBE]
    labels = tuple(data.class_names[i] for i in data.test.y[:SHOWN].tolist())
    return x, Probe(x[:SHOWN].detach().cpu(), labels)


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
        "bimodality": pick("bimodality", "bimodality"), "contiguity": metrics.get("contiguity"),
        "precision_in_box": metrics.get("precision_in_box"),
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
                z.writestr(f"{Path(run_dir).name}/test{i:02d}-label{label}.{kind}.png", png_bytes(img))
    return buffer.getvalue()


def zip_folder(run_dir: Path) -> bytes:
    """The run folder as a zip archive (files under <run-id>/), for download."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(Path(run_dir).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                z.write(path, f"{Path(run_dir).name}/{path.name}")
    return buffer.getvalue()
