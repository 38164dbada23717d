"""The target-area constraint, as an object that owns its state: the annealed target, the Lagrange multiplier
that pushes the area down to it, and the floor's multiplier that pushes a mask closing below a fraction of it
back open. masklab.train uses exactly this object; so can your own training loop:

    constraint = AreaConstraint(target=0.3, steps=steps)
    for step in range(1, steps + 1):
        loss = task_loss + constraint(area, step)     # area: the gate's differentiable area (a scalar tensor)
        loss.backward(); optimizer.step()
        constraint.update()                           # dual ascent on the area just seen

References: target-area constraints with a Lagrange multiplier, Bastings et al. 2019 (HardKuma); Verelst &
Tuytelaars 2020 (dynconv).
"""
from __future__ import annotations

import torch
from torch import Tensor

ANNEALS = ("linear", "geometric")


class AreaConstraint:
    """penalty = (mu - nu) * (area - t(step)) [+ damping / 2 * (area - t)^2], with t annealed from 1.0 (gates start
    open) to `target`.

    Schedule: t = 1 for the first `warmup` fraction of `steps`, then falls to `target` over the next
    `anneal_frac` of them (linearly, or geometrically: target ** progress), then stays there.
    Multipliers (dual ascent, both kept >= 0, updated by `update()` from the area of the last call):
      mu <- max(0, mu + dual_lr * (area - t))              the price of area above the target;
      nu <- max(0, nu + dual_lr * (floor * t - area))      with floor > 0: the price of a mask that closes too far.
    The multipliers stay on the area's device (no host sync per step). `state_dict()` / `load_state_dict()`
    checkpoint and resume them. `damping` > 0 adds the quadratic term of Platt & Barr's modified differential
    method of multipliers (an augmented Lagrangian): a restoring force c * (area - t) that acts at once, both ways,
    and does not accumulate, where the multipliers alone wind up and overshoot (a proportional term beside dual
    ascent's integral one).
    """

    def __init__(self, target: float, steps: int, warmup: float = 0.1, anneal_frac: float = 0.5,
                 anneal: str = "linear", dual_lr: float = 1.0, floor: float = 0.5, damping: float = 0.0):
        if not 0 < target <= 1 or steps < 1 or anneal not in ANNEALS or not 0 <= floor < 1 or dual_lr < 0 \
                or damping < 0:
            raise ValueError(f"AreaConstraint: need 0 < target <= 1, steps >= 1, anneal in {ANNEALS}, 0 <= floor < 1, "
                             f"dual_lr >= 0, damping >= 0 (got {target}, {steps}, {anneal!r}, {floor}, {dual_lr}, "
                             f"{damping})")
        self.damping = damping
        self.goal, self.steps, self.warmup, self.anneal_frac = target, steps, warmup, anneal_frac
        self.anneal, self.dual_lr, self.floor = anneal, dual_lr, floor
        self.mu, self.nu = torch.zeros(()), torch.zeros(())
        self._last: tuple[Tensor, float] | None = None

    @classmethod
    def from_config(cls, cfg) -> "AreaConstraint":
        return cls(cfg.area_target, cfg.steps, cfg.warmup, cfg.anneal_frac, cfg.anneal, cfg.dual_lr, cfg.area_floor,
                   cfg.damping)

    def progress(self, step: int) -> float:
        """How far the anneal is at `step` (1-based): 0 through the warm-up, 1 from its end on."""
        start, span = self.warmup * self.steps, self.anneal_frac * self.steps
        if span <= 0:
            return 0.0 if step <= start else 1.0
        return min(1.0, max(0.0, (step - start) / span))

    def target(self, step: int) -> float:
        """The target area at `step` (1-based)."""
        if self.anneal_frac * self.steps <= 0:             # no anneal: exactly the goal, not 1 - (1 - goal)
            return 1.0 if step <= self.warmup * self.steps else self.goal
        progress = self.progress(step)
        if self.anneal == "geometric":
            return self.goal ** progress
        return 1.0 - (1.0 - self.goal) * progress

    def __call__(self, area: Tensor, step: int) -> Tensor:
        """The penalty to add to the loss for this step's differentiable `area` (a scalar tensor)."""
        t = self.target(step)
        self.mu, self.nu = self.mu.to(area.device), self.nu.to(area.device)
        self._last = (area.detach().float(), t)
        penalty = (self.mu - self.nu).to(area.dtype) * (area - t)
        return penalty + self.damping / 2 * (area - t) ** 2 if self.damping else penalty

    def update(self) -> None:
        """One dual-ascent step from the area of the last call (after the optimiser's step); no-op before any."""
        if self._last is None:
            return
        area, t = self._last
        self.mu = (self.mu + self.dual_lr * (area - t)).clamp(min=0)
        if self.floor:
            self.nu = (self.nu + self.dual_lr * (self.floor * t - area)).clamp(min=0)

    @property
    def multiplier(self) -> Tensor:
        """The net push on the area, mu - nu (< 0: pushed open)."""
        return self.mu - self.nu

    def state_dict(self) -> dict:
        return {"mu": self.mu.detach().cpu(), "nu": self.nu.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.mu, self.nu = state["mu"].clone(), state["nu"].clone()
