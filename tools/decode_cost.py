"""What a loader worker's CPU spends on one training image from an image folder: `Images.batch` (read, decode,
stack, crop and flip) timed in this process, no DataLoader, alternating between this tree's masklab.stream and the
one of a git revision (its stream.py loaded beside this one), so both see the same machine at the same time.

    python tools/decode_cost.py [--before REV] [--folder data/cifar10/train] [--size 32] [--rounds 5]

Prints each version's CPU microseconds an image, the median over rounds and every round (after a
warm-up round). The folder is the
CIFAR-10 JPEGs (../shared/data's tarball unpacked, README "Data"); its first 6,400 files in sorted order.
"""
import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import masklab.stream as current  # noqa: E402


def stream_at(rev: str, tmp: Path):
    """masklab.stream as it was at git revision `rev`, imported as a module of the masklab package."""
    source = subprocess.run(["git", "show", f"{rev}:masklab/stream.py"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    path = tmp / "stream_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("masklab.stream_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cost(module, paths: list[str], size: int, batch: int = 64) -> float:
    """CPU microseconds an image of `Images.batch` over `paths`, augmented, no cache."""
    images = module.Images(module.FileImages(paths, (size, size)), torch.zeros(len(paths), dtype=torch.long),
                           augment=True)
    tic = time.process_time()
    for start in range(0, len(paths) - batch + 1, batch):
        images.batch((start, list(range(start, start + batch))))
    return (time.process_time() - tic) / (len(paths) // batch * batch) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="354990a", help="the git revision to compare with (default: the last "
                        "commit before a batch's JPEGs were decoded in one call)")
    parser.add_argument("--folder", type=Path, default=ROOT / "data" / "cifar10" / "train")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=6400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    paths = sorted(str(p) for p in args.folder.rglob("*.jpg"))[:args.images]
    if not paths:
        parser.error(f"no .jpg files under {args.folder}")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        versions = {args.before: stream_at(args.before, Path(tmp)), "this tree": current}
        times = {name: [] for name in versions}
        for r in range(args.rounds + 1):                 # round 0 warms the file cache and is not counted
            for name, module in versions.items():
                t = cost(module, paths, args.size)
                if r:
                    times[name].append(t)
    for name, t in times.items():
        print(f"{name}: {statistics.median(t):.0f} us an image (rounds: {', '.join(f'{x:.0f}' for x in t)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
