"""Gates: per-pixel logits (B, 1, H, W) -> mask in [0, 1].

Each gate is described once, by a `Gate` record in GATES: its function `gate(logits, temperature, training,
hard, generator, **options) -> mask`, its deterministic relaxation m_eval (the soft value the metrics use; the
hard mask is m_eval > 0.5, which is `logits > 0` for every gate here but top_k, where it is the image's k highest
logits; top_k's option `keep` comes from MaskGate.keep), whether its eval mask is exactly 0/1 and whether it
draws noise while training, the Config fields it reads, and its formula in LaTeX (the app's objective panel).
Adding a gate is one function and one record here (plus its name in config.GATE_NAMES, which the CLI reads
without importing torch; a test keeps the two lists equal).

References:
  hard sigmoid: the seed question's gate, relu6(x + 3) / 6 (zero gradient past its knees at +-3).
  straight-through estimator: Bengio, Leonard, Courville 2013.
  binary concrete / Gumbel-sigmoid: Maddison et al. 2017; Jang et al. 2017.
  hard concrete: Louizos, Welling, Kingma 2018, "Learning Sparse Neural Networks through L0 Regularization".
  top-k of logits + noise (Gumbel top-k): Kool, van Hoof, Welling 2019; a subset of k features, Chen et al. 2018
  (L2X); here with logistic noise and hard concrete's stretched sigmoid as the straight-through backward.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

STRETCH = (-0.1, 1.1)  # (gamma, zeta) of Louizos et al. 2018: the interval hard concrete is stretched to


def _straight_through(hard: Tensor, soft: Tensor) -> Tensor:
    # Forward: exactly `hard` (soft - soft.detach() is exactly 0.0). Backward: the gradient of `soft`.
    # Written `hard + soft - soft.detach()` it would be (hard + soft) - soft, which is not exactly 0/1 in fp32.
    return hard + (soft - soft.detach())


def _logistic_noise(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """log(u) - log(1 - u), u ~ U(0, 1): Logistic(0, 1) noise, from the run's own generator. Computed in float32
    and only then cast: u = 1 - 1e-6 rounds to 1.0 in bfloat16, whose log1p(-u) is -inf (an infinite noise made
    a top-k threshold inf - inf = NaN; found by the gate property test)."""
    u = torch.rand(like.shape, generator=generator, device=like.device, dtype=torch.float32)
    u = u.clamp(1e-6, 1 - 1e-6)
    return (torch.log(u) - torch.log1p(-u)).to(like.dtype)


def hard_sigmoid(logits, temperature, training, hard, generator=None):
    """The seed's gate: piecewise linear, exactly 0 below -3 and 1 above +3, with zero gradient there."""
    return F.hardsigmoid(logits)


def straight_through(logits, temperature, training, hard, generator=None):
    """Threshold at zero; backward through sigmoid(logits / temperature). Deterministic, always 0/1."""
    soft = torch.sigmoid(logits / temperature)
    return _straight_through((logits > 0).to(soft.dtype), soft)


def binary_concrete(logits, temperature, training, hard, generator=None):
    """Gumbel-sigmoid sample while training (no noise at eval); with `hard`, thresholded at 1/2 (ST)."""
    noisy = logits + _logistic_noise(logits, generator) if training else logits
    soft = torch.sigmoid(noisy / temperature)
    if not hard and training:
        return soft
    return _straight_through((soft > 0.5).to(soft.dtype), soft)


def _stretched(u: Tensor) -> Tensor:
    """u in (0, 1) stretched to (gamma, zeta), not yet clamped."""
    lo, hi = STRETCH
    return u * (hi - lo) + lo


def _stretch(u: Tensor) -> Tensor:
    return _stretched(u).clamp(0, 1)


def hard_concrete(logits, temperature, training, hard, generator=None, clamp_backward=False):
    """Stretched and clamped binary concrete. Eval: the deterministic clamp(sigmoid(l) * 1.2 - 0.1), which
    can be fractional; with `hard` the classifier sees it thresholded at 1/2 (straight-through).

    With `hard`, the backward pass goes through the unclamped stretch, so every gate gets the classifier's
    gradient. `clamp_backward` goes through the clamp as in Louizos et al.: a sample clamped at 0 or 1 gets
    none, and a mask pushed all the way closed can stay closed (measured, CPU, seed 0, init_bias 4, geometric
    anneal: all-zero by step 250 with it; 0.90 hard-mask accuracy at 4.4% area without it)."""
    if training:
        stretched = _stretched(torch.sigmoid((logits + _logistic_noise(logits, generator)) / temperature))
    else:
        stretched = _stretched(torch.sigmoid(logits))
    z = stretched.clamp(0, 1)
    if not hard:
        return z
    return _straight_through((z > 0.5).to(z.dtype), z if clamp_backward else stretched)


def _top_k(scores: Tensor, keep: float) -> tuple[Tensor, Tensor]:
    """(kept, threshold): per image exactly k = round(keep * pixels) (at least 1) pixels of the highest `scores`
    as a bool mask, ties (a flat background has many equal logits) broken by position; and a threshold (B, 1, 1, 1)
    halfway between the k-th and the (k+1)-th largest score (below every score when all are kept)."""
    flat = scores.detach().flatten(1)
    n = flat.shape[1]
    k = min(n, max(1, round(keep * n)))
    if k == n:
        return torch.ones_like(scores, dtype=torch.bool), (flat.min(dim=1).values - 1).view(-1, 1, 1, 1)
    values, index = flat.topk(k + 1, dim=1)
    kept = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, index[:, :k], True).view_as(scores)
    return kept, ((values[:, k - 1] + values[:, k]) / 2).view(-1, 1, 1, 1)


def top_k(logits, temperature, training, hard, generator=None, keep=1.0):
    """Hard concrete with a per-image threshold: exactly round(keep * pixels) gates open in every image, the
    top-k of l + logistic noise while training (of l at eval); backward through the stretched
    sigmoid((l + noise - threshold) / temperature); m_eval is stretch(sigmoid(l - threshold)), as hard concrete's
    is stretch(sigmoid(l)). The area is the schedule's by construction: no gate can close below it, so there is
    nothing to collapse to."""
    scores = logits + _logistic_noise(logits, generator) if training else logits
    kept, threshold = _top_k(scores, keep)
    stretched = _stretched(torch.sigmoid((scores - threshold) / (temperature if training else 1.0)))
    if not hard:
        return stretched.clamp(0, 1)
    return _straight_through(kept.to(stretched.dtype), stretched)


def _top_k_relaxed(logits: Tensor, temperature: float, keep: float = 1.0) -> Tensor:
    """stretch(sigmoid(l - threshold)), kept on its side of 1/2 so that m_eval > 1/2 is exactly the top k (a logit
    a hair above the threshold rounds to 1/2 in float32; a tie at the threshold is decided by position)."""
    kept, threshold = _top_k(logits, keep)
    m = _stretch(torch.sigmoid(logits - threshold))
    above_half = 0.5 + torch.finfo(m.dtype).eps / 2          # the next float after 1/2 in m's dtype
    return torch.where(kept, m.clamp(min=above_half), m.clamp(max=0.5))


def hard_concrete_open_prob(logits: Tensor, temperature: float) -> Tensor:
    """P(z > 0) under the hard-concrete gate, in closed form: the differentiable expected-L0 term.

    Reaches every logit, unlike the mean of a soft (hard=False) or clamp_backward mask: there the clamp gives
    exactly zero gradient to saturated samples."""
    lo, hi = STRETCH
    return torch.sigmoid(logits - temperature * math.log(-lo / hi))


@dataclass(frozen=True)
class Gate:
    name: str
    sample: Callable[..., Tensor]             # (logits, temperature, training, hard, generator) -> mask
    relax: Callable[..., Tensor]              # (logits, temperature, **options) -> m_eval, deterministic
    binary: bool                              # with `hard`, the eval mask is exactly 0/1
    noisy: bool                               # draws logistic noise while training
    knobs: tuple[str, ...]                    # the Config fields it reads, besides the logits
    latex: str                                # m as a function of the logit l
    hard_latex: str = ""                      # with hard_forward, where it differs ({through}: s or z)

    def __call__(self, logits: Tensor, temperature: float, training: bool, hard: bool,
                 generator: torch.Generator | None = None, **options) -> Tensor:
        return self.sample(logits, temperature, training, hard, generator, **options)


_NOISE = r"\log u - \log(1-u)"
_TEMPERATURE = ("temperature", "temperature_end")
GATES = {gate.name: gate for gate in (
    Gate("hard_sigmoid", hard_sigmoid, lambda l, t, **_: F.hardsigmoid(l), binary=False, noisy=False, knobs=(),
         latex=r"m = \mathrm{hardsigmoid}(l) = \min\!\big(1, \max(0, \tfrac{l}{6} + \tfrac12)\big)"),
    Gate("straight_through", straight_through, lambda l, t, **_: torch.sigmoid(l / t), binary=True, noisy=False,
         knobs=_TEMPERATURE,
         latex=r"m = \mathbb{1}[l > 0],\quad \partial m/\partial l := \partial\,\sigma(l/\tau)/\partial l"),
    Gate("binary_concrete", binary_concrete, lambda l, t, **_: torch.sigmoid(l / t), binary=True, noisy=True,
         knobs=(*_TEMPERATURE, "hard_forward"),
         latex=r"m = \mathbb{1}\big[\sigma\big((l + " + _NOISE + r")/\tau\big) > \tfrac12\big],\ u \sim U(0,1)"),
    Gate("hard_concrete", hard_concrete, lambda l, t, **_: _stretch(torch.sigmoid(l)), binary=True, noisy=True,
         knobs=(*_TEMPERATURE, "hard_forward", "clamp_backward"),
         latex=r"m = z = \min\!\big(1, \max(0, \sigma((l + " + _NOISE + r")/\tau)(\zeta-\gamma) + \gamma)\big),"
               r"\ (\gamma, \zeta) = (-0.1, 1.1)",
         hard_latex=r"m = \mathbb{1}[z > \tfrac12],\ z = \min(1, \max(0, s)),\ s = \sigma\big((l + " + _NOISE +
                    r")/\tau\big)(\zeta-\gamma) + \gamma,\ \partial m/\partial l := \partial {through}/\partial l"),
    Gate("top_k", top_k, _top_k_relaxed, binary=True, noisy=True,
         knobs=(*_TEMPERATURE, "hard_forward", "area_target", "warmup", "anneal_frac", "anneal", "finetune"),
         latex=r"m = \mathbb{1}\big[l + " + _NOISE + r" > \theta_k\big],\ \theta_k:\ \text{the } k\text{-th largest of } "
               r"l + " + _NOISE + r",\ k = t\cdot HW"),
)}
# Gates whose mask the classifier sees as exactly 0/1 at eval when `hard` is on.
BINARY_GATES = tuple(name for name, gate in GATES.items() if gate.binary)


def relaxed(name: str, logits: Tensor, temperature: float, **options) -> Tensor:
    """The deterministic soft mask m_eval of a gate: bimodality is measured on it, m_eval > 0.5 is the hard mask."""
    return GATES[name].relax(logits, temperature, **options)


def area_estimate(name: str, logits: Tensor, mask: Tensor, temperature: float, seen: bool = False) -> Tensor:
    """The differentiable fraction of open gates that the target-area constraint and l0/l1 penalties use.

    Hard concrete: P(z > 0) (Louizos' expected L0), or with `seen` P(z > 1/2) = sigmoid(l), the expected
    fraction of pixels a hard (0/1) forward shows the classifier (logistic noise: P(l + noise > 0))."""
    if name == "hard_concrete":
        return torch.sigmoid(logits).mean() if seen else hard_concrete_open_prob(logits, temperature).mean()
    if name == "top_k":
        return torch.sigmoid(logits).mean()
    return mask.mean()


class MaskGate(torch.nn.Module):
    """Per-pixel logits -> mask, as a drop-in module for your own network: one class for every gate in GATES.

    Contract (logits and masks are (B, 1, H, W), any H, W; the mask is multiplied into the image):
      - `gate(logits)` in training mode draws a mask (noise from `generator`, else torch's global RNG, for the
        noisy gates); with `hard` (default) the forward value is exactly 0 or 1 for the binary gates
        (straight_through, binary_concrete, hard_concrete) and gradients flow through their relaxation.
      - in eval mode (`gate.eval()`) it is deterministic and noise-free: the 0/1 mask m_eval > 1/2 for
        straight_through and binary_concrete (always) and for hard_concrete with `hard`; m_eval itself for
        hard_sigmoid and for hard_concrete without `hard`.
      - `gate.relaxed(logits)`: m_eval, the deterministic soft mask in [0, 1]; `gate.hard_mask(logits)`: m_eval > 1/2.
      - `gate.area(logits, mask)`: the differentiable area a constraint should hold (a scalar): for hard concrete
        P(z > 1/2) = mean sigmoid(l), the expected fraction the 0/1 forward shows (`seen_area`, the default), or
        Louizos et al.'s expected L0 P(z > 0); for the other gates the mean of `mask`.
      - `top_k` keeps exactly round(gate.keep * H * W) pixels of every image (training and eval): assign `keep` the
        schedule's target each step (AreaConstraint.target); no penalty is needed to hold the area.
    `temperature` is an attribute (anneal it by assigning); a call may pass its own. No parameters.
    """

    def __init__(self, kind: str = "hard_concrete", temperature: float = 2 / 3, hard: bool = True,
                 clamp_backward: bool = False, seen_area: bool = True):
        super().__init__()
        if kind not in GATES:
            raise ValueError(f"unknown gate {kind!r}: one of {', '.join(GATES)}")
        self.kind, self.temperature, self.hard = kind, temperature, hard
        self.options = {"clamp_backward": clamp_backward} if kind == "hard_concrete" else {}
        self.keep = 1.0                       # top_k: the fraction of pixels kept (the schedule's target)
        self.seen_area = seen_area and hard

    @property
    def binary(self) -> bool:
        """Whether the mask is exactly 0/1 (in training and at eval)."""
        return GATES[self.kind].binary and self.hard

    def forward(self, logits: Tensor, temperature: float | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        tau = self.temperature if temperature is None else temperature
        return GATES[self.kind](logits, tau, self.training, self.hard, generator, **self._options())

    def deterministic(self, logits: Tensor, temperature: float | None = None) -> Tensor:
        """The noise-free mask the classifier is tested on (what `gate(logits)` gives in eval mode), with the gate's
        straight-through gradient, whatever mode the module is in."""
        tau = self.temperature if temperature is None else temperature
        return GATES[self.kind](logits, tau, False, self.hard, None, **self._options())

    def _options(self) -> dict:
        return {"keep": self.keep} if self.kind == "top_k" else self.options

    def relaxed(self, logits: Tensor, temperature: float | None = None) -> Tensor:
        tau = self.temperature if temperature is None else temperature
        return relaxed(self.kind, logits, tau, **self._options())

    def hard_mask(self, logits: Tensor, threshold: float = 0.5) -> Tensor:
        return (self.relaxed(logits) > threshold).to(logits.dtype)

    def area(self, logits: Tensor, mask: Tensor, temperature: float | None = None) -> Tensor:
        tau = self.temperature if temperature is None else temperature
        return area_estimate(self.kind, logits, mask, tau, self.seen_area)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, temperature={self.temperature:g}, hard={self.hard}"
