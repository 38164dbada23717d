"""What every MaskLab page shares: the process-wide run and sweep managers and live feed, the page paths, the
config form (widgets bound to the URL, built from each field's Knob), a per-session memo and one shared by every
tab. Figures live in masklab.figures, each page's own helpers in that page; masklab never imports Streamlit.
Nothing here runs in a worker thread: pages read RunViews, and the live feed's thread (masklab.feed) writes files.
"""
from __future__ import annotations

import atexit
import math
import runpy
import threading
from pathlib import Path

import streamlit as st

from masklab.config import (CHECKPOINTS, DEFAULT_PRESET, DEMO_RUNS, FIELD_NAMES, HELP, KNOBS, PRESETS, Config, ConfigError,
                            Knob)
from masklab.data import FOLDER_LAYOUT, DataError, check_dataset
from masklab.explain import collapse
from masklab.feed import LiveFeed
from masklab.gates import GATES
from masklab.live import RunManager, join_threads

# Live panels poll their run this often. Each poll is a fragment run, and Streamlit's page re-renders every element
# on it (the sidebar's form included) at each run's start and end: 40-100 ms of the browser's CPU a poll, measured
# with Chrome's profiler on the Train page. A record arrives every log_every steps (about 2 s on 2 cores with the
# defaults), so a 1 s poll redrew the same line half the time: 2 s halves that cost (tools/app_throughput.py).
REFRESH_S = 2.0
STATUS_S = 1.0                  # ... but the Train page fetches its run's live feed file instead (no rerun)
CHARTS_S = 8.0                  # ... and its curves, masks and histograms this often (see pages/train.py)
DEMO, PHOTO_DEMO = DEMO_RUNS
DEMOS = {DEMO: "shipped demo: digits, 48×48 grayscale",
         PHOTO_DEMO: "shipped demo: colour photos, 32×32, CIFAR-10's classes"}
MAX_LIVE = 2                    # concurrent trainings per server: they share the CPU
WORKER_THREADS = None           # torch intra-op threads while training (None: torch's default); see the report
APP = Path(__file__).resolve().parent / "app.py"
STATIC = APP.parent / "static"  # served at app/static/ (server.enableStaticServing in .streamlit/config.toml)
TRAIN_PAGE, RUNS_PAGE, INSPECT_PAGE = "pages/train.py", "pages/runs.py", "pages/inspect.py"

EXIT_WAIT_S = 20.0              # at exit, how long the pages' script threads may take to finish a call in flight

# Registered before manager() and live_feed() register theirs, so it runs after them (atexit runs last-in first):
# the runs are saved and the feed's thread has ended; a page still computing (a mask on the Inspect page, a table
# of saved runs) gets its torch call finished instead of the process aborting under it.
atexit.register(join_threads, lambda t: t.name == "ScriptRunner.scriptThread", EXIT_WAIT_S)


def own_navigation() -> None:
    """Call first in app.py and in every page: app.py's st.navigation, never Streamlit's legacy pages/ folder.

    Streamlit decides once per server process (and AppTest on every run), before any script has run, that an
    app with a pages/ folder is a legacy multipage app; that first run would then execute the page the URL names
    (pages/train.py for /train) on its own, under a sidebar listing the folder. st.navigation turns the legacy
    mode off, but only once app.py runs: so the first run turns it off itself and runs app.py in its place, in
    the same run (widget values, the URL and its query are kept), then stops."""
    from streamlit.runtime.pages_manager import PagesManager
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(APP), run_name="__main__")
        st.stop()


@st.cache_resource(show_spinner=False, on_release=lambda m: m.shutdown())
def manager() -> RunManager:
    """The one RunManager of this server process, shared by every session and tab (it is thread-safe).

    Released (cache cleared) means stopped: its live runs stop and are saved rather than orphaned."""
    return RunManager(CHECKPOINTS, max_live=MAX_LIVE, threads=WORKER_THREADS)


@st.cache_resource(show_spinner=False, on_release=lambda f: f and f.close())
def live_feed() -> LiveFeed | None:
    """The live runs' status lines and chart images as files under static/live/, which the Train page fetches by
    itself (masklab.feed says why); None where Streamlit does not serve static/ or the folder cannot be written:
    the page then polls with fragment reruns."""
    if not st.get_option("server.enableStaticServing"):
        return None
    runs = manager()
    try:
        return LiveFeed(STATIC / "live", lambda: [r.id for r in runs.live()], lambda i: runs.view(i, masks=False),
                        charts_every=CHARTS_S, collapse=collapse)
    except OSError:
        return None


def static_url(name: str) -> str:
    """The path a file under static/ is served at, below the server's base URL."""
    base = st.get_option("server.baseUrlPath").strip("/")
    return "/" + "/".join(p for p in (base, "app/static", name) if p)


def feed_url(name: str = "") -> str:
    """The path one of the live feed's files is served at (LiveFeed.name gives `name`); "" the folder's, with "/"."""
    return static_url("live/" + name)


# --- config widgets, bound to the URL ----------------------------------------------------------------------

METHOD_FIELDS = tuple(f for f in FIELD_NAMES if any(f in p for p in PRESETS.values()))
TRAINING_FIELDS = ("lr", "steps", "batch_size", "seed", "device")
DATASETS = {  # what the picker offers -> the spec's prefix; a prefix ending in ":" takes a path
    "cluttered digits (built in)": "cluttered-digits", "shapes (built in)": "shapes",
    "CIFAR-10 (torchvision root)": "cifar10:", "MNIST (torchvision root)": "mnist:",
    "Fashion-MNIST (torchvision root)": "fashion-mnist:", "my image folder": "folder:"}


def field_widget(name: str):
    """The input widget of one Config field, keyed and URL-bound by the field's name (the same name as in
    config.json and on the CLI); its default is Config's, so the URL holds exactly cfg.to_query(). Its label,
    range, help formula and slider come from the field's Knob (masklab.config), as do Config's own checks."""
    knob, default = KNOBS[name], getattr(Config(), name)
    common = dict(label=knob.label or name.replace("_", " "), key=name, bind="query-params",
                  help=HELP[name] + (f"  \n{knob.formula}" if knob.formula else ""))
    if knob.choices:
        return st.selectbox(options=knob.choices, index=knob.choices.index(default), **common)
    if isinstance(default, bool):
        return st.toggle(value=default, **common)
    if isinstance(default, str):
        return st.text_input(value=default, **common)
    if not knob.slider:
        return _number_box(knob, default, common)
    slide, exact = st.columns([5, 1], vertical_alignment="bottom")
    with exact.popover("", icon=":material/edit:", help=f"Type an exact {common['label']}"):
        value = _number_box(knob, default, common)
    with slide:
        _slider(name, knob, value, common)
    return value


def _number_box(knob: Knob, default, common: dict):
    """A number input over the knob's range (where the range has an `off` value outside it, the low end is left
    to Config's check, which says why)."""
    lo, hi = knob.lo, knob.hi
    if isinstance(default, float):     # an open end: the nearest float inside it, so "> 0" refuses 0 and admits 1e-9
        lo = math.nextafter(lo, math.inf) if lo is not None and knob.lo_open else lo
        hi = math.nextafter(hi, -math.inf) if hi is not None and knob.hi_open else hi
    bounds = {"min_value": None if knob.off is not None else lo, "max_value": hi}
    if isinstance(default, int):
        bounds = {k: None if v is None else int(v) for k, v in bounds.items()}
        return st.number_input(value=default, step=int(knob.step or 1), **bounds, **common)
    # %g: 0.001 stays 0.001 (the default %0.2f would show 0.00) and 2/3 does not show all its 16 digits
    step = knob.step or (knob.span[0] if knob.slider == "log" else None)   # log: +/- moves by the span's low end
    floats = {k: None if v is None else float(v) for k, v in {**bounds, "step": step}.items()}
    return st.number_input(value=float(default), format="%g", **floats, **common)


def _slider(name: str, knob: Knob, value: float, common: dict) -> None:
    """A slider over the knob's values (log-spaced where it spans decades) that writes the field's number box:
    the box stays the one URL-bound widget, and its exact value is always one of the slider's stops."""
    key = f"{name}__slider"
    st.session_state[key] = value                  # follows the box (preset, URL, typed value)
    st.select_slider(common["label"], options=knob.stops(value), key=key, help=common["help"],
                     format_func=lambda v: knob.off_means if v == knob.off_value else f"{v:g}",
                     on_change=lambda: st.session_state.__setitem__(name, st.session_state[key]))


def method_knobs(gate: str, mask_loss: str, constraint: bool) -> list[str]:
    """The fields the chosen method actually uses, besides α, β, λ (always shown: they are the question's)."""
    knobs = []
    if constraint or mask_loss == "sorted_area":
        knobs += ["area_target", "warmup", "anneal_frac", "anneal"]
    if constraint:
        knobs += ["dual_lr", "area_floor"]
    if gate in GATES:                   # the closing phase freezes any learned mask (train.py), not only a constrained one
        knobs.append("finetune")
    return list(dict.fromkeys(knobs + list(GATES[gate].knobs if gate in GATES else ())))   # top_k reads the schedule


def apply_preset(name: str | None = None) -> None:
    """Callback: set every method field to preset `name` (default: the preset selectbox's choice); the
    training fields (steps, lr, data, ...) keep their values."""
    name = name or st.session_state.get("preset", DEFAULT_PRESET)
    base = Config.from_dict(PRESETS[name])
    for f in METHOD_FIELDS:
        st.session_state[f] = getattr(base, f)
    st.session_state["preset"] = name


def matching_preset(cfg: Config) -> str | None:
    """The preset whose method fields all equal cfg's, if any."""
    for name, overrides in PRESETS.items():
        base = Config.from_dict(overrides)
        if all(getattr(base, f) == getattr(cfg, f) for f in METHOD_FIELDS):
            return name
    return None


def url_config() -> Config:
    """The config the URL describes (unknown keys such as `run` ignored; bad values fall back to defaults)."""
    params = {k: v for k, v in st.query_params.to_dict().items() if k in FIELD_NAMES}
    try:
        return Config.from_query(params)
    except ConfigError:
        return Config()


def url_problems() -> list[str]:
    """Config values in the URL that are refused (unparseable, out of range, NaN, unknown choices): their widgets
    fall back to the default, which must not happen silently."""
    problems = []
    for name, value in st.query_params.to_dict().items():
        if name in FIELD_NAMES:
            try:
                Config.from_query({name: value})
            except ConfigError as e:
                problems.append(f"?{name}={value[:40]} ({e})")
    return problems


def config_sidebar() -> tuple[Config | None, str]:
    """Render the preset picker and every Config field in the sidebar; (the config or None, the run label)."""
    refused = url_problems()                   # before the widgets bind (and rewrite) the query parameters
    with st.sidebar:
        if refused:
            st.warning("Ignored from the URL, the defaults are used instead: " + "; ".join(refused),
                       icon=":material/link_off:")
        if "preset" not in st.session_state:
            st.session_state["preset"] = matching_preset(url_config()) or DEFAULT_PRESET
        st.selectbox("Method preset", list(PRESETS), key="preset", on_change=apply_preset,
                     help="Sets the method's fields (gate, mask loss, constraint, α, β, λ, temperatures); "
                          "training fields keep their values.")
        st.subheader("Method")
        gate, mask_loss, constraint = (field_widget(f) for f in ("gate", "mask_loss", "constraint"))
        shown = ["alpha", "beta", "lam", *method_knobs(gate, mask_loss, constraint)]
        for name in shown:
            field_widget(name)
        st.subheader("Training")
        data_problem, placed = dataset_picker()
        for name in TRAINING_FIELDS:
            field_widget(name)
        with st.expander("More settings"):
            for name in FIELD_NAMES:
                if name not in (*shown, *TRAINING_FIELDS, *placed, "gate", "mask_loss", "constraint"):
                    field_widget(name)                # data: the spec itself, URL-bound; the picker writes it
        return _config_or_error(data_problem)


def dataset_picker() -> tuple[str | None, tuple[str, ...]]:
    """The dataset by name, with a root or folder path where it needs one (checked before any run starts);
    it writes the `data` spec (the URL-bound field in More settings). Returns (the problem with the dataset, if
    any; the Config fields it placed itself)."""
    spec = st.session_state.get("data", st.query_params.get("data", Config().data))
    kind = next((label for label, prefix in DATASETS.items() if spec == prefix or
                 (prefix.endswith(":") and spec.startswith(prefix))), None)
    st.session_state["data__kind"] = kind or "my image folder"
    prefix = DATASETS[st.session_state["data__kind"]]
    st.session_state["data__path"] = spec[len(prefix):] if prefix.endswith(":") and kind else ""
    st.selectbox("dataset", list(DATASETS), key="data__kind", on_change=_write_data_spec,
                 help="The built-in sets need nothing; the others read files from a path on this machine.")
    if not prefix.endswith(":"):
        return None, ()
    folder = prefix == "folder:"
    st.text_input("image folder" if folder else "torchvision root", key="data__path", on_change=_write_data_spec,
                  placeholder="/path/to/photos" if folder else "/path/to/torchvision/data",
                  help=f"Layout: {FOLDER_LAYOUT}." if folder else "The folder torchvision keeps this dataset in.")
    placed = () if folder else ("download",)
    if not folder:
        field_widget("download")
    download = st.session_state.get("download", False)
    try:                                # a folder is counted once per spec, not on every rerun of the sidebar
        st.caption(memo("data-check", (spec, download), lambda: check_dataset(spec, download)))
    except DataError as e:
        st.error(str(e), icon=":material/folder_off:")
        return str(e), placed
    return None, placed


def _write_data_spec() -> None:
    """Callback: the picker's dataset and path, as the `data` spec."""
    prefix = DATASETS[st.session_state["data__kind"]]
    st.session_state["data"] = prefix + (st.session_state["data__path"] if prefix.endswith(":") else "")


def _config_or_error(data_problem: str | None = None) -> tuple[Config | None, str]:
    try:
        cfg = Config.from_dict({f: st.session_state[f] for f in FIELD_NAMES})
    except ConfigError as e:            # widget bounds are client-side only: Config has the last word
        st.error(f"This setup cannot run: {e}")
        return None, "custom"
    if data_problem:
        st.error("This setup cannot run: fix the dataset above.")
        return None, "custom"
    match = matching_preset(cfg)
    st.caption(f"Method: **{match}** preset." if match else "Method: custom (no preset matches these fields).")
    return cfg, match or "custom"


def memo(name: str, version, build):
    """build() once per (name, version) in this session: a live panel polls every second, but its figures and
    images change only when a record arrives, so rebuilding them each poll only costs the training thread CPU."""
    cache = st.session_state.setdefault("_memo", {})
    if name not in cache or cache[name][0] != version:
        cache[name] = (version, build())
    return cache[name][1]


_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()
SHARED_ENTRIES = 32


def shared_memo(name: str, version, build):
    """build() once per (name, version) in this server, for every tab: a run's figures depend only on the run and
    its record or snapshot count (which `version` must name), and four tabs following one run would otherwise draw
    each figure four times. The newest SHARED_ENTRIES results are kept."""
    key = (name, version)
    with _SHARED_LOCK:
        if key in _SHARED:
            _SHARED[key] = _SHARED.pop(key)                   # most recently used last
            return _SHARED[key]
    value = build()                                           # outside the lock: two tabs may both build, rarely
    with _SHARED_LOCK:
        _SHARED[key] = value
        while len(_SHARED) > SHARED_ENTRIES:
            del _SHARED[next(iter(_SHARED))]
    return value


# --- runs --------------------------------------------------------------------------------------------------

# --- sweeps ------------------------------------------------------------------------------------------------

SWEEPS = Path("sweeps")


@st.cache_resource(show_spinner=False, on_release=lambda jobs: [j.stop() for j in jobs.values()])
def sweep_jobs() -> dict:
    """Sweeps launched from this server: name -> SweepJob (one runs at a time; they share the CPU with runs)."""
    return {}


