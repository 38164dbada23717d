"""Sweeps: a grid (and random samples) of Configs, run as trials on Ray Tune or in a plain sequential loop.

Every trial is an ordinary run folder directly under the checkpoints root (so Runs and Inspect open it); the
sweep folder holds sweep.json (the plan), sweep.csv (one row per trial: its config fields and final metrics)
and SWEEP.md. Ray is optional: `pip install -r requirements-sweep.txt`; without it, `backend="sequential"`
runs the same trials in this process. A trial whose mask has collapsed to zero for a while is stopped early
(the seed loss's collapse is final: a hard-sigmoid gate that has closed gets no gradient to reopen).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable

from .config import FIELD_NAMES, Config, ConfigError, parse_value, preset
from .device import usable_cpus
from .metrics import COLLAPSE_LOW, METRIC_NAMES, pareto

RAY_HINT = "Ray is not installed: pip install -r requirements-sweep.txt (or run with --backend sequential)"
DISTRIBUTIONS = ("uniform", "loguniform", "choice")
TRIAL_COLUMNS = ("trial", "run", "status", "reason", "steps_done", "wall_s", "stopped_early")


class SweepError(ConfigError):
    """A sweep that cannot run (a bad axis, Ray missing, an empty grid); one clear line."""


@dataclass(frozen=True)
class Axis:
    """One swept field: grid values, or a random distribution sampled `samples` times."""
    name: str
    values: tuple = ()
    distribution: str | None = None
    low: float | None = None
    high: float | None = None

    def sample(self, rng: random.Random):
        if self.distribution == "choice":
            return rng.choice(self.values)
        if self.distribution == "loguniform":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)


def parse_grid(spec: str) -> Axis:
    """'alpha=0.5,0.7,0.9' -> Axis('alpha', (0.5, 0.7, 0.9)); values parsed exactly as CLI flags are."""
    name, values = _split(spec, "--grid")
    parsed = _values(name, values, spec, "--grid")
    if not parsed:
        raise SweepError(f"--grid {spec!r}: no values after '='")
    return Axis(name, parsed)


def parse_random(spec: str) -> Axis:
    """'lr=loguniform:1e-4:1e-2', 'beta=uniform:0:1' or 'gate=choice:ste,hard_concrete'."""
    name, rest = _split(spec, "--random")
    kind, _, args = rest.partition(":")
    if kind not in DISTRIBUTIONS:
        raise SweepError(f"--random {spec!r}: use one of {', '.join(DISTRIBUTIONS)} (e.g. lr=loguniform:1e-4:1e-2)")
    if kind == "choice":
        return Axis(name, _values(name, args, spec, "--random"), "choice")
    try:
        low, high = (float(v) for v in args.split(":"))
    except ValueError:
        raise SweepError(f"--random {spec!r}: expected {kind}:LOW:HIGH") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high) or (kind == "loguniform" and low <= 0):
        raise SweepError(f"--random {spec!r}: need finite LOW < HIGH" + (", LOW > 0" if kind == "loguniform" else ""))
    return Axis(name, (), kind, low, high)


def parse_sets(items: list[str], flag: str = "--set") -> dict[str, str]:
    """['steps=600', 'lr=1e-3'] -> {'steps': '600', 'lr': '1e-3'} (values parsed later, by the Config)."""
    sets = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq:
            raise SweepError(f"{flag} {item!r}: expected FIELD=VALUE")
        sets[name.strip()] = value
    return sets


def _values(name: str, text: str, spec: str, flag: str) -> tuple:
    try:
        return tuple(parse_value(name, v) for v in text.split(",") if v.strip())
    except ConfigError as e:
        raise SweepError(f"{flag} {spec!r}: {e}") from None


def _split(spec: str, flag: str) -> tuple[str, str]:
    name, eq, rest = spec.partition("=")
    name = name.strip()
    if not eq:
        raise SweepError(f"{flag} {spec!r}: expected FIELD=VALUES")
    if name not in FIELD_NAMES:
        raise SweepError(f"{flag} {spec!r}: {name!r} is not a config field")
    if name == "seed":
        raise SweepError(f"{flag} {spec!r}: use --seeds N for seeds")
    return name, rest


@dataclass
class Plan:
    """What a sweep runs: the base config, its axes and the resulting trial configs (in order)."""
    name: str
    preset: str
    base: Config
    axes: list[Axis]
    seeds: int
    samples: int
    trials: list[Config] = field(default_factory=list)

    @property
    def swept(self) -> list[str]:
        return [a.name for a in self.axes] + (["seed"] if self.seeds > 1 else [])

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "preset": self.preset, "base": json.loads(self.base.to_json()),
                           "axes": [a.__dict__ for a in self.axes], "seeds": self.seeds, "samples": self.samples,
                           "swept": self.swept, "trials": len(self.trials)}, indent=2, default=list)


def make_plan(preset_name: str, grids: list[str] = (), randoms: list[str] = (), seeds: int = 1, samples: int = 1,
              overrides: dict[str, str] | None = None, name: str | None = None, seed: int = 0) -> Plan:
    """Every trial's Config, validated before anything runs: grid x seeds, repeated `samples` times with the
    random axes drawn afresh (seeded). A value the Config refuses names its trial and field."""
    if seeds < 1 or samples < 1:
        raise SweepError("--seeds and --samples must be >= 1")
    base = Config.from_query(overrides or {}, base=preset(preset_name))
    axes = [parse_grid(g) for g in grids] + [parse_random(r) for r in randoms]
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise SweepError(f"a field is swept twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    grid = [a for a in axes if a.distribution is None]
    rand = [a for a in axes if a.distribution is not None]
    rng = random.Random(seed)
    trials = []
    for _ in range(samples):
        drawn = {a.name: a.sample(rng) for a in rand}
        for combo in product(*(a.values for a in grid)):
            for s in range(seeds):
                changes = {**dict(zip((a.name for a in grid), combo)), **drawn, "seed": base.seed + s}
                try:
                    trials.append(base.replace(**changes))
                except ConfigError as e:
                    raise SweepError(f"trial {len(trials)} ({_describe(changes)}): {e}") from None
    if not trials:
        raise SweepError("the sweep has no trials")
    if len(trials) > 10_000:
        raise SweepError(f"{len(trials)} trials: more than 10000, narrow the grid")
    name = name or f"{time.strftime('%Y%m%d-%H%M%S')}-{preset_name}"
    return Plan(name, preset_name, base, axes, seeds, samples, trials)


def _describe(changes: dict) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in changes.items())


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def trial_id(plan: Plan, index: int) -> str:
    return f"{plan.name}-t{index:03d}"


def collapsed_for_long(cfg: Config, records: list) -> bool:
    """True once the mask has kept (almost) nothing for the last 10% of training (at least 3 records) after
    the warm-up: what the early stop ends. Hard-sigmoid gates that closed never reopen."""
    if cfg.gate == "none":
        return False
    window = max(3, int(0.1 * cfg.steps / cfg.log_every))
    recent = records[-window:]
    return (len(recent) == window and recent[0].step > cfg.warmup * cfg.steps
            and all(r.area < COLLAPSE_LOW for r in recent))


def run_trial(cfg_json: str, run_dir: str, threads: int = 0, early_stop: bool = True,
              report: Callable[[dict], None] | None = None, cancel: Callable[[], bool] | None = None) -> dict:
    """One trial: fit() into run_dir, stopping early on a lasting collapse, or when cancel() (the sweep was
    stopped: the trial is saved as stopped); returns its sweep.csv row."""
    import torch

    from .runs import fit
    if threads:
        torch.set_num_threads(threads)
    cfg = Config.from_json(cfg_json)
    records, stopped = [], {"early": False}

    def on_record(r):
        records.append(r)
        if report:
            report({"step": r.step, "area": r.area, "accuracy": r.accuracy, "loss": r.loss})

    def should_stop():
        if cancel is not None and cancel():
            return "the sweep was stopped"
        stopped["early"] = early_stop and collapsed_for_long(cfg, records)
        return stopped["early"] and f"stopped early: the mask kept nothing from step {records[-1].step} on (collapsed)"

    started = time.time()
    path, summary = fit(cfg, out=Path(run_dir), on_record=on_record, should_stop=should_stop)
    return {"run": path.name, "status": summary["status"], "reason": summary["reason"] or "",
            "steps_done": summary["steps_done"], "wall_s": round(time.time() - started, 2),
            "stopped_early": stopped["early"], **{m: summary["metrics"].get(m) for m in METRIC_NAMES}}


def _ray_trainable(params: dict) -> None:
    """Ray Tune's entry point: runs one trial and reports its final row (and progress while training)."""
    from ray import tune
    row = run_trial(params["cfg"], params["run_dir"], params["threads"], params["early_stop"],
                    report=lambda m: tune.report({**m, "done": False}))
    tune.report({**{k: v for k, v in row.items() if v is not None}, "done": True})


def run_sweep(plan: Plan, root: Path, out: Path, backend: str = "ray", address: str | None = None,
              cpus_per_trial: float = 1, gpus_per_trial: float = 0, early_stop: bool = True,
              on_trial: Callable[[int, dict], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> list[dict]:
    """Run every trial of `plan`; run folders go to root/<trial id>, the sweep files to `out`. Returns the rows.

    backend 'ray': a local Ray instance (num_cpus = this machine's) or the cluster at `address`; each trial
    asks for cpus_per_trial CPUs (its torch threads) and gpus_per_trial GPUs. backend 'sequential': one trial
    after the other in this process, with every CPU. `on_trial(i, row)` is called as each trial finishes."""
    root, out = Path(root).resolve(), Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(plan.to_json() + "\n")
    rows: list[dict | None] = [None] * len(plan.trials)
    started = time.time()

    def finished(i: int, row: dict) -> None:
        rows[i] = {"trial": i, **plan.trials[i].to_dict(), **row}
        write_results(plan, [r for r in rows if r is not None], out)
        if on_trial:
            on_trial(i, rows[i])

    if backend == "sequential":
        for i, cfg in enumerate(plan.trials):
            if should_stop and should_stop():
                break
            finished(i, run_trial(cfg.to_json(), str(root / trial_id(plan, i)), 0, early_stop, cancel=should_stop))
    elif backend == "ray":
        _run_ray(plan, root, out, address, cpus_per_trial, gpus_per_trial, early_stop, finished, should_stop)
    else:
        raise SweepError(f"unknown backend {backend!r}: ray or sequential")
    done = [r for r in rows if r is not None]
    write_results(plan, done, out, wall_s=time.time() - started, backend=backend)
    return done


def start_ray(address: str | None = None):
    """Ray, imported and started (a local instance, or joined to the cluster at `address`) unless it already runs
    in this process: (ray, started_here). Whoever started it shuts it down (ray.shutdown()). SweepError where Ray
    is not installed."""
    if not address:
        # A local instance binds to the loopback address only (Ray's default on Linux is the machine's network
        # address); read by Ray when it is first imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise SweepError(RAY_HINT) from None
    import masklab

    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    package = Path(masklab.__file__).parent
    # A cluster gets the package shipped (py_modules); local workers inherit PYTHONPATH from this process, which
    # is much cheaper (measured: 4 tiny trials 13 s instead of 49 s: py_modules sets up a runtime env per worker).
    runtime_env = {"py_modules": [str(package)]} if address else {}
    if not address:
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if str(package.parent) not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([str(package.parent), *filter(None, paths)])
    if ray.is_initialized():
        return ray, False
    local = dict(num_cpus=usable_cpus(), include_dashboard=False, dashboard_host="127.0.0.1") if not address else {}
    ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, configure_logging=False,
             logging_level="ERROR", **local)
    return ray, True


def _run_ray(plan, root, out, address, cpus, gpus, early_stop, finished, should_stop) -> None:
    ray, started_here = start_ray(address)
    try:
        from ray import tune
    except ImportError:
        raise SweepError(RAY_HINT) from None
    from ._ray_hooks import ACTIVE, Collect, StopAll
    try:
        have = ray.cluster_resources()
        for kind, asked, flag in (("CPU", cpus, "--cpus-per-trial"), ("GPU", gpus, "--gpus-per-trial")):
            if asked > have.get(kind, 0):                 # Ray would wait for it forever, saying nothing
                raise SweepError(f"each trial asks for {asked:g} {kind}s but the Ray instance has "
                                 f"{have.get(kind, 0):g}: lower {flag} (or add machines to the cluster)")
        space = {"index": tune.grid_search(list(range(len(plan.trials))))}
        params = {i: {"cfg": c.to_json(), "run_dir": str(root / trial_id(plan, i)), "early_stop": early_stop,
                      "threads": max(1, int(cpus))} for i, c in enumerate(plan.trials)}
        trainable = tune.with_resources(lambda p: _ray_trainable(params[p["index"]]), {"cpu": cpus, "gpu": gpus})

        tuner = tune.Tuner(trainable, param_space=space,
                           tune_config=tune.TuneConfig(max_concurrent_trials=None, reuse_actors=False),
                           run_config=tune.RunConfig(name=plan.name, storage_path=str(out / "ray"), verbose=0,
                                                     callbacks=[Collect(plan.name)], stop=StopAll(plan.name),
                                                     log_to_file=False))
        ACTIVE[plan.name] = (finished, should_stop, (*TRIAL_COLUMNS[1:], *METRIC_NAMES))
        tuner.fit()
    finally:
        ACTIVE.pop(plan.name, None)
        if started_here:
            ray.shutdown()


def write_results(plan: Plan, rows: list[dict], out: Path, wall_s: float | None = None,
                  backend: str | None = None) -> None:
    """sweep.csv (all rows so far, by trial) and SWEEP.md (the swept fields, metrics, best trials)."""
    rows = sorted(rows, key=lambda r: r["trial"])
    fixed = [f for f in FIELD_NAMES if f not in plan.swept]
    columns = ["trial", *plan.swept, *TRIAL_COLUMNS[1:], *METRIC_NAMES, *fixed]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (out / "sweep.csv").write_text(buffer.getvalue())
    (out / "SWEEP.md").write_text(summary_markdown(plan, rows, wall_s, backend))


def summary_markdown(plan: Plan, rows: list[dict], wall_s: float | None, backend: str | None) -> str:
    shown = ["trial", *plan.swept, "status", "accuracy_hard", "area", "bimodality", "collapsed", "wall_s"]
    lines = [f"# Sweep {plan.name}", "",
             f"Preset `{plan.preset}`, {len(plan.trials)} trials ({len(rows)} finished)"
             + (f", {wall_s:.0f} s wall on backend `{backend}`" if wall_s is not None else "") + ".", "",
             "| " + " | ".join(shown) + " |", "|---" * len(shown) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in shown) + " |")
    front = pareto(rows)
    if front:
        lines += ["", "Pareto front (highest accuracy_hard for the area kept, collapsed trials excluded): trials "
                  + ", ".join(str(r["trial"]) for r in front) + "."]
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    return "–" if v is None or v == "" else _short(v)


def read_sweep(out: Path) -> tuple[dict, list[dict]]:
    """(sweep.json, sweep.csv rows) of a sweep folder; in the rows, a column of numbers or of True/False reads as
    ints, floats or bools (pandas' parsing), an empty cell as None; no sweep.csv yet (or an empty one): no rows."""
    import pandas as pd
    out = Path(out)
    try:
        meta = json.loads((out / "sweep.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SweepError(f"{out / 'sweep.json'}: {e}") from None
    if not (out / "sweep.csv").is_file():
        return meta, []
    try:                                                  # "None" or "NA" stay text: only an empty cell is missing
        frame = pd.read_csv(out / "sweep.csv", keep_default_na=False, na_values=["", "nan"])
    except pd.errors.EmptyDataError:
        return meta, []
    return meta, frame.astype(object).where(frame.notna(), None).to_dict("records")


class SweepJob:
    """A sweep running on a background thread (the app's Sweeps page); never calls Streamlit. Thread-safe."""

    def __init__(self, plan: Plan, root: Path, out: Path, backend: str, cpus_per_trial: float = 1):
        import threading
        self.plan, self.root, self.out, self.backend, self.cpus = plan, Path(root), Path(out), backend, cpus_per_trial
        self._lock, self._rows, self._stop = threading.Lock(), {}, threading.Event()
        self.status, self.error, self.started, self.ended = "starting", None, time.time(), None
        self._thread = threading.Thread(target=self._work, name=f"masklab-sweep-{plan.name}", daemon=True)

    def start(self) -> "SweepJob":
        import atexit
        self._thread.start()
        atexit.register(self.close)                  # a server's shutdown stops the sweep and its trial in flight
        return self

    def close(self, timeout: float = 60.0) -> bool:
        """Stop and wait (atexit): the trial in flight is saved as stopped, and the thread is not ended mid-call
        by the interpreter's exit, which aborts the process (see masklab.live.join_threads)."""
        self.stop()
        return self.join(timeout)

    def _work(self) -> None:
        self.status = "running"
        try:
            run_sweep(self.plan, self.root, self.out, self.backend, cpus_per_trial=self.cpus,
                      on_trial=self._add, should_stop=self._stop.is_set)
            status = "stopped" if self._stop.is_set() else "done"
        except Exception as e:                       # shown on the page; the server lives on
            status, self.error = "failed", f"{type(e).__name__}: {e}"
        with self._lock:
            self.status, self.ended = status, time.time()

    def _add(self, i: int, row: dict) -> None:
        with self._lock:
            self._rows[i] = row

    def rows(self) -> list[dict]:
        with self._lock:
            return [self._rows[i] for i in sorted(self._rows)]

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def ray_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("ray") is not None


def saved_sweeps(folder: Path) -> list[str]:
    """Names of sweep folders (with sweep.json) under `folder`, in reverse name order: deterministic after a
    clone (file times are not), and the default <time>-<preset> names come newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p.name for p in folder.iterdir() if (p / "sweep.json").is_file()), reverse=True)
