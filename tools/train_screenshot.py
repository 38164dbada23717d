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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
try:
    from test_browser import ARGS, CHROMIUM, start_server, stop_server  # noqa: E402
except BaseException as e:                          # pytest's Skipped when Chromium or Playwright is missing
    raise SystemExit(f"cannot drive Chromium here: {e}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=900, help="take the screenshot once training passes this step")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "train-live.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as tmp:
        server, base = start_server(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
                page = browser.new_page(viewport={"width": 1500, "height": 1900})   # the app scrolls inside
                page.set_default_timeout(60_000)
                page.goto(base + "train")
                page.get_by_role("button", name="Start run").click()
                progress = page.locator("[data-testid='stProgress']")
                deadline = time.monotonic() + 900
                while time.monotonic() < deadline:
                    m = re.search(r"step (\d+) of", progress.inner_text()) if progress.count() else None
                    if m and int(m.group(1)) >= args.step:
                        break
                    time.sleep(1)
                else:
                    raise SystemExit(f"training did not reach step {args.step} in 15 minutes")
                page.mouse.move(1490, 1890)                  # no tooltip left over the Start button
                page.wait_for_timeout(3000)                  # let the charts and masks of that step draw
                page.screenshot(path=str(args.out), full_page=True)
                print(f"wrote {args.out} at {progress.inner_text().splitlines()[0]}")
                browser.close()
        finally:
            stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
