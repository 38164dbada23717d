"""What the tools that drive the app in Chromium share: the browser tests' server and page helpers, and a page on
a server of its own. Needs Debian chromium and Playwright (requirements-dev.txt)."""
import contextlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
try:
    from test_browser import ARGS, CHROMIUM, settle, start_server, stop_server  # noqa: E402,F401
except BaseException as e:                          # pytest's Skipped when Chromium or Playwright is missing
    raise SystemExit(f"cannot drive Chromium here: {e}") from None


@contextlib.contextmanager
def app_page(cwd: Path, width: int, height: int):
    """(page, base URL): a headless Chromium page of that viewport on `streamlit run app.py` working in `cwd`
    (its checkpoints/); the browser and the server are closed afterwards."""
    from playwright.sync_api import sync_playwright
    server, base = start_server(cwd)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page, base
            browser.close()
    finally:
        stop_server(server)
