"""The soft mask's in-between values of trained runs: how the gain and the commit term move them.

    python tools/closing_band.py gain RUN [RUN ...]                  # bimodality and area at 1, 2, 4, 8, 16x the gain
    python tools/closing_band.py commit RUN --loss hinge --lr 5 --margin 6 [--steps 300]

`gain` reads each run's first 1,000 test images at its own gain and at multiples of it: the hard mask 1[l > 0]
does not depend on the gain (the area column stays), and the share of m_eval within 0.01 of 0 or 1 (bimodality)
shows how the band of logits near 0 narrows by scaling alone (why a rising gain in the closing phase was taken out:
README, "Committing the mask"). `commit` goes on with a run's closing phase for --steps more steps of the branch
alone (what Config.commit trains; the classifier is not needed for it), from its final weights towards its own hard
mask, with commit's |m_eval - h| term (`--loss abs`) or a hinge past +-margin on the logit (`--loss hinge`,
Config.commit_margin), at --lr times the run's lr (Config.commit_lr), and prints the test bimodality, the area and
the share of pixels whose side changed. A run of a `folder:` photo set
made by the benchmark is read from the CIFAR-10 subset the benchmark unpacks (masklab.bench_data.cifar_folder).
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from masklab.bench_data import cifar_folder  # noqa: E402
from masklab.checkpoint import load_run  # noqa: E402
from masklab.data import open_data  # noqa: E402
from masklab.losses import commit_loss  # noqa: E402
from masklab.metrics import bimodality  # noqa: E402

TAU = 2 / 3


def opened(run: str):
    cfg, model, _ = load_run(Path(run))
    if cfg.data.startswith("folder:") and not Path(cfg.data[len("folder:"):]).is_dir():
        cfg = cfg.replace(data=f"folder:{cifar_folder()}")        # the benchmark's subset, unpacked elsewhere
    return cfg, model, open_data(cfg.replace(workers=0))


def gain(runs: list[str]) -> None:
    for run in runs:
        cfg, model, data = opened(run)
        x, own = data.test.x[:1000], model.logit_gain
        cells = []
        with torch.no_grad():
            for k in (1, 2, 4, 8, 16):
                model.logit_gain = own * k
                m = model.gate_relaxed(x, TAU)
                cells.append(f"x{k} {bimodality(m):.4f} / {(m > 0.5).float().mean():.4f}")
        print(f"{Path(run).name} (gain {own:g}), bimodality / area: " + ", ".join(cells), flush=True)


def commit(run: str, loss: str, lr: float, margin: float, steps: int) -> None:
    cfg, model, data = opened(run)
    x_test = data.test.x[:1000]
    with torch.no_grad():
        before = model.gate_relaxed(x_test, TAU)
    branch, teacher = copy.deepcopy(model).train(), copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(branch.attention.parameters(), lr=cfg.lr * lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, _ = data.batch(cfg.batch_size, g)
        with torch.no_grad():
            h = (teacher.gate_relaxed(x, TAU) > 0.5).float()
        logits = branch.mask_logits(x)
        term = commit_loss(branch.mask_gate.relaxed(logits, TAU), h, logits, margin if loss == "hinge" else 0.0)
        opt.zero_grad()
        term.backward()
        opt.step()
    with torch.no_grad():
        after = branch.eval().gate_relaxed(x_test, TAU)
    changed = ((after > 0.5) != (before > 0.5)).float().mean()
    print(f"{Path(run).name}: {loss} at {lr:g}x lr" + (f", margin {margin:g}" if loss == "hinge" else "")
          + f", {steps} steps: bimodality {bimodality(before):.4f} -> {bimodality(after):.4f}, area "
          f"{(before > 0.5).float().mean():.4f} -> {(after > 0.5).float().mean():.4f}, side changed {changed:.4f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gain")
    g.add_argument("runs", nargs="+")
    c = sub.add_parser("commit")
    c.add_argument("run")
    c.add_argument("--loss", choices=("abs", "hinge"), default="abs")
    c.add_argument("--lr", type=float, default=1.0, help="times the run's lr")
    c.add_argument("--margin", type=float, default=6.0)
    c.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "gain":
        gain(args.runs)
    else:
        commit(args.run, args.loss, args.lr, args.margin, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
