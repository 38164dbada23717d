"""The README's Inspect screenshot: scikit-learn's china.jpg uploaded with both shipped demos present, in Chromium.

    python tools/inspect_screenshot.py [--out docs/inspect.png]

Starts the app over a temporary folder holding copies of checkpoints/demo and checkpoints/demo-photos (and a link
to data/, where the photo demo's test set is, if it is unpacked), uploads the photo and saves the viewport once its
mask, predictions and histogram are drawn. Needs Debian chromium and Playwright (requirements-dev.txt).
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
try:
    from test_browser import ARGS, CHROMIUM, settle, start_server, stop_server  # noqa: E402
except BaseException as e:                          # pytest's Skipped when Chromium or Playwright is missing
    raise SystemExit(f"cannot drive Chromium here: {e}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "inspect.png")
    args = parser.parse_args()
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright
    from sklearn.datasets import load_sample_image
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for name in ("demo", "demo-photos"):
            shutil.copytree(ROOT / "checkpoints" / name, cwd / "checkpoints" / name)
        if (ROOT / "data").is_dir():
            (cwd / "data").symlink_to(ROOT / "data")
        photo = cwd / "china.jpg"
        Image.fromarray(load_sample_image("china.jpg")).save(photo)
        server, base = start_server(cwd)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(base + "inspect")
                settle(page)
                page.locator("input[type=file]").first.set_input_files(str(photo))
                expect(page.get_by_text("is a colour photo", exact=False)).to_be_visible()
                expect(page.get_by_role("button", name="Mask PNG").first).to_be_visible()
                page.wait_for_timeout(3000)                  # the predictions table and histogram draw last
                settle(page)
                page.screenshot(path=args.out)
                browser.close()
        finally:
            stop_server(server)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
