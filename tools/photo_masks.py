"""The README's photo-demo figure: the first test photo of each CIFAR-10 class, the mask checkpoints/demo-photos
keeps of it, and what its classifier sees, with the prediction above each column.

    python tools/photo_masks.py [--checkpoint checkpoints/demo-photos] [--folder data/cifar10] [--out docs/photo-masks.png]

The folder is CIFAR-10 as an image folder (`tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C data`); only the
computed figure is committed, never the photos themselves.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from masklab import plots  # noqa: E402
from masklab.checkpoint import load_run  # noqa: E402
from masklab.images import open_image, overlay, run_mask, to_tensor, to_uint8  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/demo-photos")
    ap.add_argument("--folder", default="data/cifar10")
    ap.add_argument("--out", default="docs/photo-masks.png")
    args = ap.parse_args(argv)
    cfg, model, summary = load_run(args.checkpoint)
    names = summary["data"]["class_names"]
    size = tuple(summary["data"]["input_size"])
    photos, masks, seen, titles = [], [], [], []
    for name in names:
        path = min((Path(args.folder) / "test" / name).iterdir())            # the class's first test photo
        r = run_mask(model, to_tensor(open_image(path), model.channels, size), cfg.temperature_end)
        guess = names[int(r.probs.argmax())]
        photos.append(to_uint8(r.x))
        masks.append(overlay(r.x, r.hard))
        seen.append(to_uint8(r.x * r.hard))
        titles.append(f"{name}\n→ {guess}" + ("" if guess == name else " ✗"))
    fig = plots.image_grid([photos, masks, seen], ["photo", "mask (red)", "classifier sees"], cell=0.9,
                           titles=titles)
    print(plots.save(fig, Path(args.out)))
    return 0


if __name__ == "__main__":
    with torch.no_grad():
        sys.exit(main())
