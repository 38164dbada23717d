"""Is the mask or the classifier what loses accuracy? Freeze a trained run's attention branch and train a FRESH
classifier (new initialisation, the run's steps, lr and batch) on x * its deterministic hard mask.

    python tools/refit_mask.py RUN [--steps N] [--seed 777] [--batch-seed 5]
    python tools/refit_mask.py RUN --keep       # or go on training the run's own classifier on it
    python tools/refit_mask.py RUN --ink        # which of the digit's ink the mask keeps, by the ink's intensity
    python tools/refit_mask.py RUN --clutter    # where the run's errors are: images with clutter in the digit's box
    python tools/refit_mask.py RUN --dropped    # what the run's own classifier reads in the pixels the mask drops
    python tools/refit_mask.py RUN --largest    # its accuracy when each mask keeps only its largest piece
    python tools/refit_mask.py RUN --box        # what it keeps outside the digit's box, and what that is worth

Prints the run's own hard-mask accuracy and the fresh classifier's on the same test set: if the fresh one is
far better, the jointly trained classifier was the bottleneck; if both stay below oracle-ink (the same
classifier on the digit's true ink), the mask is. A diagnostic, not a method (it doubles the training time).
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from masklab.checkpoint import load_run  # noqa: E402
from masklab.data import open_data, true_mask  # noqa: E402
from masklab.metrics import evaluate, largest_piece, predict  # noqa: E402
from masklab.models import build_model  # noqa: E402
from masklab.synthetic import INK  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--steps", type=int, help="default: the run's own")
    parser.add_argument("--seed", type=int, default=777, help="the fresh classifier's initialisation")
    parser.add_argument("--batch-seed", type=int, default=5, help="the order of its training batches")
    parser.add_argument("--keep", action="store_true", help="go on training the run's own classifier instead of a "
                                                                "fresh one (under-trained or damaged?)")
    parser.add_argument("--ink", action="store_true", help="print the share of the ink kept by intensity instead")
    parser.add_argument("--clutter", action="store_true", help="print the run's accuracy on the images with clutter "
                                                               "inside the digit's box and elsewhere instead")
    parser.add_argument("--dropped", action="store_true", help="print what the run's own classifier makes of x * (1 - "
                                                               "its hard mask) instead (the complement term's judge)")
    parser.add_argument("--largest", action="store_true", help="print the run's accuracy when each hard mask is cut to "
                                                               "its largest 4-connected piece instead (is the clutter "
                                                               "it keeps apart from the digit?)")
    parser.add_argument("--box", action="store_true", help="print the share of the kept pixels outside the digit's box "
                                                           "and the run's accuracy on its mask inside the box alone "
                                                           "and outside it alone instead (does it read the clutter?)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg, model, summary = load_run(args.run)
    data = open_data(cfg)
    if args.ink:
        return ink_kept(args.run, cfg, model, data.test)
    if args.clutter:
        return clutter_in_box(args.run, cfg, model, data.test)
    if args.dropped:
        return dropped(args.run, cfg, model, data.test)
    if args.largest:
        return largest_only(args.run, cfg, model, data.test)
    if args.box:
        return inside_and_outside(args.run, cfg, model, data.test)
    if not args.keep:
        fresh = build_model(cfg.replace(seed=args.seed), data.channels, data.classes)
        model.classifier.load_state_dict(fresh.classifier.state_dict())
    opt = torch.optim.Adam(model.classifier.parameters(), lr=cfg.lr)
    g, tau = torch.Generator().manual_seed(args.batch_seed), cfg.temperature_end
    model.train()
    for _ in range(args.steps or cfg.steps):
        x, y = data.batch(cfg.batch_size, g)
        with torch.no_grad():
            mask = (model.gate_relaxed(x, tau) > 0.5).to(x.dtype)
        loss = F.cross_entropy(model(x, tau, mask=mask).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m = evaluate(model, data.test, tau)
    which = "the same one trained on" if args.keep else "a fresh one trained"
    print(f"{args.run}: its own classifier {summary['metrics']['accuracy_hard']:.3f}, {which} "
          f"{args.steps or cfg.steps} steps on its frozen hard mask {m['accuracy_hard']:.3f} (area {m['area']:.3f})")
    return 0


def hard_mask_of(cfg, model, test) -> torch.Tensor:
    """The run's hard mask on the test images, 0/1 in their dtype (eval mode, no gradient)."""
    with torch.no_grad():
        return (model.eval().gate_relaxed(test.x, cfg.temperature_end) > 0.5).to(test.x.dtype)


def ink_kept(run, cfg, model, test) -> int:
    """Of the test set's ink pixels (the digit's own), the share the run's hard mask keeps, by intensity band."""
    hard = hard_mask_of(cfg, model, test).bool()
    ink = test.ink.bool()
    values, kept = test.x[ink], hard[ink]
    print(f"{run}: area {hard.float().mean():.3f}, ink {ink.float().mean():.3f}, ink kept {kept.float().mean():.3f}; "
          f"kept pixels that are not ink {(hard & ~ink).sum() / hard.sum():.3f}")
    for lo, hi in ((0.0, 0.5), (0.5, 0.75), (0.75, 1.0)):
        band = (values > lo) & (values <= hi)
        print(f"  ink of intensity ({lo}, {hi}]: {band.float().mean():.3f} of the ink, {kept[band].float().mean():.3f} kept")
    return 0


def clutter_in_box(run, cfg, model, test) -> int:
    """Clutter inside the digit's box (pixels there as bright as ink, > synthetic.INK, that are not the
    digit's ink: fragments of other digits): how much of it the hard mask keeps, and the run's accuracy on the
    images that have some against the images that have none."""
    m, _, hard_logits, _, _ = predict(model, test.x, cfg.temperature_end)
    hard, right = m > 0.5, hard_logits.argmax(1) == test.y
    box = true_mask("box", test.x, test.boxes, test.ink).bool()
    clutter = (test.x.amax(1, keepdim=True) > INK) & ~test.ink.bool() & box
    some = clutter.flatten(1).any(1)
    print(f"{run}: accuracy {right.float().mean():.3f}; {some.float().mean():.3f} of the images have clutter in "
          f"the digit's box, accuracy there {right[some].float().mean():.3f}, elsewhere "
          f"{right[~some].float().mean():.3f}; the mask keeps {hard[clutter].float().mean():.3f} of that clutter "
          f"and {hard[test.ink.bool()].float().mean():.3f} of the ink")
    return 0


def dropped(run, cfg, model, test) -> int:
    """The run's own classifier on what its hard mask keeps, on what it drops (x * (1 - mask)) and on the whole
    image: the mean p(y) and the share of images whose top class is y. Chance on the dropped pixels means the
    classifier reads nothing there, so a term judged by it (Config.complement) has no signal to give."""
    hard = hard_mask_of(cfg, model, test)
    with torch.no_grad():
        parts = {"kept": test.x * hard, "dropped": test.x * (1 - hard), "whole": test.x}
        read = {name: torch.softmax(model.classifier(x)[0].float(), 1) for name, x in parts.items()}
    line = "; ".join(f"{name}: p(y) {p.gather(1, test.y[:, None]).mean():.3f}, top class y "
                     f"{(p.argmax(1) == test.y).float().mean():.3f}" for name, p in read.items())
    print(f"{run}: {line}")
    return 0


@torch.no_grad()
def own_accuracy(model, test, mask: torch.Tensor) -> float:
    """The run's own classifier on x * `mask` (its own hard mask, or a part of it): the share of test images right."""
    return (model.classifier(test.x * mask)[0].argmax(1) == test.y).float().mean().item()


def largest_only(run, cfg, model, test) -> int:
    """The run's own classifier on x * its hard mask, and on x * that mask cut to each image's largest 4-connected
    piece (metrics.largest_piece): the same accuracy means what the mask keeps beside the digit touches it."""
    hard = hard_mask_of(cfg, model, test)                       # no gradient: the masks carry none
    cut = largest_piece(hard)
    print(f"{run}: accuracy {own_accuracy(model, test, hard):.3f} at area {hard.mean():.4f}; with each mask cut to its "
          f"largest piece {own_accuracy(model, test, cut):.3f} at area {cut.mean():.4f}")
    return 0


def inside_and_outside(run, cfg, model, test) -> int:
    """The share of the hard mask's pixels outside the digit's box (and how bright they are), and the run's own
    classifier on x * the mask inside the box alone and outside it alone: chance outside and the run's accuracy
    inside mean what it keeps out there is clutter the classifier ignores, not a code for the class."""
    hard = hard_mask_of(cfg, model, test)
    box = true_mask("box", test.x, test.boxes, test.ink)
    out = (hard * (1 - box)).bool()
    bright = test.x.amax(1, keepdim=True)[out]
    inside, outside = own_accuracy(model, test, hard * box), own_accuracy(model, test, hard * (1 - box))
    whole = own_accuracy(model, test, hard)
    print(f"{run}: accuracy {whole:.3f} at area {hard.mean():.4f}; {out.sum() / hard.sum():.3f} "
          f"of the kept pixels outside the box ({(bright > INK).float().mean():.3f} of them brighter than {INK}); on "
          f"the mask inside the box alone {inside:.3f}, outside it alone {outside:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
