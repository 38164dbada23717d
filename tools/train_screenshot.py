"""The README's Train-page screenshot: the default preset mid-run, in Chromium.

    python tools/train_screenshot.py [--step 900] [--out docs/train-live.png]

Starts the app over a temporary checkpoints/ folder, starts a run of the default preset from the Train page and
saves a full-page screenshot once the progress line passes --step (about 1.5 minutes on 2 CPU cores). Needs
Debian chromium and Playwright (requirements-dev.txt).
"""
import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from _browser import ROOT, app_page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=900, help="take the screenshot once training passes this step")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "train-live.png")
    args = parser.parse_args()
    # A tall viewport: the app scrolls inside its own pane, so a full-page screenshot is the viewport.
    with tempfile.TemporaryDirectory() as tmp, app_page(Path(tmp), 1500, 1900) as (page, base):
        page.goto(base + "train")
        page.get_by_role("button", name="Start run").click()
        progress = page.locator(".ml-text", has_text=re.compile(r"^step ")).last   # the live status line
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            m = re.search(r"step (\d+) of", progress.inner_text()) if progress.count() else None
            if m and int(m.group(1)) >= args.step:
                break
            time.sleep(1)
        else:
            raise SystemExit(f"training did not reach step {args.step} in 15 minutes")
        page.mouse.move(1490, 1890)                          # no tooltip left over the Start button
        page.wait_for_timeout(9000)                          # the feed redraws the charts every ui.CHARTS_S (8 s)
        page.screenshot(path=str(args.out), full_page=True)
        print(f"wrote {args.out} at {progress.inner_text().splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
