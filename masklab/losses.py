"""Mask losses, each `(out, cfg, target) -> scalar`, kept in MASK_LOSSES; the shape terms; the objective; and
cfg-level views of the schedules (area_target: AreaConstraint's annealed target; temperature_at).

The seed loss is a reconstruction: the original formula in the question (Cross Validated 384355) was an
image that is lost. Why it collapses with a hard-sigmoid gate: the README's method table (row `seed`) and the
app's Loss explorer, which plots its slope of about alpha/lam at m = 0 against the gate's zero gradient.

References:
  expected L0: Louizos et al. 2018.  Exact area on the sorted mask: Fong, Patrick, Vedaldi 2019 (TorchRay).
  Target-area constraint with a Lagrange multiplier: Bastings et al. 2019 (HardKuma); Verelst & Tuytelaars
  2020 (dynconv).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .constraint import AreaConstraint
from .gates import hard_concrete_open_prob


def seed_loss(m: Tensor, alpha: float, lam: float) -> Tensor:
    """Per-pixel: alpha * log(m + lam) + (1 - alpha) * log(1 - m + lam). Concave, minima at 0 and 1;
    alpha > 0.5 makes 0 the deeper well. Its slope near m = 0 is about alpha / lam."""
    return alpha * torch.log(m + lam) + (1 - alpha) * torch.log(1 - m + lam)


def sorted_area_loss(relaxed_mask: Tensor, target: float) -> Tensor:
    """Mean squared distance between each image's sorted mask and the sorted ideal mask with exactly
    round(target * pixels) ones (TorchRay's area constraint)."""
    flat = relaxed_mask.flatten(1)                                   # (B, HW)
    values, _ = flat.sort(dim=1)
    n = flat.shape[1]
    ones = int(round(target * n))
    ideal = torch.zeros(n, device=flat.device, dtype=flat.dtype)
    if ones:
        ideal[n - ones:] = 1.0
    return ((values - ideal) ** 2).mean()


def total_variation(m: Tensor) -> Tensor:
    """Mean absolute difference between neighbouring mask pixels (favours contiguous masks)."""
    return (m[..., 1:, :] - m[..., :-1, :]).abs().mean() + (m[..., :, 1:] - m[..., :, :-1]).abs().mean()


def _expected_l0(out, cfg, target):
    """Expected number of open gates per pixel: P(z > 0) for hard concrete, P(logit > 0) otherwise."""
    if cfg.gate == "hard_concrete":
        return hard_concrete_open_prob(out.mask_logits, out.temperature).mean()
    return torch.sigmoid(out.mask_logits).mean()


MASK_LOSSES = {  # name -> (out, cfg, target) -> scalar, weighted by cfg.beta
    "none": lambda out, cfg, target: out.mask.new_zeros(()),
    "seed": lambda out, cfg, target: seed_loss(out.mask, cfg.alpha, cfg.lam).mean(),
    "mse_zero": lambda out, cfg, target: F.mse_loss(out.mask, torch.zeros_like(out.mask)),
    "pooled_l1": lambda out, cfg, target: out.features.abs().mean(),   # the answer: L1 before pooling
    "l1": lambda out, cfg, target: out.mask.mean(),
    "l0": _expected_l0,
    "sorted_area": lambda out, cfg, target: sorted_area_loss(out.relaxed, target),
}


def objective(cfg, out, y: Tensor, target: float, penalty: Tensor | None):
    """(loss, ce, mask_loss) = CE + beta * L_mask + penalty + tv * TV + bimodal * mean(m(1-m)).

    `penalty` is the area constraint's term for this step (AreaConstraint(area, step); zero without the
    constraint), or None for a model whose mask has no terms (the unmasked model; the closing phase)."""
    ce = F.cross_entropy(out.logits.float(), y)
    mask_loss = MASK_LOSSES[cfg.mask_loss](out, cfg, target).float()
    loss = ce + cfg.beta * mask_loss
    if penalty is None:
        return loss, ce, mask_loss
    loss = loss + penalty.float()
    if cfg.tv:
        loss = loss + cfg.tv * total_variation(out.mask).float()
    if cfg.bimodal:
        loss = loss + cfg.bimodal * (out.relaxed * (1 - out.relaxed)).mean().float()
    return loss, ce, mask_loss


def area_target(cfg, step: int) -> float:
    """The target area at `step` (1-based) of cfg's schedule (AreaConstraint.target): 1.0 through the warm-up, then
    down to cfg.area_target over the next anneal_frac of training (linearly or geometrically), then constant."""
    return AreaConstraint.from_config(cfg).target(step)


def temperature_at(cfg, step: int) -> float:
    """Geometric anneal from cfg.temperature to cfg.temperature_end over the whole run."""
    progress = min(1.0, max(0.0, (step - 1) / max(1, cfg.steps - 1)))
    return cfg.temperature * (cfg.temperature_end / cfg.temperature) ** progress
