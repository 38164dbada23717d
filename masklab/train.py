"""The training loop: a generator that yields a Record every `log_every` steps.

It knows nothing about threads, files, printing or Streamlit. Its caller pauses it by not asking for the next
record and stops it with `break`. Loss = CE + beta * L_mask + AreaConstraint(area, step) + tv * TV + ...
(+ evidence * the evidence term + occlusion * the occlusion term, and parts of each batch on random or noise-free
masks, where Config turns them on); the constraint (masklab.constraint: the target annealed from 1.0, gates open at
first, and its multipliers, updated by dual ascent) is the same public object a user puts in their own loop.
A non-finite loss restores the last good weights and raises NonFiniteLoss.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from .constraint import AreaConstraint
from .device import keep_heap
from .losses import (commit_loss, complement_loss, distract_loss, distractors, evidence_loss, logit_gain_at, objective,
                     occlusion_loss, temperature_at)
from .metrics import bimodality, major_pieces
from .models import own_global_rng


@dataclass(frozen=True)
class Record:
    step: int
    loss: float
    ce: float
    mask_loss: float
    accuracy: float        # on this training batch, as the classifier saw it
    area: float            # fraction of pixels in the hard mask (m_eval > 0.5) on this batch
    area_expected: float   # the differentiable area the constraint sees (P(open) for hard concrete)
    bimodality: float
    multiplier: float      # net push on the area: the target's multiplier minus the floor's (< 0: pushed open)
    temperature: float
    target: float
    seconds: float         # training time so far, pauses excluded

    def to_dict(self) -> dict:
        return asdict(self)


RECORD_FIELDS = tuple(Record.__dataclass_fields__)


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; the model holds the last good weights again."""

    def __init__(self, step: int, good_step: int, message: str):
        super().__init__(message)
        self.step, self.good_step = step, good_step


@torch.no_grad()
def step_buffers(model, shape: tuple[int, ...]) -> list[int]:
    """Bytes of each tensor the modules of `model` (a MaskedClassifier, or a classifier alone) output for a batch of
    `shape` (B, C, H, W): a training step's activations (and gradients). Measured on one image and scaled by B (one
    quick forward pass in eval mode, with the random state kept: the run is unchanged)."""
    sizes = []
    record = lambda module, inputs, out: sizes.extend(t.numel() * t.element_size() * shape[0] for t in
                                                      (out if isinstance(out, (tuple, list)) else (out,))
                                                      if isinstance(t, torch.Tensor))
    hooks = [m.register_forward_hook(record) for m in model.modules()]
    was_training, x = model.training, torch.zeros(1, *shape[1:], device=next(model.parameters()).device)
    try:
        model.eval()
        with own_global_rng():
            if getattr(model, "attention", None) is not None:
                model.mask_logits(x)                   # the branch, then the classifier (as a step runs them)
            getattr(model, "classifier", model)(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return sizes


def keep_step_heap(cfg, model, data, device: torch.device) -> None:
    """On the CPU, have glibc keep the buffers of a training step of `model` at cfg.batch_size on `data` allocated
    between steps (device.keep_heap): train() and the benchmark's EVAL-X evaluator (25% faster with it)."""
    if device.type == "cpu":
        keep_heap(step_buffers(model, (cfg.batch_size, data.channels, *data.size)))


def train(cfg, model, data, device: torch.device | str = "cpu") -> Iterator[Record]:
    """Train `model` on `data` (both already on `device`) for cfg.steps steps, yielding Records.

    Args:
        cfg: the run's Config.
        model: a MaskedClassifier from build_model(cfg, ...).
        data: a Dataset from open_data(cfg, device).
        device: where model and data live; bf16 autocast is used on CUDA.
    """
    device = torch.device(device)
    keep_step_heap(cfg, model, data, device)
    g_data = torch.Generator(device=device).manual_seed(cfg.seed)
    g_noise = torch.Generator(device=device).manual_seed(cfg.seed + 1_000_003)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_factor(cfg, i))
    masked = model.attention is not None
    constraint = AreaConstraint.from_config(cfg)      # the annealed target and its multipliers
    first_bad = torch.zeros((), dtype=torch.long, device=device)   # step of the first non-finite loss, no sync
    good, good_step = _snapshot(model), 0
    seconds, tic = 0.0, time.perf_counter()
    model.train()
    closing = int(round((1 - cfg.finetune) * cfg.steps)) if masked and cfg.finetune else cfg.steps
    shadow = copy.deepcopy(model.classifier) if masked and cfg.shadow else None   # reads the eval mask only
    teacher = commit_opt = branch = None               # commit: the model at the closing phase's start
    if shadow is not None:
        shadow_opt = torch.optim.Adam(shadow.parameters(), lr=cfg.lr)
        shadow_schedule = torch.optim.lr_scheduler.LambdaLR(shadow_opt, lambda i: lr_factor(cfg, i))
    ends = shadow if shadow is not None else model.classifier   # the classifier the run ends with
    averaged, averaging = None, round((1 - cfg.average) * cfg.steps)   # averaging from the step after; 0: none
    for step in range(1, cfg.steps + 1):
        x, y, mask = *data.batch(cfg.batch_size, g_data), None
        if cfg.oracle != "none":
            x, y, mask = data.truth_batch(cfg.batch_size, g_data, cfg.oracle)
        tau, target = temperature_at(cfg, step), constraint.target(step)
        model.mask_gate.keep = target                  # top_k keeps exactly this fraction (other gates: unused)
        model.logit_gain = logit_gain_at(cfg, step)
        frozen = step > closing                        # closing phase: the mask is fixed, the classifier adapts
        if frozen and cfg.commit and teacher is None:  # the mask as the closing phase found it, kept as a copy
            teacher = copy.deepcopy(model).requires_grad_(False)
            branch = model.branch_parameters()
            # a new objective: its own Adam (fresh moments), at the lr the run has reached, held there: the decayed
            # tail of lr_decay would leave the last gates mid-band (README, "Committing the mask")
            commit_opt = torch.optim.Adam(branch, lr=opt.param_groups[0]["lr"] * cfg.commit_lr)
        if frozen:
            with torch.no_grad():
                mask = (model.gate_relaxed(x, tau) > 0.5).to(x.dtype)
                if teacher is not None:                # commit's target: the copy's mask, fixed
                    fixed = (teacher.gate_relaxed(x, tau) > 0.5).to(x.dtype)
                    if cfg.commit_pieces:              # and without its specks: pieces under a share of the largest
                        fixed = major_pieces(fixed, cfg.commit_pieces)
        pasted = None
        if masked and not frozen and cfg.distract and cfg.oracle == "none":
            with torch.no_grad():                      # where each image's own mask is: the part pasted elsewhere
                x, pasted = distractors(x, model.mask_logits(x), g_noise)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            mix = {}
            if masked and mask is None:
                n = x.shape[0]
                ahead = int(round(cfg.ahead * n))
                mix = dict(random_rows=min(int(round(cfg.random_masks * n)), n - ahead),
                           deterministic_rows=int(round(cfg.deterministic * n)), random_low=target,
                           ahead_rows=ahead, ahead_area=cfg.area_target)
                mix["deterministic_rows"] = min(mix["deterministic_rows"], n - ahead - mix["random_rows"])
            out = model(x, tau, g_noise, mask=mask, **mix)
            penalty = None
            if masked and not frozen:                  # frozen: no mask term may move the attention branch
                penalty = constraint(out.area, step) if cfg.constraint else out.area.new_zeros(())
            loss, ce, mask_loss = objective(cfg, out, y, target, penalty)
            if masked and not frozen and cfg.evidence:
                loss = loss + cfg.evidence * evidence_loss(model, x, y, out.mask_logits, target)
            if masked and not frozen and cfg.occlusion:
                loss = loss + cfg.occlusion * occlusion_loss(model, x, y, out.mask_logits, target)
            if pasted is not None:
                loss = loss + cfg.distract * distract_loss(out.mask_logits, pasted)
            if masked and not frozen and cfg.complement:
                loss = loss + cfg.complement * complement_loss(model, x, y, out.mask)
            if frozen:
                loss = ce                              # nor beta * L_mask
                if teacher is not None:                # the branch's only gradient: m_eval toward that fixed mask
                    loss = loss + commit_loss(out.relaxed, fixed, out.mask_logits, cfg.commit_margin)
        first_bad = torch.where((first_bad == 0) & ~torch.isfinite(loss), step, first_bad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if teacher is not None:                        # the branch steps with its own optimizer, not the main one
            commit_opt.step()
            for p in branch:
                p.grad = None
        opt.step()
        schedule.step()
        if masked and cfg.constraint and not frozen:
            constraint.update()
        if shadow is not None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                shadow_loss = F.cross_entropy(shadow(x * (out.relaxed.detach() > 0.5).to(x.dtype))[0].float(), y)
            shadow_opt.zero_grad(set_to_none=True)
            shadow_loss.backward()
            shadow_opt.step()
            shadow_schedule.step()
        if step > averaging:                           # weight averaging: one equal share a step, from here
            if averaged is None:
                averaged = torch.optim.swa_utils.AveragedModel(ends, use_buffers=True)
            averaged.update_parameters(ends)
        if step == cfg.steps and (shadow is not None or averaged is not None):
            # the run ends with the classifier that read its final mask, averaged over its last steps where asked
            model.classifier.load_state_dict((averaged.module if averaged is not None else shadow).state_dict())
        if step % cfg.log_every and step != cfg.steps:
            continue
        bad = int(first_bad)
        if bad or not all(torch.isfinite(p).all() for p in model.parameters()):
            model.load_state_dict(good)
            raise NonFiniteLoss(bad or step, good_step,
                                f"non-finite loss at step {bad or step}: stopped, weights of step {good_step} kept. "
                                f"Lower lr or beta, or raise lam (lambda) if the seed loss is on.")
        good, good_step = _snapshot(model), step
        hard = out.relaxed.detach() > 0.5
        record = Record(
            step=step, loss=loss.item(), ce=ce.item(), mask_loss=mask_loss.item(),
            accuracy=(out.logits.argmax(1) == y).float().mean().item(), area=hard.float().mean().item(),
            area_expected=out.area.item(), bimodality=bimodality(out.relaxed.detach().float()),
            multiplier=float(constraint.multiplier), temperature=tau, target=target,
            seconds=seconds + time.perf_counter() - tic)
        seconds = record.seconds
        yield record                                   # paused here for as long as the caller likes
        tic = time.perf_counter()


def lr_factor(cfg, i: int) -> float:
    """Multiplier of cfg.lr after i optimiser steps: 1, or a cosine from 1 down to 0.05."""
    if not cfg.lr_decay:
        return 1.0
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, i / cfg.steps)))


def _snapshot(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
