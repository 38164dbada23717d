"""What a loader's CPU and disk cost, this tree against a git revision (its masklab/stream.py loaded beside this
one), alternating so that both see the same machine at the same time.

    python tools/loader_cost.py [--before REV] [--folder data/cifar10/train] [--size 32] [--rounds 5]
    python tools/loader_cost.py --index [--before REV] [--folder data/cifar10] [--rounds 2]

Default: a loader worker's CPU for one training image, `Images.batch` (read, decode, stack, crop and flip) timed
in this process, no DataLoader, on the folder's first 6,400 .jpg files in sorted order; each version's CPU
microseconds an image, the median over rounds and every round (after a warm-up round). --index: the seconds
index_folder takes over the folder's train/ and test/ (CIFAR-10's 60,000 files), with the file cache emptied
first (the kernel's page cache, where this process may: root on Linux; said when it may not) and again warm.
The folder is CIFAR-10 from ../shared/data's tarball unpacked (README, "Data").
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


def index_seconds(module, root: Path) -> float:
    """Wall seconds of module.index_folder over root/train and root/test, classes from root/train."""
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    tic = time.perf_counter()
    for split in ("train", "test"):
        module.index_folder(root / split, classes)
    return time.perf_counter() - tic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="354990a", help="the git revision to compare with (default: the last "
                        "commit before a batch's JPEGs were decoded in one call)")
    parser.add_argument("--folder", type=Path, default=ROOT / "data" / "cifar10" / "train")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=6400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--index", action="store_true", help="time index_folder, cold and warm, instead")
    args = parser.parse_args()
    if args.index:
        return index_main(args)
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


def index_main(args) -> int:
    from masklab.bench_loader import drop_file_cache
    root = args.folder.parent if args.folder.name in ("train", "test") else args.folder
    with tempfile.TemporaryDirectory() as tmp:
        versions = {args.before: stream_at(args.before, Path(tmp)), "this tree": current}
        times = {name: {"cold": [], "warm": []} for name in versions}
        dropped = True
        for _ in range(args.rounds):
            for name, module in versions.items():
                dropped = drop_file_cache() and dropped
                times[name]["cold"].append(index_seconds(module, root))
                times[name]["warm"].append(index_seconds(module, root))
    if not dropped:
        print("could not empty the file cache (not root?): the 'cold' runs read a cache as found")
    for name, t in times.items():
        print(f"{name}: cold {statistics.median(t['cold']):.2f} s, warm {statistics.median(t['warm']):.2f} s "
              f"(rounds: {', '.join(f'{c:.2f}/{w:.2f}' for c, w in zip(t['cold'], t['warm']))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
