"""Would a longer closing phase make the photo demo's mask 0/1? Continue a checkpoint's closing phase.

    python tools/commit_longer.py [--checkpoint checkpoints/demo-photos] [--folder data/cifar10] [--steps 750]
                                  [--loss l1|hinge] [--photos 2000] [--threads N]

Trains the checkpoint on for `--steps` more steps with its mask frozen and `commit` on, as its own closing phase
did (the branch's rate held at the one the run had when that phase began, the classifier's too; seed 1, so the
batches are not the run's own), and prints hard-mask accuracy, area, bimodality and contiguity on the first
`--photos` test photos every 250 steps. `--loss hinge` swaps commit's mean |m_eval - h| for a hinge on the gate's
pre-clamp logit z (0.3 * relu(ln 11 - s z), s = +1 where h is 1, -1 where 0): a push of the same size at z = 0 that
does not fade as a gate nears 0 or 1, where the L1 term's gradient through the sigmoid shrinks. Nothing is saved.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from masklab import train as training  # noqa: E402
from masklab.checkpoint import load_run  # noqa: E402
from masklab.data import open_data  # noqa: E402
from masklab.metrics import evaluate  # noqa: E402


def hinge(relaxed: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
    z = torch.logit((relaxed.float() + 0.1) / 1.2, eps=1e-6)     # hard concrete's stretch (-0.1, 1.1) undone
    return 0.3 * torch.relu(math.log(11) - (hard.float() * 2 - 1) * z).mean()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/demo-photos")
    ap.add_argument("--folder", default="data/cifar10")
    ap.add_argument("--steps", type=int, default=750)
    ap.add_argument("--loss", choices=("l1", "hinge"), default="l1")
    ap.add_argument("--photos", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, model, _ = load_run(args.checkpoint)
    # the rate the run had when its closing phase began (lr_decay's cosine at 1 - finetune of the way)
    lr = cfg.lr * training.lr_factor(cfg, int(round((1 - cfg.finetune) * cfg.steps)))
    more = cfg.replace(steps=args.steps, warmup=0.0, anneal_frac=0.0, finetune=0.9999, lr=lr, lr_decay=False,
                       data=f"folder:{args.folder}", test_size=args.photos, log_every=250, seed=1)
    if args.loss == "hinge":
        training.commit_loss = hinge
    data = open_data(more, "cpu")
    show = lambda step, r, s: print(f"step {step:5d}: accuracy_hard {r['accuracy_hard']:.4f} area {r['area']:.4f} "
                                    f"bimodality {r['bimodality']:.4f} contiguity {r['contiguity']:.4f} ({s:.0f} s)",
                                    flush=True)
    show(0, evaluate(model, data.test, more.temperature), 0)
    tic = time.perf_counter()
    for record in training.train(more, model, data):
        show(record.step, evaluate(model, data.test, more.temperature), time.perf_counter() - tic)
    return 0


if __name__ == "__main__":
    sys.exit(main())
