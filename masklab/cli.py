"""python -m masklab train | eval | mask: the command line over the library.

User mistakes (a bad flag, file or checkpoint) end in one line on stderr and exit status 2, no traceback.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .config import CHECKPOINTS, DEFAULT_PRESET, FIELD_NAMES, HELP, PRESETS, Config, ConfigError, preset

ABOUT = """\
Hard (0/1), sparse attention masks trained by gradient descent: the classifier only sees image * mask.

  L = CE + beta * L_mask(m; alpha, lam) + multiplier * (area - target) + tv * TV(m)

  alpha  (seed loss) sparsity pressure in [0, 1]: L_mask = alpha*log(m+lam) + (1-alpha)*log(1-m+lam);
         above 0.5 the well at m = 0 is deeper than the one at m = 1.
  beta   weight of the mask penalty; cross-entropy has weight 1.
  lam    lambda, a small constant inside the logs for numerical stability; the loss's slope at m = 0 is
         about alpha / lam, which is why the seed setup collapses to an all-zero mask.
  The target-area constraint (--constraint true) replaces a hand-tuned beta with a multiplier learned by
  dual ascent, while the target falls from 1.0 to --area_target over the first --anneal_frac of training.
"""

IMAGE_HELP = ("Images: PNG, JPEG (EXIF orientation honoured), GIF (first frame), BMP, TIFF, WebP, PPM; at most "
              "40 megapixels and 50 MB; converted to the model's channels (alpha on black) and resized to fit "
              "its training size unless --keep-size.")


class UserError(Exception):
    """Printed as one line, exit status 2."""


def check_options(args) -> None:
    """The mask options a config does not hold: a threshold strictly inside (0, 1), at least one prediction."""
    if not 0 < args.threshold < 1:                      # also refuses NaN
        raise UserError(f"--threshold must be in (0, 1), got {args.threshold}")
    if getattr(args, "topk", 1) < 1:
        raise UserError(f"--topk must be >= 1, got {args.topk}")


class Parser(argparse.ArgumentParser):
    """argparse (Python < 3.13) reads '-1e-05' after a flag as an option, not a value: str(float) writes small
    negative values so (an init_bias, say), and the URL and config.json round trips need them as values. No
    option of MaskLab looks like a number, so every number-shaped token is a value (subparsers inherit this)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.I)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m masklab", description=ABOUT, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,mask,export,bench,sweep}")

    train = sub.add_parser("train", help="train one run and write its run folder",
                           description=ABOUT, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                       help=f"method preset, applied before the flags below (default {DEFAULT_PRESET})")
    train.add_argument("--out", type=Path, help="run folder (default checkpoints/<run-id>)")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    fields = train.add_argument_group("config fields (same names in config.json and the app's URL)")
    for name in FIELD_NAMES:
        fields.add_argument(f"--{name}", metavar="V", help=HELP[name].replace("%", "%%"))

    ev = sub.add_parser("eval", help="test-set metrics of a run folder")
    ev.add_argument("--checkpoint", type=Path, required=True, help="run folder")
    ev.add_argument("--data", help="evaluate on another dataset spec (default: the run's own)")
    ev.add_argument("--threshold", type=float, default=0.5, help="hard mask = m_eval > threshold")
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    mask = sub.add_parser("mask", help="mask images with a checkpoint: PNGs out, predictions as JSON lines",
                          epilog=IMAGE_HELP)
    mask.add_argument("--checkpoint", type=Path, required=True, help="run folder")
    mask.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    mask.add_argument("--out", type=Path, default=Path("masks"), help="folder for the PNGs (default masks/)")
    mask.add_argument("--threshold", type=float, default=0.5, help="hard mask = m_eval > threshold")
    mask.add_argument("--keep-size", action="store_true", help="do not resize to the training size")
    mask.add_argument("--topk", type=int, default=3, help="predictions to print per image")
    export = sub.add_parser("export", help="the attention branch + gate of a run, for inference without MaskLab")
    export.add_argument("--checkpoint", type=Path, required=True, help="run folder")
    export.add_argument("--format", default="torchscript",      # checked by masklab.export (FORMATS), once
                        help="torchscript (torch.jit.load), export (torch.export.load) or onnx (needs "
                             "requirements-export.txt)")
    export.add_argument("--out", type=Path, help="file to write (default RUN/mask.<format suffix>)")
    bench = sub.add_parser("bench", help="the method table: every preset with N seeds on cluttered-digits")
    bench.add_argument("--quick", action="store_true", help="few steps, for a smoke test (about 2 minutes)")
    bench.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5; 3 with --front)")
    bench.add_argument("--methods", nargs="+", choices=list(PRESETS), help="presets to run (default all)")
    bench.add_argument("--out", type=Path, default=Path("bench"), help="output folder (default bench/)")
    bench.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    bench.add_argument("--resume", action="store_true",
                       help="keep finished run folders under OUT/runs with the same config (an interrupted run)")
    bench.add_argument("--keep-others", action="store_true",
                       help="with --methods: keep the other methods' rows of OUT/results.csv (their presets unchanged)")
    bench.add_argument("--report", action="store_true",
                       help="only write RESULTS.md and the plots again from OUT/results.csv and OUT/runs (no training)")
    bench.add_argument("--front", action="store_true",
                       help="only the accuracy-vs-area front: the default at area targets 0.02-0.11 and the oracles, "
                            "--seeds seeds each (default 3 here): writes OUT/front.csv and OUT/front.png")
    bench.add_argument("--datasets", action="store_true",
                       help="only the default and the unmasked classifier on shapes, harder digits (64 px, "
                            "8 fragments; with oracle-ink) and CIFAR-10 (from ../shared/data when present): writes "
                            "OUT/datasets.csv and OUT/DATASETS.md")
    bench.add_argument("--backbones", action="store_true",
                       help="only time the default's step with each classifier backbone (small, resnet18) over the "
                            "unmasked small CNN's: writes OUT/backbones.json, which RESULTS.md lists")
    bench.add_argument("--throughput", action="store_true",
                       help="only time the default preset on this machine's best device (a GPU where there is "
                            "one): writes OUT/throughput-<device>.json, which RESULTS.md lists")
    bench.add_argument("--loader", action="store_true",
                       help="only measure training from an image folder (default: all 60,000 CIFAR-10 JPEGs from "
                            "../shared/data): seconds to the first step, peak memory, images/s streamed over in "
                            "memory, at 32 and 128 px: writes OUT/loading.json, which RESULTS.md lists")
    bench.add_argument("--folder", type=Path, help="with --loader: the image folder to measure")
    bench.add_argument("--workers", type=int, default=1,
                       help="runs trained side by side, each in its own process with --threads threads (default: "
                            "its share of the cores); default 1, one after another")
    bench.add_argument("--preset", choices=list(PRESETS),
                       help=f"with --front or --datasets: the method to run (default {DEFAULT_PRESET}; an earlier "
                            "default's preset regenerates the tables it made)")

    sweep = sub.add_parser("sweep", help="a grid / random search of trials on Ray Tune (or sequentially)",
                           epilog=SWEEP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="base method preset")
    sweep.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                       help="a grid axis, e.g. alpha=0.5,0.7,0.9 (repeatable; trials = product of the axes)")
    sweep.add_argument("--random", action="append", default=[], metavar="FIELD=DIST:ARGS",
                       help="a random axis: uniform:LO:HI, loguniform:LO:HI or choice:A,B (drawn per sample)")
    sweep.add_argument("--set", action="append", default=[], metavar="FIELD=V",
                       help="fix a config field for every trial, e.g. steps=600 (repeatable)")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per grid point (default 1)")
    sweep.add_argument("--samples", type=int, default=1, help="repeat the grid K times with fresh random draws")
    sweep.add_argument("--address", help="Ray cluster address, e.g. ray://HOST:10001 (default: a local instance)")
    sweep.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs (torch threads) per trial (default 1)")
    sweep.add_argument("--gpus-per-trial", type=float, default=0, help="GPUs per trial (default 0)")
    sweep.add_argument("--backend", choices=["ray", "sequential"], default="ray",
                       help="ray (default) or sequential: the same trials one after another, no Ray")
    sweep.add_argument("--no-early-stop", action="store_true", help="run collapsed trials to the end")
    sweep.add_argument("--name", help="sweep name (default <time>-<preset>); trials are <name>-tNNN")
    sweep.add_argument("--out", type=Path, help="sweep folder (default sweeps/<name>)")
    sweep.add_argument("--root", type=Path, default=CHECKPOINTS, help="where trial run folders go")
    return parser


SWEEP_HELP = """\
Every trial is a normal run folder in --root (open it in the app's Runs / Inspect pages); the sweep folder
gets sweep.json, sweep.csv (config fields + final metrics per trial) and SWEEP.md. A trial whose mask kept
nothing for the last 10% of its steps is stopped early (status stopped, reason says so).

Examples:
  python -m masklab sweep --preset seed --grid alpha=0.5,0.7,0.9 --grid beta=0.01,0.1,1 --set steps=600
  python -m masklab sweep --grid area_target=0.02,0.04,0.08 --seeds 3 --address ray://head:10001 --gpus-per-trial 1
"""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .data import DataError
    from .export import ExportError
    from .images import ImageError
    try:
        return {"train": cmd_train, "eval": cmd_eval, "mask": cmd_mask, "export": cmd_export, "bench": cmd_bench,
                "sweep": cmd_sweep}[args.command](args)
    except (UserError, ConfigError, DataError, CheckpointError, ImageError, ExportError) as e:
        print(f"masklab: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if "device" in str(e):
            print(f"masklab: error: {e}", file=sys.stderr)
            return 2
        raise


def cmd_export(args) -> int:
    from .export import export
    path = export(args.checkpoint, args.format, args.out)
    print(f"wrote {path}: x (B, C, H, W) in [0, 1] -> (hard mask, m_eval), each (B, 1, H, W)")
    return 0


def cmd_sweep(args) -> int:
    from .sweep import make_plan, parse_sets, run_sweep
    plan = make_plan(args.preset, args.grid, args.random, args.seeds, args.samples, parse_sets(args.set), args.name)
    out = args.out or Path("sweeps") / plan.name
    print(f"sweep {plan.name}: {len(plan.trials)} trials of {args.preset} over "
          f"{', '.join(plan.swept) or 'nothing (one config)'} on {args.backend}"
          + (f" at {args.address}" if args.address else ""), flush=True)

    def on_trial(i, row):
        m = " ".join(f"{k} {row[k]:.3f}" for k in ("accuracy_hard", "area") if isinstance(row.get(k), float))
        print(f"  trial {i}: {row['status']}{' (stopped early)' if row.get('stopped_early') else ''} {m}", flush=True)

    rows = run_sweep(plan, args.root, out, args.backend, args.address, args.cpus_per_trial,
                     args.gpus_per_trial, not args.no_early_stop, on_trial)
    print(f"wrote {out / 'sweep.csv'} ({len(rows)} trials) and {out / 'SWEEP.md'}")
    return 0 if len(rows) == len(plan.trials) else 1


def config_from_args(args) -> Config:
    flags = {name: getattr(args, name) for name in FIELD_NAMES if getattr(args, name) is not None}
    return Config.from_query(flags, base=preset(args.preset))


def cmd_train(args) -> int:
    import torch
    from .runs import fit
    cfg = config_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    bar = None if args.quiet else Progress(cfg.steps)
    run_dir, summary = fit(cfg, out=args.out, label=args.preset, on_record=bar, on_index=bar and bar.index)
    if bar:
        bar.close()
    m = summary["metrics"]
    print(f"{summary['status']}: {run_dir}  ({summary['steps_done']} steps, {summary['train_s']:.1f} s training)")
    if summary["reason"]:
        print(f"reason: {summary['reason']}")
    if m:
        print(format_metrics(m))
    return 0 if summary["status"] == "done" else 1


def cmd_eval(args) -> int:
    from .checkpoint import load_run
    from .data import open_data
    from .metrics import clean, evaluate
    from .device import pick_device
    check_options(args)
    device = pick_device(args.device)
    cfg, model, _ = load_run(args.checkpoint, device)
    if args.data:
        cfg = cfg.replace(data=args.data)
    data = open_data(cfg, device)
    if (data.channels, data.classes) != (model.channels, model.classes):
        raise UserError(f"{cfg.data} has {data.channels} channels and {data.classes} classes; the model "
                        f"expects {model.channels} and {model.classes}")
    metrics = clean(evaluate(model, data.test, cfg.temperature_end, args.threshold))
    print(json.dumps(metrics) if args.json else format_metrics(metrics))
    return 0


def cmd_mask(args) -> int:
    from .checkpoint import load_run
    from .images import ImageError, open_image, overlay, run_mask, to_tensor, to_uint8
    from PIL import Image
    check_options(args)
    cfg, model, summary = load_run(args.checkpoint)
    names = summary["data"].get("class_names") or [str(i) for i in range(model.classes)]
    size = None if args.keep_size else tuple(summary["data"].get("input_size") or ()) or None
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in args.images:
        try:
            x = to_tensor(open_image(path, name=str(path)), model.channels, size)
        except ImageError as e:
            print(f"masklab: error: {e}", file=sys.stderr)
            failures += 1
            continue
        r = run_mask(model, x, cfg.temperature_end, args.threshold)
        stem = args.out / path.stem
        files = {"mask": f"{stem}.mask.png", "overlay": f"{stem}.overlay.png", "masked": f"{stem}.masked.png"}
        Image.fromarray(to_uint8(r.hard)).save(files["mask"])
        overlay(r.x, r.hard).save(files["overlay"])
        Image.fromarray(to_uint8(r.x * r.hard)).save(files["masked"])
        top = r.top(names, args.topk)
        print(json.dumps({"image": str(path), "prediction": top[0]["class"], "probability": top[0]["probability"],
                          "top": top, "area": round(r.area, 4), "size": list(r.x.shape[-2:])[::-1],
                          "files": files}), flush=True)
    return 1 if failures else 0


def cmd_bench(args) -> int:
    import torch
    from .bench import run_bench
    if args.seeds is not None and args.seeds < 1:
        raise UserError("--seeds must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.workers != 1 and (args.backbones or args.throughput or args.loader or args.report):
        raise UserError("--workers goes with training runs: the method table, --front or --datasets")
    if args.backbones:
        from .bench import measure_backbones
        print(f"wrote {measure_backbones(args.out, log=lambda s: print(s, flush=True))}")
        return 0
    if args.throughput:
        from .bench import measure_throughput
        path = measure_throughput(args.out, log=lambda s: print(s, flush=True))
        print(f"wrote {path}")
        return 0
    if args.loader:
        from .bench_data import cifar_folder
        from .bench_loader import measure_loading
        folder = args.folder or cifar_folder(5000, 1000)
        print(f"wrote {measure_loading(folder, args.out, log=lambda s: print(s, flush=True))}")
        return 0
    if args.report:
        from .bench import report
        report(args.out, args.seeds or 5)
        print(f"wrote {args.out / 'RESULTS.md'} and PNGs")
        return 0
    if args.preset and not (args.datasets or args.front):
        raise UserError("--preset goes with --front or --datasets (the benchmark's methods are --methods)")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, not {args.workers}")
    method = args.preset or DEFAULT_PRESET
    if args.datasets:
        from .bench_data import run_datasets
        run_datasets(args.seeds or 5, out=args.out, log=lambda s: print(s, flush=True), resume=args.resume,
                     method=method, workers=args.workers, threads=args.threads)
        print(f"wrote {args.out / 'DATASETS.md'} and datasets.csv")
        return 0
    if args.front:
        from .bench_data import run_front
        run_front(args.seeds or 3, out=args.out, log=lambda s: print(s, flush=True), resume=args.resume,
                  method=method, workers=args.workers, threads=args.threads)
        print(f"wrote {args.out / 'front.csv'} and front.png")
        return 0
    run_bench(args.methods, args.seeds or 5, args.quick, args.out, log=lambda s: print(s, flush=True), resume=args.resume,
              keep_others=args.keep_others, workers=args.workers, threads=args.threads)
    print(f"wrote {args.out / 'RESULTS.md'}, results.csv and PNGs")
    return 0


def format_metrics(m: dict) -> str:
    show = lambda v: "n/a" if v is None else (str(v) if isinstance(v, bool) else f"{v:.4f}")
    return "\n".join(f"  {k:<17} {show(v)}" for k, v in m.items())


class Progress:
    """Training progress on stderr, drawn by tqdm: a live bar on a terminal; elsewhere (a log file, a captured
    stream) the same meter as a plain line per 10% of the steps, without carriage returns."""

    def __init__(self, total: int):
        from tqdm import tqdm
        self.total, self.tty, self.last_decile, self.indexing = total, sys.stderr.isatty(), -1, None
        self.bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True, disable=not self.tty)

    def __call__(self, r) -> None:
        stats = f"loss {r.loss:.3f}  acc {r.accuracy:.2f}  area {r.area:.3f}  target {r.target:.3f}"
        if self.tty:
            self.bar.set_postfix_str(stats, refresh=False)
            self.bar.update(r.step - self.bar.n)
        elif int(10 * r.step / self.total) > self.last_decile:
            self.last_decile = int(10 * r.step / self.total)
            line = self.bar.format_meter(r.step, self.total, r.seconds, unit="step", postfix=stats, ascii=True)
            print(line, file=sys.stderr, flush=True)

    def index(self, done: int, total: int) -> None:
        """A folder's files being checked before training: a bar of its own on a terminal, one line elsewhere."""
        from tqdm import tqdm
        if self.tty:
            if self.indexing is None:
                self.indexing = tqdm(total=total, desc="indexing files", unit="file", file=sys.stderr, leave=False)
            self.indexing.update(done - self.indexing.n)
            if done == total:
                self.indexing.close()
        elif done == total:
            print(f"indexed {total} files", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()
