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

from _browser import ROOT, app_page, settle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "inspect.png")
    args = parser.parse_args()
    from PIL import Image
    from playwright.sync_api import expect
    from sklearn.datasets import load_sample_image
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for name in ("demo", "demo-photos"):
            shutil.copytree(ROOT / "checkpoints" / name, cwd / "checkpoints" / name)
        if (ROOT / "data").is_dir():
            (cwd / "data").symlink_to(ROOT / "data")
        photo = cwd / "china.jpg"
        Image.fromarray(load_sample_image("china.jpg")).save(photo)
        with app_page(cwd, 1400, 1000) as (page, base):
            page.goto(base + "inspect")
            settle(page)
            page.locator("input[type=file]").first.set_input_files(str(photo))
            expect(page.get_by_text("is a colour photo", exact=False)).to_be_visible()
            expect(page.get_by_role("button", name="Mask PNG").first).to_be_visible()
            page.wait_for_timeout(3000)                      # the predictions table and histogram draw last
            settle(page)
            page.screenshot(path=args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
