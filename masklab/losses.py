"""Mask losses, each `(out, cfg, target) -> scalar`, kept in MASK_LOSSES; the shape terms; two teacher terms
that pull the mask logits toward where the classifier finds evidence (Config.evidence, Config.occlusion); the
objective; and cfg-level views of the schedules (area_target: AreaConstraint's annealed target; temperature_at).

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
from .synthetic import window_index


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


def evidence_map(model, x: Tensor, y: Tensor) -> Tensor:
    """(B, 1, H, W): the classifier's class activation map for class y on the whole image (its head's weights
    for y dotted with its features at each place), upsampled to the image; no gradient."""
    with torch.no_grad():
        _, features = model.classifier(x)
        cam = torch.einsum("bchw,bc->bhw", features.float(), model.classifier.head.weight[y].float())[:, None]
        return F.interpolate(cam, size=x.shape[-2:], mode="nearest")


def evidence_loss(model, x, y, mask_logits, target: float) -> Tensor:
    """BCE between the mask logits and 1[the evidence map is in its image's top `target` fraction]."""
    return teacher_loss(evidence_map(model, x, y), mask_logits, target)


def teacher_loss(score: Tensor, mask_logits: Tensor, target: float) -> Tensor:
    """BCE between the mask logits and 1[`score` (B, 1, H, W) is in its image's top `target` fraction]."""
    flat = score.flatten(1)
    k = max(1, min(flat.shape[1], round(target * flat.shape[1])))
    threshold = flat.topk(k, dim=1).values[:, -1:]
    wanted = (flat >= threshold).float().view_as(mask_logits)
    return F.binary_cross_entropy_with_logits(mask_logits.float(), wanted)


OCCLUDED_IMAGES, OCCLUSION_GRID = 8, 4


def occlusion_map(model, x: Tensor, y: Tensor, grid: int = OCCLUSION_GRID) -> Tensor:
    """(B, 1, H, W): how much hiding each block of a grid x grid partition of the image lowers the classifier's
    log p(y) (every pixel of a block gets its block's drop); one classifier pass per block, no gradient."""
    b, _, h, w = x.shape
    rows = torch.arange(h, device=x.device) * grid // h
    cols = torch.arange(w, device=x.device) * grid // w
    block = (rows[:, None] * grid + cols[None, :])                         # (H, W): each pixel's block index
    keep = (block[None] != torch.arange(grid * grid, device=x.device)[:, None, None]).to(x.dtype)   # (G, H, W)
    with torch.no_grad():
        full = torch.log_softmax(model.classifier(x)[0].float(), 1).gather(1, y[:, None])          # (B, 1)
        hidden = x[:, None] * keep[None, :, None]                          # (B, G, C, H, W)
        logits = model.classifier(hidden.flatten(0, 1))[0].float()
        drop = full - torch.log_softmax(logits, 1).view(b, grid * grid, -1).gather(
            2, y[:, None, None].expand(b, grid * grid, 1))[..., 0]            # (B, G)
        return drop.gather(1, block.flatten()[None].expand(b, -1)).view(b, 1, h, w)


def occlusion_loss(model, x, y, mask_logits, target: float) -> Tensor:
    """BCE between the first OCCLUDED_IMAGES images' mask logits and 1[the occlusion map is in the top `target`]."""
    k = min(OCCLUDED_IMAGES, x.shape[0])
    return teacher_loss(occlusion_map(model, x[:k], y[:k]), mask_logits[:k], target)


def commit_loss(relaxed: Tensor, hard: Tensor, logits: Tensor | None = None, margin: float = 0.0) -> Tensor:
    """How far the soft mask is from a fixed 0/1 mask (Config.commit: the hard mask of the model as the closing phase
    began). Without a margin, mean |m_eval - hard|: its gradient moves each gate toward that mask's 0 or 1 and is
    zero once m_eval is exactly there (hard concrete's clamp), so the branch learns to say, with exact 0s and 1s,
    what it had decided. With `margin` (Config.commit_margin), mean relu(margin - s * logits), s = 2 * hard - 1:
    each logit is pushed past +-margin on its side, not just to the clamp's edge, which leaves no slack for images
    the term never saw."""
    if margin:
        return torch.relu(margin - (2 * hard.float() - 1) * logits.float()).mean()
    return (relaxed.float() - hard.float()).abs().mean()


def complement_loss(model, x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """-log(1 - p(y)) of the classifier on x * (1 - mask), averaged over the batch: how much of the true class's
    evidence the mask leaves out. Written as logsumexp(all logits) - logsumexp(the other classes'), finite even
    where p(y) rounds to 1. The classifier's weights are read detached (no gradient reaches them from this term:
    the classifier must not learn to fail on complements) and its buffers as copies (a batch norm's running
    statistics never see a complement); the gradient reaches the mask through the input."""
    weights = {name: p.detach() for name, p in model.classifier.named_parameters()}
    weights |= {name: b.clone() for name, b in model.classifier.named_buffers()}   # batch-norm statistics stay
    logits = torch.func.functional_call(model.classifier, weights, (x * (1 - mask),))[0].float()
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return (torch.logsumexp(logits, 1) - torch.logsumexp(others, 1)).mean()


def distractors(x: Tensor, logits: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """(x', pasted) for Config.distract: into each image of the first half of the batch, a square of side
    max(2, round(min(H, W) / 6)) cut from the next image of the batch around the centroid of that image's kept
    pixels (its hard mask, logits > 0; the centre where it keeps none) is pasted at a random place, replacing what
    was there. `pasted` (B, 1, H, W) is True on the pasted pixels. The square is a part of another image that the
    branch itself finds worth keeping, so closing it takes telling this image's object from another's."""
    n, h, w = x.shape[0], *x.shape[-2:]
    side, half = max(2, round(min(h, w) / 6)), x.shape[0] // 2
    out, pasted = x.clone(), torch.zeros(n, 1, h, w, dtype=torch.bool, device=x.device)
    if half == 0:
        return out, pasted
    src = torch.roll(torch.arange(n, device=x.device), -1)[:half]
    keep = (logits[src, 0] > 0).float()                                   # (half, H, W)
    mass = keep.sum((1, 2))
    rows = torch.arange(h, device=x.device, dtype=x.dtype)
    cols = torch.arange(w, device=x.device, dtype=x.dtype)
    cy = torch.where(mass > 0, (keep.sum(2) * rows).sum(1) / mass.clamp_min(1), torch.full_like(mass, (h - 1) / 2))
    cx = torch.where(mass > 0, (keep.sum(1) * cols).sum(1) / mass.clamp_min(1), torch.full_like(mass, (w - 1) / 2))
    sy = (cy - side / 2).round().long().clamp(0, h - side)
    sx = (cx - side / 2).round().long().clamp(0, w - side)
    dy = torch.randint(0, h - side + 1, (half,), generator=generator, device=x.device)
    dx = torch.randint(0, w - side + 1, (half,), generator=generator, device=x.device)
    b, r, c = window_index(half, side, side, dy, dx, x.device)
    _, rs, cs = window_index(half, side, side, sy, sx, x.device)
    out[b, :, r, c] = x[src[b], :, rs, cs]
    pasted[b, 0, r, c] = True
    return out, pasted


def distract_loss(mask_logits: Tensor, pasted: Tensor) -> Tensor:
    """mean softplus(l) over the pasted pixels (BCE toward a closed gate; 0 where none was): its gradient sigma(l)
    fades as a gate closes and never vanishes while one is open, where the clamped mask's would. No host sync."""
    return (F.softplus(mask_logits.float()) * pasted).sum() / pasted.sum().clamp_min(1)   # 0 where none was pasted


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
    """(loss, ce, mask_loss) = CE + beta * L_mask + penalty + tv * TV + bimodal * mean(m(1-m))
    + entropy * mean(H(sigmoid(l))).

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
    if cfg.entropy:
        loss = loss + cfg.entropy * gate_entropy(out.mask_logits).float()
    return loss, ce, mask_loss


def gate_entropy(logits: Tensor) -> Tensor:
    """Mean Bernoulli entropy of p = sigmoid(l), in nats (log 2 at l = 0, 0 far from it), written with
    softplus so that saturated logits give 0 and a finite gradient: H = softplus(l) - l * sigmoid(l)."""
    logits = logits.float()
    return (F.softplus(logits) - logits * torch.sigmoid(logits)).mean()


def area_target(cfg, step: int) -> float:
    """The target area at `step` (1-based) of cfg's schedule (AreaConstraint.target): 1.0 through the warm-up, then
    down to cfg.area_target over the next anneal_frac of training (linearly or geometrically), then constant."""
    return AreaConstraint.from_config(cfg).target(step)


def logit_gain_at(cfg, step: int) -> float:
    """The gain on the mask logits at `step` (Config.noise_end): 1 until the anneal starts, then geometric to
    1 / noise_end at its end, along the same progress as the area target's."""
    return 1.0 if cfg.noise_end == 1.0 else cfg.noise_end ** -AreaConstraint.from_config(cfg).progress(step)


def temperature_at(cfg, step: int) -> float:
    """Geometric anneal from cfg.temperature to cfg.temperature_end over the whole run."""
    progress = min(1.0, max(0.0, (step - 1) / max(1, cfg.steps - 1)))
    return cfg.temperature * (cfg.temperature_end / cfg.temperature) ** progress
