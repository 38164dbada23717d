"""`python -m masklab bench --loader`: what training from an image folder costs before and during training.

For each image size, a real `python -m masklab train` on the folder, watched from outside: seconds from the
command's start to its first training step (its first progress line), and the peak memory of the process and
its loader workers together (the sum of their proportional set sizes, so shared pages count once). Then, side
by side in this process, training images/s streamed from the files (no cache: every image decoded, the worst
case) over the same images held in memory as tensors (the path that loads everything first). Linux only
(/proc); the CIFAR-10 folder comes from ../shared/data.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

SIZES = (32, 128)


def _tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _pss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total / 1024


def drop_file_cache() -> bool:
    """Empty the kernel's page cache (Linux, as root: /proc/sys/vm/drop_caches) so that the next run reads its
    files from the disk, as a first run after a reboot does; False where this process may not."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1\n")       # 1: the page cache only
        return True
    except OSError:
        return False


def first_step_and_memory(data: str, size: int, steps: int = 20) -> dict:
    """Run `masklab train` on `data` at `size` px for `steps` steps: seconds to its first step, total seconds and
    the peak memory (MB) of it and its workers. `shapes` is generated at `size` (the model's own footprint)."""
    sized = ["--canvas", str(size)] if data == "shapes" else ["--image_size", str(size)]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "masklab", "train", "--data", data, *sized, "--steps",
               str(steps), "--log_every", "1", "--device", "cpu", "--out", str(Path(tmp) / "run")]
        start, seen = time.perf_counter(), {}
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def read():                                      # the progress line of step 1 says "loss ..."
            for line in child.stderr:
                if "loss " in line and "first" not in seen:
                    seen["first"] = time.perf_counter() - start
                seen["tail"] = (seen.get("tail", "") + line)[-2000:]

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        peak = 0.0
        while child.poll() is None:
            peak = max(peak, _pss_mb(_tree(child.pid)))
            time.sleep(0.05)
        reader.join(timeout=5)
        first, tail = seen.get("first"), seen.get("tail", "")
        if child.returncode:
            raise RuntimeError(f"masklab train failed ({child.returncode}): {tail[-2000:]}")
        return {"first_step_s": round(first, 2) if first else None, "total_s": round(time.perf_counter() - start, 2),
                "peak_mb": round(peak)}


def streamed_over_in_memory(folder: Path, size: int, images: int = 10_000, steps: int = 150, rounds: int = 3,
                            log=print) -> dict:
    """Training images/s of the default on `images` training files: streamed and decoded every time (the first
    epoch), streamed from the filled cache (later epochs), and the same images decoded once into memory
    first; alternating `rounds` times after a warm-up round (which fills the cache); medians and ratios."""
    from .bench import train_seconds
    from .config import DEFAULT_PRESET, preset
    from .data import Dataset, TestSet, image_folder
    from .stream import ArrayImages, FileImages, Images, Stream, decode_all
    cfg = preset(DEFAULT_PRESET, data=f"folder:{folder}", image_size=size, device="cpu")
    files = image_folder(str(folder), cfg).sampler.images
    paths, labels = list(files.source.paths[:images]), files.labels[:images]
    source = FileImages(paths, (size, size))
    tic = time.perf_counter()
    x, kept, _ = decode_all(Images(source, labels), list(range(len(paths))))
    log(f"  {size} px: {len(kept)} images decoded into memory in {time.perf_counter() - tic:.1f} s")
    variants = {"decoded": Images(source, labels, cache=False, augment=True, seed=cfg.seed),
                "cached": Images(source, labels, cache=True, augment=True, seed=cfg.seed),
                "in_memory": Images(ArrayImages(x, (size, size)), labels[kept], augment=True, seed=cfg.seed)}
    empty = TestSet(torch.zeros(0, 3, size, size), torch.zeros(0, dtype=torch.long))
    sets = {name: Dataset(name, [str(i) for i in range(10)], 3, (size, size), empty,
                          Stream(images, cfg.seed, cfg.workers, name)) for name, images in variants.items()}
    warm = -(-len(paths) // cfg.batch_size)                # one epoch: fills the cache
    rates = {name: [] for name in sets}
    for r in range(rounds + 1):
        for name, data in sets.items():
            seconds = train_seconds(cfg.replace(steps=steps if r else (warm if name == "cached" else 10)), data, "cpu")
            if r:
                rates[name].append(steps * cfg.batch_size / seconds)
    for data in sets.values():
        data.close()
    result = {name: round(statistics.median(v), 1) for name, v in rates.items()}
    return result | {"ratio_decoded": round(result["decoded"] / result["in_memory"], 3),
                     "ratio_cached": round(result["cached"] / result["in_memory"], 3)}


def measure_loading(folder: Path, out: Path = Path("bench"), log=print, sizes=SIZES, images: int = 10_000,
                    steps: int = 150, cold: bool = True, train_steps: int = 20, rounds: int = 3) -> Path:
    """Both measurements at each size, written to out/loading.json (RESULTS.md lists it); the throughput is
    timed over `steps` steps at 32 px, fewer at larger sizes (the same pixels; at least 20, or `steps` if fewer).
    `cold`: also time a first run with a cold file cache: emptied first where this process may (root on Linux;
    cold_cache says "dropped"), else as found ("as found": warm if the folder was read lately); False: only the
    warm run, first_step_cold_s is then None. `train_steps`: the steps of each watched `masklab train` (its peak
    memory is a steady step's); `rounds`: of the side-by-side throughput (medians over them)."""
    from .device import device_name, usable_cpus
    from .stream import loader_workers
    result = {"folder_images": None, "sizes": {}, "device": device_name(torch.device("cpu")),
              "workers": loader_workers(), "cores": usable_cpus(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d"), "command": "python -m masklab bench --loader"}
    for size in sizes:
        if cold:
            result["cold_cache"] = "dropped" if drop_file_cache() else "as found"
        first = first_step_and_memory(f"folder:{folder}", size, train_steps) if cold else None
        warm = first_step_and_memory(f"folder:{folder}", size, train_steps)
        model = first_step_and_memory("shapes", size, train_steps)      # no files: the model's own memory
        peak = max(warm["peak_mb"], first["peak_mb"] if first else 0)
        log(f"{size} px: first step {warm['first_step_s']} s after the command's start (cold cache, "
            f"{result.get('cold_cache', 'not timed')}: {first['first_step_s'] if first else '-'} s), peak memory "
            f"{peak} MB (the same run on generated images: {model['peak_mb']} MB)")
        rates = streamed_over_in_memory(folder, size, images, max(min(20, steps), steps * 32 ** 2 // size ** 2),
                                        rounds, log=log)
        log(f"{size} px: images/s streamed {rates['decoded']:.0f} while decoding ({rates['ratio_decoded']:.2f}x), "
            f"{rates['cached']:.0f} from the cache ({rates['ratio_cached']:.2f}x), {rates['in_memory']:.0f} in memory")
        result["sizes"][f"{size}px"] = {"first_step_s": warm["first_step_s"],
                                        "first_step_cold_s": first["first_step_s"] if first else None,
                                        "peak_mb": peak,
                                        "generated_peak_mb": model["peak_mb"], "images_per_s": rates}
    result["folder_images"] = sum(1 for _ in folder.rglob("*.jpg"))
    path = Path(out) / "loading.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def loading_line(t: dict, name: str = "loading.json") -> str:
    """The RESULTS.md line of a loading.json."""
    cold = lambda v: (f" ({v['first_step_cold_s']} s with the file cache emptied first)"
                      if t.get("cold_cache") == "dropped" and v.get("first_step_cold_s") else "")
    parts = [f"{size}: first step {v['first_step_s']} s after the command's start{cold(v)}, peak {v['peak_mb']} MB "
             f"(on generated images of that size {v.get('generated_peak_mb', '?')} MB), "
             f"{v['images_per_s']['ratio_decoded']:.2f}x the in-memory images/s while decoding, "
             f"{v['images_per_s']['ratio_cached']:.2f}x from the cache" for size, v in t["sizes"].items()]
    return (f"- training from an image folder of {t['folder_images']:,} JPEGs (CIFAR-10): " + "; ".join(parts)
            + f". {t['workers']} loader worker(s) on {t['cores']} cores. Measured {t['date']} on {t['device']}, "
              f"by `{t['command']}` ({name}).")
