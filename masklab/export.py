"""Export a trained run's attention branch and gate for inference: image -> (hard mask, m_eval), without MaskLab.

    python -m masklab export --checkpoint RUN --format torchscript|export|onnx [--out FILE]

- torchscript: `torch.jit.load(FILE)(x)`; traced at the run's input size, any batch size.
- export: a torch.export program (`torch.export.load(FILE).module()(x)`), torch's successor to TorchScript.
- onnx: an ONNX graph with a dynamic batch axis; needs the `onnx` and `onnxscript` packages (requirements-export.txt),
  otherwise a one-line error says so.
The exported module takes x (B, C, H, W) in [0, 1] at the run's input size and returns (hard mask (B, 1, H, W)
as 0.0/1.0, m_eval (B, 1, H, W)), the masks MaskLab computes with the run's final temperature and threshold
0.5: `masklab eval` and Inspect see the same ones (tests/test_export.py compares them on the test set).
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

SUFFIX = {"torchscript": ".torchscript.pt", "export": ".pt2", "onnx": ".onnx"}   # format -> file ending
FORMATS = tuple(SUFFIX)


class ExportError(ValueError):
    """An export that cannot be made here; the message says why and what to do."""


class MaskOnly(nn.Module):
    """The attention branch and the gate's deterministic relaxation of a MaskedClassifier: x -> (hard, m_eval)."""

    def __init__(self, model, temperature: float, threshold: float = 0.5):
        super().__init__()
        if model.attention is None:
            raise ExportError("this run has no learned mask (unmasked or oracle): nothing to export")
        self.attention, self.gate = model.attention, model.mask_gate
        # with the glimpse or refine the branch also reads the classifier's features: the whole model travels
        self.reads_classifier = model if model.glimpse is not None or model.refine is not None else None
        self.temperature, self.threshold = float(temperature), float(threshold)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.attention(x) if self.reads_classifier is None else self.reads_classifier.mask_logits(x)
        m = self.gate.relaxed(logits, self.temperature)
        return (m > self.threshold).to(x.dtype), m


def export(run_dir: Path, fmt: str, out: Path | None = None) -> Path:
    """Write the run's mask module in `fmt` to `out` (default: <run>/mask<suffix>); returns the path."""
    from .checkpoint import load_run
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    cfg, model, summary = load_run(Path(run_dir))
    module = MaskOnly(model.eval(), cfg.temperature_end).eval()
    size = (summary.get("data") or {}).get("input_size")
    if not size:
        raise ExportError(f"{run_dir}: summary.json does not say the input size; train the run again")
    example = torch.rand(2, model.channels, *size)
    out = Path(out) if out else Path(run_dir) / f"mask{SUFFIX[fmt]}"
    if fmt == "torchscript":
        with warnings.catch_warnings():              # TorchScript is deprecated in favour of torch.export
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(torch.jit.trace(module, example), str(out))
    elif fmt == "export":
        batch = torch.export.Dim("batch", min=1)
        torch.export.save(torch.export.export(module, (example,), dynamic_shapes=({0: batch},)), str(out))
    else:
        if any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxscript")):
            raise ExportError("ONNX export needs the onnx and onnxscript packages: pip install -r "
                              "requirements-export.txt (or use --format torchscript / export)")
        torch.onnx.export(module, (example,), str(out), input_names=["x"], output_names=["hard", "m_eval"],
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), dynamo=True)
    return out
