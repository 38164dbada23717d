"""Training throughput with the Train page open in Chromium vs the headless CLI, and the page's refresh cadence.

    python tools/app_throughput.py [--steps 150] [--reps 3] [--tabs 1]

Alternates CLI and app runs of the same default-preset config (external load drifts, so pairs are compared),
then one app run with log_every=1 to time how often the display advances. Needs Debian chromium and
Playwright (requirements-dev.txt). Prints one JSON object; the numbers in issue notes come from it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _browser import ARGS, CHROMIUM, ROOT, start_server, stop_server

# The status line: the feed's component (masklab.feed), or Streamlit's progress bar where the page polls instead.
PROGRESS = ".ml-status, [data-testid='stProgress']"
# How long each script (fragment) run takes in the page: a MutationObserver on Streamlit's script state, which
# costs the page nothing between runs.
RUNS = """() => {
  window.__runs = [];
  const app = document.querySelector("[data-testid='stApp']");
  let started = null;
  new MutationObserver(() => {
    const s = app.dataset.testScriptState;
    if (s === 'running' && started === null) started = performance.now();
    if (s !== 'running' && started !== null) { window.__runs.push(performance.now() - started); started = null; }
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
# When the status line's step changes: read every 20 ms, which forces the page's layout, so only on the run that
# times the display's cadence, never on one whose training speed is measured.
CADENCE = """(PROGRESS) => {
  window.__changes = [];
  let last = null;
  setInterval(() => {
    const p = document.querySelector(PROGRESS);
    const m = p && p.innerText.match(/step (\\d+) of/);
    if (m && m[1] !== last) { last = m[1]; window.__changes.push(Date.now()); }
  }, 20);
}"""


def rate(run_dir: Path) -> float:
    s = json.loads((run_dir / "summary.json").read_text())
    return s["steps_done"] / s["train_s"]


def cli(out: Path, steps: int) -> float:
    subprocess.run([sys.executable, "-m", "masklab", "train", "--steps", str(steps), "--quiet", "--out", str(out)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return rate(out)


def app(page, base: str, cwd: Path, query: str, tabs: int = 1, cadence: bool = False) -> tuple[float, list, list]:
    """One run started from a Train tab; `tabs` - 1 more tabs follow it (all on Train, each following the run).
    The end of training is awaited on disk, not by querying the page: Playwright's polling of a locator searches the
    page's DOM several times a second, and that browser CPU would be counted against the app."""
    from playwright.sync_api import expect
    before = set((cwd / "checkpoints").glob("*"))
    page.goto(f"{base}train?{query}")
    page.wait_for_timeout(2000)
    page.get_by_role("button", name="Start run").click()
    expect(page.locator(PROGRESS).first).to_be_visible()
    page.evaluate(RUNS)
    if cadence:
        page.evaluate(CADENCE, PROGRESS)
    run_id = page.url.split("run=")[1].split("&")[0]
    others = [page.context.browser.new_page() for _ in range(tabs - 1)]
    for other in others:
        other.goto(f"{base}train?run={run_id}")
    while not any((p / "summary.json").exists() for p in (cwd / "checkpoints").glob("*") if p not in before):
        time.sleep(0.5)
    expect(page.get_by_text("done", exact=True)).to_be_visible()
    for other in others:
        other.close()
    changes, runs = page.evaluate("[window.__changes || [], window.__runs]")
    new = [p for p in (cwd / "checkpoints").glob("*") if p not in before]
    return rate(new[0]), changes, runs


def quantiles(xs: list, fs=(0.5, 0.95)) -> list:
    xs = sorted(xs)
    return [round(xs[min(len(xs) - 1, int(f * len(xs)))]) for f in fs] if xs else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tabs", type=int, default=1, help="Train tabs following the run (the first starts it)")
    args = ap.parse_args()
    from playwright.sync_api import expect, sync_playwright
    expect.set_options(timeout=1_800_000)
    work = Path(tempfile.mkdtemp(prefix="masklab-throughput-"))
    cwd = work / "app"
    (cwd / "checkpoints").mkdir(parents=True)
    server, base = start_server(cwd)
    res = {"cli": [], "app": [], "fragment_ms": [], "load1": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for i in range(args.reps):
                res["load1"].append(round(os.getloadavg()[0], 2))
                res["cli"].append(cli(work / f"cli-{i}", args.steps))
                r, _, runs = app(page, base, cwd, f"steps={args.steps}", args.tabs)
                res["app"].append(r)
                res["fragment_ms"] += runs
                print(f"rep {i}: cli {res['cli'][-1]:.2f}  app {r:.2f} steps/s", file=sys.stderr, flush=True)
            _, changes, _ = app(page, base, cwd, f"steps={args.steps}&log_every=1", cadence=True)
            browser.close()
    finally:
        stop_server(server)
    ratios = [a / c for a, c in zip(res["app"], res["cli"])]
    print(json.dumps({
        "steps": args.steps, "tabs": args.tabs, "cli_steps_per_s": res["cli"], "app_steps_per_s": res["app"],
        "pair_ratios": [round(r, 3) for r in ratios], "median_ratio": round(statistics.median(ratios), 3),
        "load1_before_each_pair": res["load1"],
        "fragment_run_ms_p50_p95": quantiles(res["fragment_ms"]),
        "display_update_interval_ms_p50_p95_log_every_1": quantiles([b - a for a, b in zip(changes, changes[1:])]),
        "at": time.strftime("%Y-%m-%d %H:%M"),
    }, indent=1))


if __name__ == "__main__":
    main()
