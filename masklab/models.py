"""The masked classifier: attention branch -> per-pixel logits -> gate -> mask; classifier on image * mask.

Fully convolutional up to a global pool, so any image size and channel count works; the classifier is the small
CNN (the default) or torchvision's ResNet-18 (Config.backbone, for photos at 96-224 px). The model knows
nothing about training; `build_model(cfg, channels, classes)` is the only constructor the rest uses.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .gates import BINARY_GATES, MaskGate


@dataclass
class Output:
    logits: Tensor       # (B, K) class scores
    mask: Tensor         # (B, 1, H, W) what the classifier saw multiplied into the image
    mask_logits: Tensor  # (B, 1, H, W) the attention branch's output
    relaxed: Tensor      # (B, 1, H, W) deterministic soft mask m_eval (hard mask = relaxed > 0.5)
    features: Tensor     # (B, F, h, w) classifier features before global pooling
    area: Tensor         # () differentiable fraction of open gates (expected L0 for hard concrete)
    temperature: float


class AttentionBranch(nn.Module):
    """`depth` 3x3 convs (dilations 1, 2, 4, ...; the default 3 sees 15 cells), then a 1x1, to one logit per pixel.

    With stride > 1 the whole branch runs on the image average-pooled by `stride` and its logits are upsampled:
    nearest (the default) makes the mask of stride x stride blocks; bilinear interpolates the logits, so the 0/1
    edge can fall inside a block and follow a stroke (+0.013 accuracy on the digits over 5 seeds, but 2 of 6
    CIFAR-10 runs collapsed with it where nearest had none of 9: preset hard-concrete-bilinear). Measured on 2 CPU
    cores (cluttered-digits, batch 64): with stride 1 a step costs 1.7-2.3x the unmasked classifier's,
    with stride 2 about 1.4x. A full-resolution skip into the head (sharper edges) cost 0.25x more and
    changed nothing measurable (one seed, 1500 steps: area 0.075 / accuracy 0.93 with it, 0.079 / 0.92
    without), so it went. shuffle reads each block whole (pixel_unshuffle) and writes a logit for each of its
    pixels (pixel_shuffle), at nearest's cost: no gain on the digits, and on photos it learned a lattice (one pixel
    of every block, in every photo) rather than a region (README, "Why the photos lose")."""

    def __init__(self, channels: int, width: int, stride: int, init_bias: float, upsample: str = "nearest",
                 norm: bool = False, bound: float = 0.0, prior: int = 0, depth: int = 3):
        super().__init__()
        self.stride, self.upsample, self.bound = stride, upsample, bound
        self.gain = 1.0                # Config.noise_end: the gain on the logits (set per step by train(), not saved)
        self.gain_inside = True        # Config.gain_site: the gain acts inside the bound (logits) or after it (bounded)
        self.prior = nn.Parameter(torch.zeros(1, 1, prior, prior)) if prior else None
        block = lambda c_in, dilation: [nn.Conv2d(c_in, width, 3, padding=dilation, dilation=dilation),
                                        *([nn.GroupNorm(4 if width % 4 == 0 else 1, width)] if norm else []),
                                        nn.ReLU(inplace=True)]
        cells = stride * stride if upsample == "shuffle" and stride > 1 else 1   # pixels of a block, each its own
        layers = block(channels * cells, 1)               # made in this order: the same seed, the same weights
        for i in range(1, depth):
            layers += block(width, 2 ** i)                # dilated 2, 4, 8, ...
        self.body = nn.Sequential(*layers, nn.Conv2d(width, cells, 1))
        nn.init.constant_(self.body[-1].bias, init_bias)   # gates start open: the classifier sees everything

    def forward(self, x: Tensor, extra: Tensor | None = None, correct=None) -> Tensor:
        """(B, 1, H, W) logits; `correct(first, hidden)` (Config.refine) returns a change to the logits at the branch's
        own resolution, given the logits it would give without it and the hidden features of its last conv."""
        if correct is None:
            return self._finish(self._logits(x), extra)
        inputs = self._input(x)
        hidden = self.body[:-1](inputs)                  # the same convs as body(inputs): one pass for both looks
        raw = self.body[-1](hidden)
        first = self._finish(self._upsample(raw, x), extra)
        return self._finish(self._upsample(raw + correct(first, hidden), x), extra)

    def _finish(self, logits: Tensor, extra: Tensor | None) -> Tensor:
        x_size = logits.shape[-2:]
        if extra is not None:          # the glimpse: logits from the classifier's own view of the whole image
            logits = logits + F.interpolate(extra, size=x_size, mode="nearest")
        if self.prior is not None:     # where objects usually are, learned over all images, at any image size
            logits = logits + F.interpolate(self.prior, size=x_size, mode="bilinear", align_corners=False)
        if self.gain != 1.0 and (self.gain_inside or not self.bound):
            logits = logits * self.gain
        if self.bound:                 # a soft ceiling on |logit|: no logit passes the bound, at any gain inside it
            logits = self.bound * torch.tanh(logits / self.bound)
            if self.gain != 1.0 and not self.gain_inside:
                logits = logits * self.gain                      # gain_site bounded: the gain lifts the bound
        return logits

    def _logits(self, x: Tensor) -> Tensor:
        return self._upsample(self.body(self._input(x)), x)

    def _input(self, x: Tensor) -> Tensor:
        """What the convs read: the image (stride 1), its blocks unshuffled into channels, or it average-pooled."""
        if self.stride == 1:
            return x
        if self.upsample == "shuffle":                        # every pixel of a block in, a logit for each out
            h, w, s = *x.shape[-2:], self.stride
            return F.pixel_unshuffle(F.pad(x, (0, -w % s, 0, -h % s)), s)
        return F.avg_pool2d(x, self.stride, ceil_mode=True)

    def _upsample(self, logits: Tensor, x: Tensor) -> Tensor:
        """The convs' logits (B, cells, H/s, W/s) to one per pixel of x (B, 1, H, W)."""
        if self.stride == 1:
            return logits
        if self.upsample == "shuffle":
            return F.pixel_shuffle(logits, self.stride)[..., :x.shape[-2], :x.shape[-1]]
        if self.upsample == "bilinear":                       # logit of a pixel from its 4 nearest block centres
            return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(logits, scale_factor=self.stride, mode="nearest")[..., :x.shape[-2], :x.shape[-1]]


class Refine(nn.Module):
    """Config.refine: a second look. The classifier reads x times the branch's first hard mask (no gradient into it);
    `read` (1x1) takes 8 channels of its features, upsampled to the branch's resolution, and `head` (3x3, ReLU, 1x1)
    turns them, beside the branch's hidden features, into a change to each logit. The head's last conv starts at zero,
    so the branch starts as it would be without it. With `norm` (Config.mask_norm) its hidden features are
    group-normalised like the branch's: unnormalised, the classifier's growing features moved every logit at once
    (80 steps of the default with it: 2.8% of the pixels kept in the warm-up, where the target is still 1)."""

    def __init__(self, features: int, width: int, cells: int, norm: bool, reads: int = 8):
        super().__init__()
        self.read = nn.Conv2d(features, reads, 1)
        self.head = nn.Sequential(nn.Conv2d(width + reads, width, 3, padding=1),
                                  *([nn.GroupNorm(4 if width % 4 == 0 else 1, width)] if norm else []),
                                  nn.ReLU(inplace=True), nn.Conv2d(width, cells, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, hidden: Tensor, features: Tensor) -> Tensor:
        seen = F.interpolate(self.read(features), size=hidden.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([hidden, seen], 1))


class Classifier(nn.Module):
    """3 convs (w, 2w, 2w) with two max pools, global max pool, linear."""

    def __init__(self, channels: int, classes: int, width: int):
        super().__init__()
        self.body = nn.Sequential(
            # in-place ReLUs: the same values without a second copy of each map (a conv's backward needs its
            # input, not its output)
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(2 * width, classes)
        # Near-zero head: the first logits are ~0 whatever the input, so a still-guessing classifier gains
        # nothing by shrinking its input (a default-init head's first gradients close every gate at once).
        # Not exactly zero: with a zero head the body gets no gradient on step 1, Adam's first normalised steps
        # then kill the ReLUs (unmasked, 125 steps: 3 of seeds 0-9 ended with <= 4 of 64 live features and
        # one never learned in 1500 steps; with std 0.01 every seed kept >= 15 and learned).
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(x)                               # (B, 2w, H/4, W/4)
        return self.head(features.amax(dim=(2, 3))), features


class ResNetClassifier(nn.Module):
    """torchvision's ResNet-18 (weights=None) as the classifier: its first conv takes `channels`, its pooled
    features feed a near-zero head as the small classifier's do; features = layer4's map, before pooling."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        from torchvision.models import resnet18
        net = resnet18(weights=None, num_classes=classes)
        if channels != 3:
            net.conv1 = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
                                  net.layer4)
        self.head = net.fc
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(x)                               # (B, 512, H/32, W/32)
        return self.head(features.mean(dim=(2, 3))), features


CLASSIFIERS = {"small": lambda channels, classes, width: Classifier(channels, classes, width),
               "resnet18": lambda channels, classes, width: ResNetClassifier(channels, classes)}


class MaskedClassifier(nn.Module):
    def __init__(self, channels: int, classes: int, gate: str, width: int = 16, mask_stride: int = 1,
                 init_bias: float = 2.0, classifier_width: int = 32, hard_forward: bool = True,
                 clamp_backward: bool = False, upsample: str = "nearest", oracle: str = "none",
                 mask_norm: bool = False, logit_bound: float = 0.0, area_seen: bool = False, backbone: str = "small",
                 glimpse: bool = False, prior: int = 0, branch_depth: int = 3, refine: bool = False):
        super().__init__()
        self.gate, self.hard_forward, self.oracle = gate, hard_forward, oracle
        self.mask_gate = MaskGate(self.gate_kind, hard=hard_forward, clamp_backward=clamp_backward,
                                  seen_area=area_seen)                     # no parameters: state_dicts unchanged
        self.channels, self.classes = channels, classes
        self.attention = None if gate == "none" else AttentionBranch(
            channels, width, mask_stride, init_bias, upsample, mask_norm, logit_bound, prior, branch_depth)
        self.classifier = CLASSIFIERS[backbone](channels, classes, classifier_width)
        self.glimpse = None
        if glimpse and self.attention is not None:
            self.glimpse = nn.Conv2d(self.classifier.head.in_features, 1, 1)
            nn.init.zeros_(self.glimpse.weight)
            nn.init.zeros_(self.glimpse.bias)
        self.refine = None
        if refine and self.attention is not None:             # made last: every other weight as without it
            self.refine = Refine(self.classifier.head.in_features, width, self.attention.body[-1].out_channels,
                                 mask_norm)

    def mask_logits(self, x: Tensor) -> Tensor:
        if self.attention is None:                            # unmasked: a logit that always keeps the pixel
            return x.new_full((x.shape[0], 1, *x.shape[-2:]), 20.0)
        extra = None
        if self.glimpse is not None:
            with torch.no_grad():                             # the classifier's features of the whole image
                _, features = self.classifier(x)
            extra = self.glimpse(features)
        return self.attention(x, extra, None if self.refine is None else functools.partial(self._second_look, x))

    def _second_look(self, x: Tensor, first: Tensor, hidden: Tensor) -> Tensor:
        with torch.no_grad():                                 # the classifier's features of x * the first hard mask
            _, features = self.classifier(x * self.mask_gate.hard_mask(first))
        return self.refine(hidden, features)

    def branch_parameters(self) -> list[nn.Parameter]:
        """Every weight that decides the mask and nothing else: the attention branch, the glimpse, the refine head."""
        return [p for m in (self.attention, self.glimpse, self.refine) if m is not None for p in m.parameters()]

    @property
    def logit_gain(self) -> float:
        """The branch's gain on its logits (Config.noise_end; 1 without a branch)."""
        return 1.0 if self.attention is None else self.attention.gain

    @logit_gain.setter
    def logit_gain(self, gain: float) -> None:
        if self.attention is not None:
            self.attention.gain = gain

    def forward(self, x: Tensor, temperature: float = 2 / 3, generator: torch.Generator | None = None,
                mask: Tensor | None = None, random_rows: int = 0, deterministic_rows: int = 0,
                random_low: float = 0.0, ahead_rows: int = 0, ahead_area: float = 0.0) -> Output:
        """Gate the image and classify it; pass `mask` to classify x * mask with a mask of your own.

        Training options (Config.ahead, Config.random_masks, Config.deterministic): the first `ahead_rows` images
        see the branch's mask at the final area already, the top `ahead_area` fraction of their logits (no gradient
        to the branch, and left out of the area the constraint counts); the next `random_rows` see random block
        masks (each block kept with probability p ~ U(random_low, 1) per image, no gradient to the branch); the
        last `deterministic_rows` see the gate's noise-free eval mask (1[m_eval > 1/2] for a hard gate) with its
        straight-through gradient."""
        if mask is None and self.oracle != "none":
            raise ValueError(f"an oracle-{self.oracle} model classifies x * the true {self.oracle} mask: pass it as "
                             f"`mask` (only its own dataset's images have one)")
        logits_m = self.mask_logits(x) if self.oracle == "none" else (mask * 40 - 20)
        soft = self.mask_gate.relaxed(logits_m, temperature)
        if mask is None:
            mask = torch.ones_like(logits_m) if self.attention is None else self.mask_gate(logits_m, temperature, generator)
            if self.attention is not None and (random_rows or deterministic_rows or ahead_rows):
                mask = self._mix(mask, logits_m, temperature, generator, random_rows, deterministic_rows, random_low,
                                 ahead_rows, ahead_area)
        logits, features = self.classifier(x * mask)
        masked = self.attention is not None
        n, d, a = x.shape[0], deterministic_rows if masked else 0, ahead_rows if masked else 0
        area = self.mask_gate.area(logits_m[a:n - d], mask[a:n - d], temperature) if a + d < n else \
            mask.new_zeros(())
        if d:                                                 # the area those rows saw, as the classifier saw it
            area = (area * (n - a - d) + mask[n - d:].mean() * d) / (n - a)
        return Output(logits, mask, logits_m, soft, features, area, temperature)

    def _mix(self, mask: Tensor, logits_m: Tensor, temperature: float, generator, random_rows: int,
             deterministic_rows: int, random_low: float, ahead_rows: int = 0, ahead_area: float = 0.0) -> Tensor:
        n, d, a, r = mask.shape[0], deterministic_rows, ahead_rows, ahead_rows + random_rows
        parts = [top_fraction(logits_m[:a], ahead_area)] if a else []
        parts += [random_mask(logits_m[a:r], generator, random_low, self.attention.stride), mask[r:n - d]]
        if d:
            parts.append(self.mask_gate.deterministic(logits_m[n - d:], temperature))
        return torch.cat(parts)

    def gate_relaxed(self, x: Tensor, temperature: float) -> Tensor:
        """m_eval: the deterministic soft mask (B, 1, H, W); the hard mask is m_eval > 0.5."""
        return self.mask_gate.relaxed(self.mask_logits(x), temperature)

    @property
    def gate_kind(self) -> str:
        return "straight_through" if self.gate == "none" else self.gate

    @property
    def binary(self) -> bool:
        """Whether the classifier sees an exactly 0/1 mask at eval time."""
        return self.gate in BINARY_GATES and self.hard_forward


def random_mask(like: Tensor, generator: torch.Generator | None, low: float = 0.1, block: int = 1) -> Tensor:
    """(B, 1, H, W) 0/1 in `like`'s shape: each image keeps each block of block x block pixels with its own
    probability drawn from U(low, 1) (EVAL-X's evaluator and Config.random_masks train on these)."""
    b, (h, w) = like.shape[0], like.shape[-2:]
    keep = low + (1 - low) * torch.rand(b, 1, 1, 1, generator=generator, device=like.device)
    blocks = torch.rand(b, 1, -(-h // block), -(-w // block), generator=generator, device=like.device) < keep
    return blocks.to(like.dtype).repeat_interleave(block, 2).repeat_interleave(block, 3)[..., :h, :w]


def top_fraction(logits: Tensor, fraction: float) -> Tensor:
    """(B, 1, H, W) 0/1, no gradient: each image keeps its `fraction` of pixels with the highest logits (at least
    one; ties with the last one kept are kept too)."""
    flat = logits.detach().flatten(1)
    k = min(flat.shape[1], max(1, round(fraction * flat.shape[1])))
    return (flat >= flat.topk(k, dim=1).values[:, -1:]).to(logits.dtype).view_as(logits)


_RNG_LOCK = threading.Lock()


@contextlib.contextmanager
def own_global_rng(seed: int | None = None):
    """torch's global generator to this block alone: taken under one lock, seeded when `seed` is given, and put back
    as it was on exit. Every user of the global generator in a run's thread goes through here: a bare fork_rng
    restores the state it saved when it exits, and so rewinds another thread's generator in the middle of that
    thread's seeded initialisation (measured: 19 of 40 models built beside a thread measuring step buffers had other
    weights)."""
    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def build_model(cfg, channels: int, classes: int) -> MaskedClassifier:
    """The model of `cfg` for images of `channels` channels and `classes` classes, initialised from cfg.seed.

    The global RNG is owned and seeded for the build (own_global_rng), so concurrent runs get reproducible weights."""
    with own_global_rng(cfg.seed):
        model = MaskedClassifier(channels, classes, cfg.gate, cfg.width, cfg.mask_stride, cfg.init_bias,
                                 cfg.classifier_width, cfg.hard_forward, cfg.clamp_backward, cfg.mask_upsample,
                                 cfg.oracle, cfg.mask_norm, cfg.logit_bound, cfg.area_seen, cfg.backbone,
                                 cfg.glimpse, cfg.prior, cfg.branch_depth, cfg.refine)
        model.mask_gate.keep = cfg.area_target          # top_k at eval (training sets the schedule's target)
        model.logit_gain = 1 / cfg.noise_end            # the trained model's, at eval (training sets the schedule's)
        if model.attention is not None:
            model.attention.gain_inside = cfg.gain_site == "logits"
        return model
