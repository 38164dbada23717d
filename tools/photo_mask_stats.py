"""Where the photo demo's mask is not yet 0/1, and what its stray top-left block is worth.

    python tools/photo_mask_stats.py [--checkpoint checkpoints/demo-photos] [--folder data/cifar10] [--photos 3000]
                                     [--train]

On the first `--photos` test photos of the checkpoint's own (seeded) test set: the share of mask values not within
0.01 of 0 or 1 (1 - bimodality) and how many of those lie on the hard mask's edge (a pixel with a 4-neighbour on the
other side); the share of photos whose mask keeps the top-left 2x2 block; and the hard-mask accuracy with that
block, and with it taken out of every mask (does the classifier read anything from it?). `--train`: the same on
`--photos` training photos (a seeded draw, no augmentation) instead: is a mask value left between 0 and 1 a failure
to generalise, or there on the photos the branch learned from too? The folder is CIFAR-10 as
an image folder (`tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C data`).
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from masklab.checkpoint import load_run  # noqa: E402
from masklab.data import open_data  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/demo-photos")
    ap.add_argument("--folder", default="data/cifar10")
    ap.add_argument("--photos", type=int, default=3000)
    ap.add_argument("--train", action="store_true", help="training photos instead of test photos")
    args = ap.parse_args(argv)
    cfg, model, _ = load_run(args.checkpoint)
    data = open_data(cfg.replace(data=f"folder:{args.folder}", test_size=args.photos, augment=False), "cpu")
    x, y = data.batch(args.photos, torch.Generator().manual_seed(0)) if args.train else (data.test.x, data.test.y)
    model.eval()
    with torch.no_grad():
        m = model.gate_relaxed(x, cfg.temperature_end)
        hard = (m > 0.5).float()
        edges = F.pad(hard, (1, 1, 1, 1), mode="replicate")
        neighbours = torch.stack([edges[..., 1:-1, :-2], edges[..., 1:-1, 2:], edges[..., :-2, 1:-1],
                                  edges[..., 2:, 1:-1]])
        edge = (neighbours != hard).any(0)
        mid = (m > 0.01) & (m < 0.99)
        corner = hard[..., :2, :2].amax((-1, -2)).flatten().bool()
        without = hard.clone()
        without[..., :2, :2] = 0
        accuracy = lambda mask: (model.classifier(x * mask)[0].argmax(1) == y).float().mean().item()
        print(f"{len(y)} {'training' if args.train else 'test'} photos: {mid.float().mean().item():.4f} of mask "
              f"values not 0/1 (bimodality "
              f"{1 - mid.float().mean().item():.4f}), {(mid & edge).sum().item() / max(1, mid.sum().item()):.0%} of "
              f"them on the hard mask's edge (edge pixels: {edge.float().mean().item():.0%} of all)")
        print(f"top-left 2x2 block kept in {corner.float().mean().item():.0%} of the photos; hard-mask accuracy "
              f"{accuracy(hard):.4f} with it, {accuracy(without):.4f} with it taken out "
              f"(area {hard.mean().item():.4f} -> {without.mean().item():.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
