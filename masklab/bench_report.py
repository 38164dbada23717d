"""RESULTS.md of the benchmark: the method table (mean +- std over seeds, gaps to the oracles), the default's
targets met or missed by how much, the machine, throughput measured elsewhere, and the ablation screens' table.
Text only: masklab.bench gathers the numbers, masklab.plots draws the figures.
"""
from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

import torch

from .config import DEFAULT_PRESET, PRESETS, preset
from .device import device_name, pick_device

TARGETS = [
    ("area", "area", "mean", lambda t: 0.05, "max"),
    ("accuracy_hard, within 0.01 of oracle-ink", "accuracy_hard", "mean", lambda t: _ref(t, "oracle-ink") - 0.01,
     "min"),
    ("accuracy_hard, above the unmasked classifier", "accuracy_hard", "mean", lambda t: _ref(t, "unmasked"), "min"),
    ("accuracy_hard spread over seeds", "accuracy_hard", "std", lambda t: 0.015, "max"),
    ("bimodality", "bimodality", "mean", lambda t: 0.995, "min"),
    ("precision_in_box", "precision_in_box", "mean", lambda t: 0.95, "min"),
    ("collapsed seeds", "collapsed", "mean", lambda t: 0, "max"),
    ("wall time, x the unmasked run's", "wall_ratio", "mean", lambda t: 1.6, "max"),
]


def _ref(table, method: str, col: str = "accuracy_hard") -> float:
    return table.get(method, {}).get(col, (math.nan, 0))[0]


def screen_table(paths) -> str:
    """A markdown table: per variant, seeds run, collapsed seeds, mean ± std of accuracy_hard over all seeds,
    and means of the rest over the seeds that did not collapse (a metric a run predates, such as contiguity, is
    averaged over the runs that have it, n/a where none has). `area` is the eval mask's; `area in training` the
    gate's expected area on the last training batch (`area_exp`): far above `area`, the training mask was mostly the
    gate's noise (a 'noise mask'). Runs that did not finish are left out; a seed run twice (a screen appended to the
    same file again) counts once, its last run."""
    import pandas as pd
    rows = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines() if line.strip()]
    cols = ["accuracy_hard", "area", "area_exp", "bimodality", "contiguity", "precision_in_box", "ink_recall"]
    frame = pd.DataFrame(rows, columns=["name", "seed", "status", "collapsed", *cols])
    frame = frame[frame["status"].fillna("done").eq("done") & frame["accuracy_hard"].notna()]
    frame = frame.drop_duplicates(["name", "seed"], keep="last")
    lines = ["| variant | seeds | collapsed | accuracy_hard (all seeds) | accuracy_hard | area | area in training | "
             "bimodality | contiguity | precision_in_box | ink_recall |", "|---" * 11 + "|"]
    for name, group in frame.groupby("name", sort=False):
        live = group.loc[~group["collapsed"].astype(bool), cols].astype(float).mean()   # NaN: no value
        acc = group["accuracy_hard"].astype(float)
        means = " | ".join("n/a" if pd.isna(live[c]) else f"{live[c]:.3f}" for c in cols)
        lines.append(f"| {name} | {len(group)} | {int(group['collapsed'].astype(bool).sum())} | "
                     f"{acc.mean():.3f} ± {_std(acc):.3f} | {means} |")
    return "\n".join(lines)


def _std(values) -> float:
    """The sample standard deviation, 0 for a single value (one seed has no spread to report)."""
    return float(values.std()) if len(values) > 1 else 0.0


# --- outputs ---------------------------------------------------------------------------------------------

def _cell(stats, col) -> str:
    if col not in stats:
        return "n/a"
    mean, std = stats[col]
    if col == "collapsed":
        return f"{int(mean)}"
    digits = 1 if col in ("wall_s", "train_s") else 3
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def results_markdown(table, quick, seeds, methods, elsewhere: list[str] = (), kept=(), screen=None) -> str:
    """The RESULTS.md text; `elsewhere`: lines from throughput files measured by other runs (throughput_files);
    `kept`: methods whose rows were kept from an earlier run (--keep-others)."""
    cols = ["accuracy_full", "accuracy_soft", "accuracy_hard", "area", "bimodality", "precision_in_box",
            "iou_box", "ink_recall", "evalx_accuracy", "collapsed", "wall_s", "step_cost_ratio"]
    device = pick_device("auto")
    command = "python -m masklab bench" + (" --quick" if quick else "") + (f" --seeds {seeds}" if seeds != 5 else "")
    if set(methods) != set(PRESETS) or kept:
        command += " --methods " + " ".join(m for m in methods if m not in kept)
    if kept:
        command += " --keep-others"
    lines = [f"# MaskLab benchmark{' (quick)' if quick else ''}", "",
             f"Regenerate with `{command}`. cluttered-digits, {seeds} seed(s) per method, mean ± std over seeds; "
             f"`collapsed` counts seeds.", "",
             *incomplete_note(table, seeds, methods),
             *([f"Rows of {', '.join(kept)} were kept from the previous results.csv (`--keep-others`): their presets "
                "did not change; their wall_s was measured in that run, on the same machine."
                + (" hard-concrete-plain's rows are those of the default until 2026-11-29 (then named "
                   "hard-concrete; the same config)." if "hard-concrete-plain" in kept else "")
                + (" hard-concrete-nov29's rows are those of the default from 2026-11-29 to 2026-12-01 (then named "
                   "hard-concrete; the same config)." if "hard-concrete-nov29" in kept else ""), ""] if kept else []),
             "| method | " + " | ".join(cols) + " | vs oracle-ink | vs oracle-box |", "|---" * (len(cols) + 3) + "|"]
    for method, stats in table.items():
        gaps = [f"{stats['accuracy_hard'][0] - _ref(table, o):+.3f}" if "accuracy_hard" in stats and o in table
                else "n/a" for o in ("oracle-ink", "oracle-box")]
        lines.append(f"| {method} | " + " | ".join([*(_cell(stats, c) for c in cols), *gaps]) + " |")
    lines += ["", "`vs oracle-*`: accuracy_hard minus that of the same classifier trained and tested on x times the "
              "digit's true ink / box (a mask that cannot be wrong).", "", *targets_section(table), "", "## Machine", "",
              f"- {platform.platform()}, Python {platform.python_version()}, torch {torch.__version__}, "
              f"{os.cpu_count()} CPU cores visible, torch threads {torch.get_num_threads()}, CPU kernels "
              f"{torch.backends.cpu.get_cpu_capability()} (the same seed can train differently on another CPU)",
              f"- device: {device}" + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
              throughput_line(table, quick, device), *elsewhere,
              "", "![accuracy vs area](pareto.png)", "", "![area curves](area_curves.png)", "", "![masks](masks.png)", "",
              *ablation_section(Path(screen) if screen else None)]
    return "\n".join(lines)


def ablation_section(path: Path | None) -> list[str]:
    """The method issue's ablation: every variant tried on the way to the default, from the screens' JSONL
    (`path`, screen `method`, and beside it mask.jsonl, screens `mask` and `mask2`, and topk.jsonl, when present)."""
    if path is None or not path.exists():
        return []
    more, topk = path.with_name("mask.jsonl"), path.with_name("topk.jsonl")
    paths = [path, *(p for p in (more, topk) if p.exists())]
    return ["## Ablation: what was tried on the way to the default", "",
            f"Each idea as a variant of the published hard-concrete method (`tools/gpu_screen.py`, screens `method`, "
            f"`mask` and `mask2`, over preset hard-concrete-plain, 1500 steps, 1 thread a run on the 2 CPU cores); "
            f"regenerate the runs with `python tools/gpu_screen.py run SCREEN {path.as_posix()} --workers 2 --device "
            f"cpu` (SCREEN method; mask, mask2 and stride1 into {more.as_posix()}; topk and topk2 into "
            f"{topk.as_posix()}) and this table with `python tools/gpu_screen.py summary "
            f"{' '.join(p.as_posix() for p in paths)}`. On the CPU a seed k here is run k of the benchmark's config. "
            "Prefixes: `shapes_` the shapes set at area_target 0.045, `cifar_..._t3` CIFAR-10 (1,000 / 200 photos a "
            "class, 32 px) at 0.3 (`_t1` at 0.1), none the digits at 0.045. `floor`: area_floor 0.5; `ft`: "
            "finetune 0.2; `norm`: mask_norm + logit_bound 8; `seen`: area_seen; `bim`: bimodal 1.0; `all`: all "
            "five (the 2026-11-29 default); `all_bil` / `bil`: all five + bilinear mask logits (preset "
            "hard-concrete-bilinear: better on the digits, but it collapsed on CIFAR-10, "
            "bench/screen/datasets-bilinear.csv); `s1w8`: mask_stride 1 with width 8 (`all_s1w8`: on the default; "
            "seeds 3-4 and the photos and shapes on 2026-11-30); `ft3`: anneal_frac 0.4 + finetune 0.3; `t048`: "
            "area_target 0.048; `tk`: preset top-k (gate top_k: every image keeps exactly the scheduled fraction, no "
            "multiplier; `tk_cifar_t1` / `t3` / `t5` at 0.1 / 0.3 / 0.5; `tk_t047` at 0.047; `tk_bil` with bilinear "
            "mask logits). Means of every column but the first accuracy are over the seeds that did not collapse.",
            "", screen_table(paths), "",
            *kind_section(path.with_name("kind.jsonl"), path.with_name("fixed-masks.jsonl"))]


def kind_section(kind: Path, fixed: Path) -> list[str]:
    """The photo issue's changes in kind (screen JSONL `kind`) and the fixed-mask references beside them."""
    if not kind.exists():
        return []
    lines = ["## Ablation: changes in kind against the photos' failure", "",
             f"Why the learned mask loses on photos, and what was tried against it: README, \"Why the photos lose\". "
             f"Runs: `python tools/gpu_screen.py run SCREEN {kind.as_posix()} --workers 2 --device cpu` for SCREEN in "
             "realx, glimpse, prior, tkprior, tkstride, evidence, evidence2, occlusion and realx_digits (3 seeds "
             "each; glimpse cut for time), then shuffle (3 seeds), shuffle_tv (2 seeds), ahead and lrdecay (3 seeds "
             "each), shadow and context (3 seeds each), context2 (the rest of five seeds, and `cifar_now_`: the "
             "default with the code of that day, on the same five seeds; `cifar_t3` is from before photos streamed), "
             "noisemask, noise, damp, damp2, entropy, cur, damp3 and damp4 (`cifar_cur_`: the default with the "
             "initial weights of today, five seeds), inside (2026-12-01, five seeds; its `nzdi` rows are "
             "hard-concrete-dec01's config), wind (`shapes_deep_d30`: that config with branch_depth 4 and damping 30; "
             "`_dl03`: with dual_lr 0.3), complement (stopped after two seeds: worse on both), sharp (three seeds) "
             "and commit (three seeds on CIFAR-10, two on shapes; the digits' five are the benchmark's hard-concrete "
             "rows; each run is the `nzdi` run of its seed until the closing phase; `commitv1`: its first version, "
             "code of 82875c3, in which the classifier trained on the copy's mask, five seeds on the digits), margin "
             "(stopped after one seed of three variants: README, \"Committing the mask\"), stride1b and stride1c "
             "(2026-12-01 evening, three seeds on the digits and CIFAR-10, `s1w16` one, `shapes_s1w8n` one: README, "
             "\"Full-resolution masks\"), stride1d and stride1e (2026-12-02: `s1w8n`, the preset hard-concrete-fine, "
             "at the photo targets 0.1 and 0.5, five seeds at each photo target, shapes seeds 1-2), stride1w4 "
             "(`s1w4`: width 4, two seeds), fineclose (`s1w8n_ft4`: hard-concrete-fine with finetune 0.4, stopped "
             "after seed 0: its mask froze at 6.5%, over the 5% bound), fineeq (`s1w8n_eq`: hard-concrete-fine "
             "with area_floor 0.95, two seeds), finedeep (`s1w8n_deep`: "
             "hard-concrete-fine with branch_depth 4, two seeds; these three: README, \"The fine preset\") and "
             "cifarbase (`cifar_unmasked`: the preset unmasked on the photos, five seeds, the photo rows' "
             "reference; seeds 0-2 are the datasets table's runs, bit for bit), distract and distract2 (`dis`: "
             "distract 1.0, another image's part pasted in and its gates pushed closed; `dis02`: distract 0.2; "
             "`dis_eq`: distract 1.0 with area_floor 0.95; stopped after one or two seeds, worse on every one: "
             "README, \"...and the mask\"), refine (`rf`: refine, a second look, the branch reading the classifier's "
             "features of x times its first hard mask; `s1w8n_rf`: hard-concrete-fine with it; two seeds, no gain: "
             "README, \"...and the mask\"), long to long4, long6 and long8 (`_s6k`: 6000 steps, four times the "
             "benchmark's; `s1w8n_s6k` five seeds, `oracle_ink_s6k` and `unmasked_s6k` their references at the same "
             "length, four seeds; `s6k` the default, `_t035` area_target 0.035, `_l0` mask_loss l0 with beta 0.5, one seed "
             "each), pieces and long7 (`_pc`: commit_pieces 0.25, the mask commit teaches cut to the pieces of at least a "
             "quarter of the image's largest; `pc` on the default), piecesbase and finebase (`base`, `s1w8n_base`: "
             "the default and the fine preset on the machine of pieces' runs, their pairs) and longcifar (the fine "
             "preset, the default and the unmasked classifier on CIFAR-10 at 6000 steps; these four: README, "
             "\"Four times the steps\"), and avg (2026-12-03, seed 0 only, stopped: `avg`, the default's "
             "`average 0.2`, now the default; `s1w8n_avg`: the fine preset with it; `unmasked_avg`, `unmasked_base`: "
             "the unmasked classifier with and without it; the benchmark's five seeds, paired with the same runs "
             "without averaging, took its place), avgphotos and avgphotosbase (CIFAR-10 at 0.3, the unmasked "
             "classifier on it, and shapes at 0.05, three seeds each, with averaging and, `_base`, the same runs "
             "without; these two: README, \"Averaging the classifier\"). Every "
             "screen before "
             "inside ran over the default of its day, now the preset hard-concrete-nov29 (`tools/gpu_screen.py` pins "
             "it); inside to sharp over hard-concrete-dec01's config, commit to finebase over hard-concrete-dec01pm's "
             "(the default until 2026-12-02), avg over today's default. "
             "`cifar_..._t3`: CIFAR-10 (1,000 / 200 photos a class, 32 px) at target 0.3 (`_t1` at 0.1, `_t5` at "
             "0.5), the default's preset; `tk_`: preset top-k; `shapes_`: the shapes set at 0.045; no prefix: the "
             "digits. `rm`: random_masks 0.25; `det`: "
             "deterministic 0.5; `gl`: glimpse; `pr`: prior 16; `s4`: mask_stride 4; `ev`: evidence 0.3; `oc`: "
             "occlusion 0.3; `shuf`: mask_upsample shuffle (on photos it learned a lattice, "
             "one pixel of every 2x2 block in every photo: not a region, see the "
             "README); `tv`: tv 0.5; `ah`: ahead 0.25, `ah5`: ahead 0.5 (that share of each batch sees the "
             "branch's mask at the final area already: README, \"The classifier, not the mask\"); `lrd`: "
             "lr_decay true; `sh`: shadow (a second classifier trained on the noise-free hard mask replaces the "
             "joint one at the end; the masks are the default's); `deep`: branch_depth 4 (a fourth conv, dilated 8: "
             "each logit sees 31 cells instead of 15); `nz`: noise_end 0.25 (the gate reads gain * l, the gain rising "
             "to 4 over the anneal: the gate noise shrinks against the logits); `d`: damping 10 (a quadratic pull "
             "c/2 (area - t)^2 beside the multipliers); `nzd`: both; `deepnzd`: both with branch_depth 4 (in "
             "these the gain multiplies the bounded logits, gain_site bounded); `nzdi`, `deepnzdi`: the same with the "
             "gain inside the bound (gain_site logits: 8 tanh(gain * l / 8)); `ent`: "
             "entropy 1.0 (the gates' Bernoulli entropy); `comp`: complement 1.0 (-log(1 - p(y)) of the classifier on "
             "what the mask drops, README \"What the mask leaves out\"); `nz10`: noise_end 0.1 (a gain of 10 by the "
             "anneal's end instead of 4); `commit`: the closing phase teaches the branch its own mask with exact 0s "
             "and 1s (README, \"Committing the mask\"; the default since); `cm`: commit_margin 6 with commit_lr 5 (a "
             "hinge past +-6 on each logit, at 5x the lr); `s1w16`: mask_stride 1 at the branch's width of 16; "
             "`s1w8_t05`: mask_stride 1 with width 8 at area_target 0.05; `s1w8n`: mask_stride 1 with width 8 on "
             "today's default (`s1w8` rows: on the 2026-11-29 default). `area in training` is the gate's "
             "expected area on the last "
             "training batch: well above `area`, the classifier trained on the gate's noise (README, \"A noise "
             "mask\"). The bimodality of the `nz` rows (nz, nzd, deepnzd, nzdi, nz10) is read at their final "
             "gain (4; nz10: 10); at gain 1 the same logits give less (README).", "",
             screen_table([kind]), ""]
    if fixed.exists():
        import pandas as pd
        frame = pd.read_json(fixed, lines=True)
        lines += [f"References (`python tools/fixed_masks.py --seeds 2`, and `--kinds lattice` for the lattice, "
                  f"{fixed.as_posix()}): the unmasked classifier trained and tested on x times a mask that is not "
                  "learned, on the same photos, steps and batches.",
                  "", "| mask | seeds | area | accuracy_hard |", "|---|---|---|---|"]
        for kind_name, group in frame.groupby("kind", sort=False):
            acc = group["accuracy_hard"]
            lines.append(f"| {kind_name} | {len(acc)} | {group['area'].iloc[0]:.3f} | {acc.mean():.3f} ± "
                         f"{_std(acc):.3f} |")
        lines.append("")
    return lines


def incomplete_note(table, seeds: int, methods) -> list[str]:
    """Says which methods have fewer seeds than asked (an interrupted run), so the table never hides it."""
    done = {m: int(table[m].get("n", (seeds, 0))[0]) if m in table else 0 for m in methods}
    short = [f"{m} {n}" for m, n in done.items() if n < seeds]
    if not short:
        return []
    return [f"**Incomplete: fewer than {seeds} seeds for** " + ", ".join(short) + " (seeds run so far; the run was "
            "interrupted). Seeds are run in order 0, 1, ... for every method in turn.", ""]


def throughput_line(table, quick: bool, device: torch.device) -> str:
    """Training images/s of the default preset, from its mean train_s, on `device`, the one the bench ran on."""
    if DEFAULT_PRESET not in table or "train_s" not in table[DEFAULT_PRESET]:
        return "- default preset throughput: not measured (the default was not in this run)"
    from .bench import QUICK                         # the protocol's constants live with the runs
    cfg = preset(DEFAULT_PRESET, **(QUICK if quick else {}))
    rate = cfg.steps * cfg.batch_size / table[DEFAULT_PRESET]["train_s"][0]
    where = device_name(device) + ("" if device.type == "cuda" else " (no CUDA GPU here)")
    return f"- default preset ({DEFAULT_PRESET}) training throughput: {rate:.0f} images/s on {where}"


def targets_section(table) -> list[str]:
    """The default's targets: met, or missed and by how much (in the metric's own units)."""
    if DEFAULT_PRESET not in table:
        return []
    default = dict(table[DEFAULT_PRESET])
    wall = table.get("unmasked", {}).get("wall_s", (math.nan, 0))[0]
    default["wall_ratio"] = (default["wall_s"][0] / wall, 0.0) if "wall_s" in default else (math.nan, 0.0)
    lines = [f"## Targets for the default ({DEFAULT_PRESET})", "", "| target | bound | measured | met |",
             "|---|---|---|---|"]
    for label, col, stat, bound_of, kind in TARGETS:
        if col not in default:
            continue
        value, bound = default[col][0 if stat == "mean" else 1], bound_of(table)
        gap = value - bound if kind == "max" else bound - value
        digits = 5 if 0 < gap < 0.001 else 3                              # a miss never shows as "by 0.000"
        text = "0 seeds" if col == "collapsed" else ("<= " if kind == "max" else ">= ") + f"{bound:.3f}"
        met = "yes" if gap <= 0 else f"**no**, by {gap:.{digits}f}" if math.isfinite(gap) else "n/a (reference row missing)"
        lines.append(f"| {label} | {text} | {value:.{digits}f} | {met} |")
    return lines
