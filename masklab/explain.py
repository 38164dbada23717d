"""Why masks behave as they do, for the app: per-pixel loss and gradient of each method against the mask value m
and against the logit l through the gate (autograd on the library's own gates and losses), the objective in
effect as LaTeX, and the diagnosis of a collapsed mask.

The logit view backpropagates exactly what training does, straight-through estimators included, averaged over
the logistic noise for the concrete gates; a zero gradient there is a pixel that nothing can move. That is the
picture of the seed's collapse (the README's method table, row `seed`): the seed loss's slope near m = 0 is about beta*alpha/lam,
and the hard sigmoid has zero gradient past +-3, so a pixel pushed below -3 never reopens.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .config import Config
from .gates import GATES, hard_concrete_open_prob, relaxed
from .losses import seed_loss
from .metrics import COLLAPSE_HIGH, COLLAPSE_LOW
from .train import Record

LOGIT_RANGE = (-8.0, 8.0)
DEAD = 1e-12           # |gradient| at or below this counts as vanished (the hard sigmoid's is exactly 0)
NOISY = tuple(name for name, gate in GATES.items() if gate.noisy)   # shown in expectation over their noise
SAMPLES = 512          # noise quantiles per logit for those


@dataclass(frozen=True)
class Knobs:
    """The values the curves depend on: the seed's alpha, beta, lam, the gate temperature and a multiplier."""
    alpha: float = 0.9
    beta: float = 0.1
    lam: float = 1e-3
    temperature: float = 2 / 3
    multiplier: float = 1.0


@dataclass(frozen=True)
class Method:
    preset: str
    gate: str
    term: str                                   # the per-pixel mask term, in LaTeX
    on_mask: Callable | None                    # (m, knobs) -> per-pixel loss; None: the term lives on the logit
    on_logit: Callable | None = None            # (l, knobs) -> per-pixel loss, where training computes it from l
    note: str = ""


# The default's per-pixel terms (today's and the 2026-11-29 one's: what tells them apart is not per pixel): the
# multiplier on the seen area P(z > 1/2) = sigmoid(l), and the bimodality term on m_eval.
SEEN_AND_BIMODAL = r"\mu\,P(z>\tfrac12) + m(1-m)"


def _seen_and_bimodal(l: torch.Tensor, k) -> torch.Tensor:
    return k.multiplier * torch.sigmoid(l) + _bimodal(l)


METHODS = {m.preset: m for m in [
    Method("seed", "hard_sigmoid", r"\beta\,[\alpha\log(m+\lambda) + (1-\alpha)\log(1-m+\lambda)]",
           lambda m, k: k.beta * seed_loss(m, k.alpha, k.lam),
           note="the question's loss (a reconstruction: the original formula was an image that is lost)"),
    Method("mse-zero", "hard_sigmoid", r"\beta\,m^2", lambda m, k: k.beta * m ** 2,
           note="the question's first try: shrinks every pixel uniformly (slope 2m), never decides"),
    Method("pooled-l1", "hard_sigmoid", r"\beta\,m\,|x|", lambda m, k: k.beta * m,
           note="the answer's L1 on pre-pooling features; not a function of m alone: shown as its first-order "
                "effect beta*m*|x| for a unit pixel"),
    Method("ste", "straight_through", r"\mu\,m", lambda m, k: k.multiplier * m,
           note="target-area constraint: each pixel's share of multiplier*(area - target), times the pixel count"),
    Method("binary-concrete", "binary_concrete", r"\mu\,m", lambda m, k: k.multiplier * m,
           note="same constraint; on the logit axis, averaged over the gate's logistic noise"),
    Method("hard-concrete-plain", "hard_concrete", r"\mu\,P(z>0)", None,
           lambda l, k: k.multiplier * hard_concrete_open_prob(l, k.temperature),
           note="expected L0: P(z > 0) is a smooth function of the logit, so its gradient reaches every pixel"),
    Method("hard-concrete-nov29", "hard_concrete", SEEN_AND_BIMODAL, None, _seen_and_bimodal,
           note="the default from 2026-11-29 to 2026-12-01: the same per-pixel terms as today's (what it lacks, "
                "the shrinking noise and the damping, are not per-pixel terms)"),
    Method("hard-concrete", "hard_concrete", SEEN_AND_BIMODAL, None, _seen_and_bimodal,
           note="the default: the area the classifier sees, P(z > 1/2) = sigmoid(l), plus the bimodality term on "
                "m_eval (weight 1); a negative multiplier is the floor pushing a closed mask open"),
    Method("top-k", "top_k", r"m(1-m)", None, lambda l, k: _bimodal(l),
           note="exactly t*HW pixels kept in every image, so there is no area term: the logit axis is l minus the "
                "image's k-th largest logit, on which the gate is hard concrete; only the bimodality term (weight 1)"),
    Method("sorted-area", "straight_through", r"\beta\,(m_{(i)} - 0)^2", lambda m, k: k.beta * m ** 2,
           lambda l, k: k.beta * relaxed("straight_through", l, k.temperature) ** 2,
           note="exact area on the sorted relaxed mask, for a pixel ranked outside the target (most pixels)"),
]}


def _bimodal(l: torch.Tensor) -> torch.Tensor:
    m = relaxed("hard_concrete", l, 2 / 3)                  # m_eval: clamp(1.2 sigmoid(l) - 0.1, 0, 1)
    return m * (1 - m)


@dataclass(frozen=True)
class Curve:
    x: np.ndarray          # the mask value or the logit
    mask: np.ndarray       # m at x (the gate's forward value on the logit axis)
    loss: np.ndarray       # per-pixel mask loss
    grad: np.ndarray       # d loss / d x, as backpropagated in training
    slope: np.ndarray      # d m / d x: what any gradient (cross-entropy too) is multiplied by on its way to l
    dead: tuple[tuple[float, float], ...]   # x intervals where grad vanishes


def against_mask(method: Method, knobs: Knobs, n: int = 1001) -> Curve | None:
    """Loss and dL/dm for m in [0, 1]; None when the method's term is defined on the logit, not on m."""
    if method.on_mask is None:
        return None
    m = torch.linspace(0, 1, n, dtype=torch.float64, requires_grad=True)
    loss = method.on_mask(m, knobs)
    (grad,) = torch.autograd.grad(loss.sum(), m)
    x = m.detach().numpy()
    return Curve(x, x, loss.detach().numpy(), grad.numpy(), np.ones_like(x), dead_zones(x, grad.numpy()))


def against_logit(method: Method, knobs: Knobs, n: int = 1601) -> Curve:
    """Loss and dL/dl through the method's gate (hard forward, as in training) for l in LOGIT_RANGE; the
    concrete gates are averaged over SAMPLES evenly spaced quantiles of their logistic noise."""
    l = torch.linspace(*LOGIT_RANGE, n, dtype=torch.float64, requires_grad=True)
    m = gate_in_expectation(method.gate, l, knobs.temperature)            # (S, n)
    rows = l.expand_as(m)
    loss = method.on_logit(rows, knobs) if method.on_logit is not None else method.on_mask(m, knobs)
    (grad,) = torch.autograd.grad(loss.mean(0).sum(), l, retain_graph=True)
    (slope,) = torch.autograd.grad(m.mean(0).sum(), l)
    x, g = l.detach().numpy(), grad.numpy()
    mean = lambda t: t.detach().mean(0).numpy()
    return Curve(x, mean(m), mean(loss), g, slope.numpy(), dead_zones(x, g))


def gate_in_expectation(gate: str, l: torch.Tensor, temperature: float) -> torch.Tensor:
    """The training-mode gate on logits l (n,) as (S, n): one row per noise quantile for the concrete gates
    (deterministic, unlike sampling, so the tails do not flicker), one row for the others.

    The library's gates draw their own noise, so the noisy logit is fed to the eval-mode gate instead:
    binary concrete evaluates sigmoid(l' / tau), hard concrete stretch(sigmoid(l')) (tests pin the match)."""
    if gate not in NOISY:
        return GATES[gate](l[None], temperature, False, True)
    if gate == "top_k":                       # on the axis l - (the image's k-th largest logit): hard concrete
        gate = "hard_concrete"
    u = (torch.arange(SAMPLES, dtype=l.dtype) + 0.5) / SAMPLES
    noisy = l[None] + (torch.log(u) - torch.log1p(-u))[:, None]           # (S, n) logistic quantiles
    if gate == "hard_concrete":
        noisy = noisy / temperature
    return GATES[gate](noisy, temperature, False, True)


def dead_zones(x: np.ndarray, grad: np.ndarray, tol: float = DEAD) -> tuple[tuple[float, float], ...]:
    """The maximal x intervals over which |grad| <= tol (a single point counts as a zero-width interval)."""
    dead = np.abs(grad) <= tol
    zones, start = [], None
    for i, d in enumerate(dead):
        if d and start is None:
            start = i
        if start is not None and (not d or i == len(dead) - 1):
            end = i if d else i - 1
            zones.append((float(x[start]), float(x[end])))
            start = None
    return tuple(zones)


def summary(method: Method, knobs: Knobs) -> dict:
    """The numbers the picture shows: the slope at both ends of m and the logits where nothing can move."""
    on_m, on_l = against_mask(method, knobs), against_logit(method, knobs)
    return {
        "method": method.preset, "gate": method.gate,
        "dL/dm at m=0": None if on_m is None else float(on_m.grad[0]),
        "dL/dm at m=1": None if on_m is None else float(on_m.grad[-1]),
        "mask-loss gradient is 0 for l in": zones_text(on_l.dead),
        "every gradient (CE too) is 0 for l in": zones_text(dead_zones(on_l.x, on_l.slope)),
    }


def zones_text(zones) -> str:
    """'[-8, -3], [3, 8]', or 'nowhere'."""
    num = lambda v: f"{round(v, 2) + 0.0:g}"         # + 0.0 turns -0.0 into 0.0
    return ", ".join(f"[{num(a)}, {num(b)}]" if b > a else num(a) for a, b in zones) or "nowhere"


# --- the objective in effect, for the Train page -----------------------------------------------------------

UNMASKED_LATEX = r"m = 1 \quad\text{(unmasked)}"

LOSS_LATEX = {
    "seed": r"\tfrac1{HW}\textstyle\sum_{xy} \alpha\log(m+\lambda) + (1-\alpha)\log(1-m+\lambda)",
    "mse_zero": r"\tfrac1{HW}\textstyle\sum_{xy} m^2",
    "pooled_l1": r"\mathrm{mean}\,|F(x \odot m)|\ \text{(classifier features before pooling)}",
    "l1": r"\tfrac1{HW}\textstyle\sum_{xy} m",
    "l0": r"\tfrac1{HW}\textstyle\sum_{xy} P(z_{xy} > 0)",
    "sorted_area": r"\tfrac1{HW}\textstyle\sum_i (\mathrm{sort}(m)_i - \mathrm{ideal}_i)^2,"
                   r"\ \mathrm{ideal} = \text{exactly } t \cdot HW \text{ ones}",
}


def gate_latex(cfg) -> str:
    """The gate line (its record's LaTeX): with the hard forward, what the classifier sees and which relaxation
    the backward goes through (for hard concrete: the unclamped stretch s, or z through the clamp)."""
    if cfg.gate == "none":
        return UNMASKED_LATEX
    gate = GATES[cfg.gate]
    if not (cfg.hard_forward and gate.hard_latex):
        return gate.latex
    return gate.hard_latex.replace("{through}", "z" if cfg.clamp_backward else "s")


def objective_latex(cfg) -> list[str]:
    """LaTeX lines of the objective `cfg` trains: the total, the gate, the mask loss, the constraint's update."""
    masked = cfg.gate != "none"
    total = r"\mathcal{L} = \mathrm{CE}\big(f(x \odot m), y\big)"
    if masked and cfg.mask_loss != "none":
        total += r" + \beta\, L_{\text{mask}}"
    if masked and cfg.constraint:
        total += r" + (\mu - \nu)\,(\bar a - t)" if cfg.area_floor else r" + \mu\,(\bar a - t)"
        if cfg.damping:
            total += rf" + \tfrac{{{cfg.damping:g}}}{{2}}\,(\bar a - t)^2"
    if masked and cfg.tv:
        total += r" + \text{tv}\cdot \mathrm{TV}(m)"
    if masked and cfg.bimodal:
        total += r" + \text{bimodal}\cdot \overline{m(1-m)}"
    if masked and cfg.entropy:
        total += r" + \text{entropy}\cdot \overline{H\big(\sigma(l)\big)}"
    if masked and cfg.evidence:
        total += r" + \text{evidence}\cdot \mathrm{BCE}\big(l, \mathbb{1}[\mathrm{CAM}_y(x) \in \text{top } t]\big)"
    if masked and cfg.occlusion:
        total += (r" + \text{occlusion}\cdot \mathrm{BCE}\big(l, \mathbb{1}[\log p(y|x) - \log p(y|x_{\setminus b})"
                  r" \in \text{top } t]\big)")
    if masked and cfg.complement:
        total += r" - \text{complement}\cdot \log\big(1 - p(y \mid x \odot (1 - m))\big)"
    if masked and cfg.distract:
        total += r" + \text{distract}\cdot \overline{\mathrm{softplus}(l)}_{\text{pasted}}"
    lines = [total, gate_latex(cfg)]
    if masked and cfg.ahead:
        lines.append(rf"\text{{of each batch: {cfg.ahead:g} sees }} x \odot \mathbb{{1}}[l \in "
                     rf"\text{{the image's top }}{cfg.area_target:g}],\ \text{{no gradient to the branch}}")
    gain_inside = masked and cfg.noise_end != 1 and cfg.gain_site == "logits" and bool(cfg.logit_bound)
    if masked and cfg.noise_end != 1:
        lines.append((r"\text{the gain } g \text{ on } l_0" if gain_inside else r"\text{the gate reads } g\,l")
                     + rf",\ g = {cfg.noise_end:g}^{{-\text{{progress of the anneal}}}}"
                     rf"\text{{: the noise shrinks to {cfg.noise_end:g} of its size against }} "
                     + ("l_0" if gain_inside else "l"))
    if masked and cfg.shadow:
        lines.append(r"\text{shadow: } \mathrm{CE}\big(f'(x \odot \mathbb{1}[m_{\text{eval}} > \tfrac12]), y\big)"
                     r"\text{ trains } f' \text{ alone; } f \leftarrow f' \text{ at the end}")
    if cfg.average:
        lines.append(rf"\text{{weight averaging: }} f \leftarrow \tfrac{{1}}{{n}}\textstyle\sum_{{s > "
                     rf"{1 - cfg.average:g}\,T}} f_s\text{{ at the end (the branch: the last step's)}}")
    if masked and (cfg.random_masks or cfg.deterministic):
        lines.append(rf"\text{{of each batch: {cfg.random_masks:g} sees }} x \odot m_{{\text{{rand}}}},\ "
                     rf"m_{{\text{{rand}}}} \sim \mathrm{{Bernoulli}}(p),\ p \sim U(t, 1)"
                     rf"\text{{; {cfg.deterministic:g} sees }} x \odot \mathbb{{1}}[m_{{\text{{eval}}}} > \tfrac12]")
    if masked and (cfg.mask_norm or cfg.logit_bound):
        gained = r"g\,l_0" if gain_inside else "l_0"
        lines.append((r"l = " + (rf"{cfg.logit_bound:g}\,\tanh({gained}/{cfg.logit_bound:g}),\ " if cfg.logit_bound else "")
                      + (r"l_0 = w^\top \mathrm{GroupNorm}(h) + b" if cfg.mask_norm else r"l_0 = w^\top h + b")
                      + r"\quad\text{(}h\text{: the attention branch's features)}"))
    if masked and cfg.mask_loss != "none":
        lines.append(r"L_{\text{mask}} = " + LOSS_LATEX.get(cfg.mask_loss, r"\text{" + cfg.mask_loss + "}"))
    if masked and (cfg.constraint or cfg.mask_loss == "sorted_area" or cfg.gate == "top_k"):
        area = (r"P(z>\tfrac12)" if cfg.area_seen and cfg.hard_forward else r"P(z>0)") \
            if cfg.gate == "hard_concrete" else r"m"
        progress = (r"\mathrm{clip}\!\big(\tfrac{\text{step} - \text{warmup}\cdot"
                    r"\text{steps}}{\text{anneal\_frac}\cdot\text{steps}}, 0, 1\big)")
        schedule = (r"t = t_{\text{end}}^{\,p},\ p = " + progress if cfg.anneal == "geometric"
                    else r"t = 1 - (1 - t_{\text{end}})\," + progress)
        lines.append(schedule + (r",\quad \bar a = \overline{" + area + "}" if cfg.constraint else ""))
    if masked and cfg.constraint:
        lines.append(r"\mu \leftarrow \max\!\big(0,\ \mu + \eta\,(\bar a - t)\big),\quad \eta = \text{dual\_lr}")
        if cfg.area_floor:
            lines.append(rf"\nu \leftarrow \max\!\big(0,\ \nu + \eta\,({cfg.area_floor:g}\,t - \bar a)\big)"
                         r"\quad\text{(the floor: pushes a mask that closed too far back open)}")
    if masked and cfg.finetune:
        lines.append(rf"\text{{last }} {cfg.finetune:g}\cdot\text{{steps: mask frozen, }}"
                     r"\mathcal{L} = \mathrm{CE}\big(f(x \odot \mathbb{1}[m_{\text{eval}} > \tfrac12]), y\big)"
                     + ((rf" + \overline{{\max(0,\ {cfg.commit_margin:g} - (2h - 1)\,l)}}" if cfg.commit_margin
                         else r" + \overline{|m_{\text{eval}} - h|}")
                        + r",\ h = \mathbb{1}[m_{\text{eval}} > \tfrac12] \text{ at its start}"
                        + (rf"\text{{, without pieces under }} {cfg.commit_pieces:g} \times \text{{its largest}}"
                           if cfg.commit_pieces else "") if cfg.commit else ""))
    return lines


# --- collapse: what the Train page says when the mask keeps nothing or everything -----------------------

@dataclass(frozen=True)
class Collapse:
    kind: str                 # "zero" (nothing kept) or "one" (everything kept)
    step: int
    area: float
    why: str
    tips: tuple[str, ...] = field(default=())


def collapse(cfg: Config, records: tuple[Record, ...] | list[Record], area: float | None = None) -> Collapse | None:
    """A Collapse when the mask keeps (almost) nothing, or everything long after the schedule asked for less.

    `area` overrides the last record's training-batch area (pass the test-set area of a finished run)."""
    if cfg.gate == "none" or not records:
        return None
    last = records[-1]
    area = last.area if area is None else area
    if area < COLLAPSE_LOW:
        return Collapse("zero", last.step, area, *_why_zero(cfg))
    scheduled = cfg.constraint or cfg.mask_loss == "sorted_area"
    late = last.target < COLLAPSE_HIGH - 0.15 if scheduled else last.step >= 0.5 * cfg.steps
    if area > COLLAPSE_HIGH and late and cfg.area_target < COLLAPSE_HIGH:
        return Collapse("one", last.step, area, *_why_one(cfg))
    return None


def _why_zero(cfg: Config) -> tuple[str, tuple[str, ...]]:
    if cfg.mask_loss == "seed":
        slope = cfg.beta * cfg.alpha / cfg.lam
        why = (f"The seed loss pulls every pixel toward m = 0 with a slope of about β·α/λ = {slope:.3g} near 0, "
               f"far more than cross-entropy pushes back with"
               + (", and the hard sigmoid's gradient is exactly 0 once a logit falls below -3: a pixel that "
                  "closes can never reopen, so the classifier is left with a blank image." if cfg.gate == "hard_sigmoid"
                  else "."))
        return why, ("Switch to the hard-concrete preset: expected-L0 area under a target that anneals from 1.0.",
                     "Or raise λ (e.g. 0.1) to flatten the well at 0, lower α toward 0.5, or lower β.",
                     "The Loss explorer page plots where each method's gradient vanishes.")
    why = ("The sparsity pressure (β times the mask loss, or the Lagrange multiplier) outweighed the "
           "classification loss, and every gate closed.")
    if cfg.gate == "hard_concrete" and cfg.hard_forward and cfg.clamp_backward:
        why += (" With the backward through the clamp, a gate sampled at exactly 0 (or 1) gets no gradient from "
                "the classifier, only the area term's push down, so once the gates close nothing reopens them.")
        return why, ("Turn clamp_backward off: the backward then goes through the unclamped stretch and every gate "
                     "hears the classifier (measured: init_bias 4 collapses with it, trains without it).",
                     "Or lower dual_lr or init_bias, or anneal the target more slowly (a larger anneal_frac).")
    if cfg.constraint and not cfg.area_floor:
        why += (" Nothing pushed back: with area_floor 0 the constraint is only a ceiling, so when cross-entropy "
                "(or a wound-up multiplier) closes the gates, the mask stays closed.")
        return why, ("Set area_floor (e.g. 0.5): a second multiplier then pushes the area back up to area_floor x "
                     "the target whenever it falls below.",
                     "Lower dual_lr, or anneal the target more slowly (a larger anneal_frac).")
    return why, ("Lower β or the multiplier step (dual_lr), or raise area_target.",
                 "Anneal the target more slowly (a larger anneal_frac) so the classifier learns first.",
                 "Start with gates open (init_bias > 0) and a gate with gradient everywhere (hard_concrete).")


def _why_one(cfg: Config) -> tuple[str, tuple[str, ...]]:
    if cfg.mask_loss == "none" and not cfg.constraint:
        why = "Nothing in the objective asks for sparsity: there is no mask loss and no target-area constraint."
    else:
        why = ("The mask keeps almost every pixel although the objective asks for fewer: the sparsity pressure is "
               "too weak against cross-entropy, or the gates saturated open and get no gradient.")
    return why, ("Turn the target-area constraint on (or use the hard-concrete preset).",
                 "Raise β or the multiplier step (dual_lr); lower init_bias so gates start less saturated.",
                 "With the hard sigmoid, logits above +3 get zero gradient: prefer hard_concrete.")
