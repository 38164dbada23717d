"""MaskLab: train an attention branch whose mask over the image is exactly 0/1, sparse, and does not collapse.

The public API for your own model (the CLI, the app and the benchmark use the same objects):

    from masklab import MaskGate, AreaConstraint

- `MaskGate(kind="hard_concrete")`: per-pixel logits (B, 1, H, W) -> mask, one class for every gate
  (masklab.gates.GATES); `.relaxed`, `.hard_mask`, `.area` (the differentiable area to constrain).
- `AreaConstraint(target, steps, ...)`: `penalty = constraint(area, step)`, then `constraint.update()` after the
  optimiser's step; the target is annealed from 1.0 and held by a Lagrange multiplier (and a floor).
- `Config`, `preset(name)`, `fit(cfg)`: MaskLab's own model and training run, as the CLI does them.

Names are imported on first use, so `python -m masklab --help` does not load torch.
"""
from importlib import import_module

__all__ = ["MaskGate", "AreaConstraint", "GATES", "Config", "preset", "fit"]
_WHERE = {"MaskGate": "gates", "GATES": "gates", "AreaConstraint": "constraint", "Config": "config",
          "preset": "config", "fit": "runs"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'masklab' has no attribute {name!r}")
