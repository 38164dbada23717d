"""References for the photo rows: the unmasked classifier trained and tested on x * a mask that is not learned.

    python tools/fixed_masks.py [--seeds 2] [--area 0.3] [--out bench/screen/fixed-masks.jsonl]
    python tools/fixed_masks.py --spread RUN_DIR ...     # how much a run's mask logits vary within a test image

On the CIFAR-10 subset of the screens (1,000 train / 200 test photos a class, 32 px), same preset, steps and
batches as the unmasked row: `center`, a centred square of about `area` of the pixels (the photographer's prior);
`random`, blocks of 2x2 pixels each kept with probability `area`, drawn afresh for every batch and once (seeded)
for the test set; `lattice`, one pixel of every 2x2 block (25% whatever `area` is: a half-resolution view of the
whole photo, what mask_upsample shuffle learned on photos); `none`, the unmasked classifier itself. A learned mask
that does not beat `random` has learned nothing about where to look. One line of JSON per run to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
KINDS = ("center", "random", "none", "lattice")


def fixed_mask(kind: str, n: int, size: int, area: float, generator: torch.Generator) -> torch.Tensor:
    if kind == "center":
        side = round(area ** 0.5 * size)
        a = (size - side) // 2
        m = torch.zeros(n, 1, size, size)
        m[..., a:a + side, a:a + side] = 1
        return m
    if kind == "random":
        blocks = (torch.rand(n, 1, -(-size // 2), -(-size // 2), generator=generator) < area).float()
        return blocks.repeat_interleave(2, 2).repeat_interleave(2, 3)[..., :size, :size]
    if kind == "lattice":
        m = torch.zeros(n, 1, size, size)
        m[..., 1::2, 0::2] = 1
        return m
    return torch.ones(n, 1, size, size)


def run(kind: str, seed: int, area: float) -> dict:
    from masklab.bench_data import resolve_data
    from masklab.config import preset
    from masklab.data import open_data
    from masklab.models import build_model
    cfg = preset("unmasked", seed=seed, **resolve_data({"data": "folder:CIFAR", "image_size": 32, "test_size": 2000}))
    data = open_data(cfg)
    model = build_model(cfg, data.channels, data.classes).classifier
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    tic = time.time()
    for _ in range(cfg.steps):
        x, y = data.batch(cfg.batch_size, g)
        loss = F.cross_entropy(model(x * fixed_mask(kind, x.shape[0], x.shape[-1], area, g))[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = data.test
    with torch.no_grad():
        m = fixed_mask(kind, test.x.shape[0], test.x.shape[-1], area, torch.Generator().manual_seed(123))
        acc = (model(test.x * m)[0].argmax(1) == test.y).float().mean().item()
    return {"kind": kind, "seed": seed, "area": round(m.mean().item(), 4), "accuracy_hard": acc,
            "wall": round(time.time() - tic, 1)}


def spread(run_dir: str, images: int = 200) -> dict:
    """A trained run's mask logits on its first test images: their mean, their spread within an image (a branch
    that learned an offset and not a place has almost none), the mean P(open), and the share of its hard mask's
    kept pixels at each of the four places in a 2x2 block (a lattice keeps them all at one place)."""
    from masklab.checkpoint import load_run
    from masklab.data import open_data
    cfg, model, _ = load_run(Path(run_dir))
    with torch.no_grad():
        logits = model.eval().mask_logits(open_data(cfg).test.x[:images])
    hard = (model.mask_gate.relaxed(logits, cfg.temperature_end) > 0.5).float()
    kept = [hard[..., dy::2, dx::2].sum().item() for dy in (0, 1) for dx in (0, 1)]
    logits = logits.flatten(1)
    return {"run": run_dir, "mean": round(logits.mean().item(), 3),
            "block_places": [round(k / max(1.0, sum(kept)), 3) for k in kept],
            "within_image_std": round(logits.std(1).mean().item(), 3),
            "p_open": round(torch.sigmoid(logits).mean().item(), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--area", type=float, default=0.3)
    parser.add_argument("--out", default="bench/screen/fixed-masks.jsonl")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=KINDS[:3], help="default: center random none")
    parser.add_argument("--spread", nargs="+", metavar="RUN_DIR", help="print the logit spread of these runs instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.spread:
        for run_dir in args.spread:
            print(json.dumps(spread(run_dir)))
        return 0
    for seed in range(args.seeds):
        for kind in args.kinds:
            rec = run(kind, seed, args.area)
            print(json.dumps(rec), flush=True)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
