"""Training speed with the Train page open, two checkouts of the app side by side, and the headless CLI.

    git worktree add ../masklab-prev <commit> && python tools/app_ab.py ../masklab-prev . [--rounds 4]

Starts `streamlit run app.py` of each checkout (each over its own temporary checkpoints/), then runs rounds of
(a CLI run, a run started from checkout A's Train page, one from B's), rotating the order, 600 steps each with the
default preset, one Chromium tab. Runs in turn see the same machine load, so B/A is steadier than two separate
app_throughput.py sessions. Prints one JSON object: steps/s per run, A/CLI and B/CLI per round, the means.
"""
import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _browser import ARGS, CHROMIUM  # noqa: I001  (puts tests/ on the path)
from app_throughput import app, cli
from test_browser import start_server, stop_server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="checkout A (the baseline)")
    ap.add_argument("b", type=Path, help="checkout B")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    from playwright.sync_api import expect, sync_playwright
    expect.set_options(timeout=1_800_000)
    work = Path(tempfile.mkdtemp(prefix="masklab-ab-"))
    servers = {}
    for key, root in (("A", args.a.resolve()), ("B", args.b.resolve())):
        cwd = work / key
        (cwd / "checkpoints").mkdir(parents=True)
        servers[key] = (*start_server(cwd, root), cwd)
    runs = {"cli": [], "A": [], "B": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            order = list(runs)
            for i in range(args.rounds):
                for key in order[i % 3:] + order[:i % 3]:
                    if key == "cli":
                        steps_per_s = cli(work / f"cli-{i}", args.steps)
                    else:
                        _, base, cwd = servers[key]
                        steps_per_s = app(page, base, cwd, f"steps={args.steps}")[0]
                        page.goto("about:blank")
                    runs[key].append(round(steps_per_s, 2))
                    print(f"round {i}: {key} {runs[key][-1]} steps/s", file=sys.stderr, flush=True)
            browser.close()
    finally:
        for server, _, _ in servers.values():
            stop_server(server)
    mean = {k: statistics.mean(v) for k, v in runs.items()}
    print(json.dumps({"steps": args.steps, "runs": runs,
                      "A/cli": [round(a / c, 3) for a, c in zip(runs["A"], runs["cli"])],
                      "B/cli": [round(b / c, 3) for b, c in zip(runs["B"], runs["cli"])],
                      "B/A": [round(b / a, 3) for a, b in zip(runs["A"], runs["B"])],
                      "mean A/cli": round(mean["A"] / mean["cli"], 3), "mean B/cli": round(mean["B"] / mean["cli"], 3),
                      "mean B/A": round(mean["B"] / mean["A"], 3)}, indent=1))


if __name__ == "__main__":
    main()
