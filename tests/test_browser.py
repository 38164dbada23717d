"""Real-browser tests: Playwright drives Debian's Chromium against `streamlit run app.py` on a loopback port.

Locally these skip, with the reason, when Chromium or Playwright is missing; under CI (env CI set) that is a
failure instead. Screenshots go to $MASKLAB_SCREENSHOTS when set (else a pytest temp folder).
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("MASKLAB_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TINY = dict(canvas=32, clutter=2, batch_size=8, log_every=2, test_size=40, width=4, classifier_width=4,
            device="cpu")
PAGES = ["", "train", "runs", "inspect", "sweeps", "loss_explorer"]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:                                   # judged below, with Chromium
    sync_playwright = None

_missing = ("the Playwright Python package is not installed" if sync_playwright is None else
            f"Chromium is not at {CHROMIUM} (apt-get install chromium, or set MASKLAB_CHROMIUM)"
            if not CHROMIUM.exists() else None)
if _missing and os.environ.get("CI"):
    pytest.fail(f"browser tests cannot run in CI: {_missing}", pytrace=False)
if _missing:
    pytest.skip(f"browser tests skipped: {_missing}", allow_module_level=True)
expect.set_options(timeout=60_000)                    # a loaded 2-core machine: be patient, not flaky
# One worker of `pytest -n auto` runs them all (conftest's loadgroup scheduling): one app server and one Chromium
# for the module's shared fixtures, not one on each worker, and each page's first load paid once.
pytestmark = pytest.mark.xdist_group("browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cwd: Path, root: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` (of the checkout at `root`) with `cwd` as working directory (its checkpoints/), once
    /_stcore/health is ok."""
    port = free_port()
    log = open(cwd / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(root / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
        # the server's runs train on this test worker's share of the cores (conftest), not on all of them
        env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": str(torch.get_num_threads()),
             "PYTHONFAULTHANDLER": "1"})   # a crash (an abort at exit) prints every thread's traceback to the log
    end = time.monotonic() + 90
    while time.monotonic() < end:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return server, f"http://127.0.0.1:{port}/"
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"streamlit did not become healthy: {(cwd / 'server.log').read_text()[-2000:]}")


def stop_server(server: subprocess.Popen, timeout: float = 90) -> int:
    """SIGTERM, as a service manager or Ctrl-C would, and the exit status."""
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        raise


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield chromium
        chromium.close()


def new_page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    return page


@pytest.fixture(scope="module")
def lab(tmp_path_factory, browser):
    """A server over a temp checkpoints/ holding one tiny saved run, and a Chromium page; (page, base, cwd)."""
    from masklab.config import Config
    from masklab.runs import fit
    cwd = tmp_path_factory.mktemp("lab")
    fit(Config(steps=6, **TINY), root=cwd / "checkpoints", label="tiny")
    server, base = start_server(cwd)
    try:
        yield new_page(browser), base, cwd
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("MASKLAB_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def settle(page) -> None:
    """Wait until the app has rendered and its script run is over."""
    page.wait_for_selector("[data-testid='stApp']")
    page.wait_for_function("document.querySelector(\"[data-testid='stApp']\")?.dataset.testScriptState"
                           " !== 'running'")
    page.wait_for_timeout(500)


def exceptions(page) -> list[str]:
    return page.locator("[data-testid='stException']").all_inner_texts()


def query(**fields) -> str:
    return "&".join(f"{k}={v}" for k, v in fields.items())


def status_line(page):
    """The Train page's live status line (fed by static/live/). While the panel redraws after a status change the
    old line and the new one can both be on the page for a moment, one of them still empty: the last that shows a
    step."""
    return page.locator(".ml-text", has_text=re.compile(r"^step ")).last


def badge(page, status: str):
    """The run's status badge showing `status` (the last such: see status_line)."""
    return page.get_by_text(status, exact=True).last


@pytest.mark.parametrize("path", PAGES)
def test_every_page_opens_without_exception(lab, shots, path):
    """Each page loads in Chromium with its title and no exception; a screenshot is kept."""
    page, base, _ = lab
    page.goto(base + path)
    settle(page)
    expect(page.locator("h1").first).to_be_visible()
    page.screenshot(path=shots / f"page-{path or 'home'}.png", full_page=True)
    assert exceptions(page) == []


# Counts the page's script runs from now on (Streamlit marks the app element while a script or fragment runs).
SCRIPT_RUNS = """() => {
  window.__scriptRuns = 0;
  const app = document.querySelector("[data-testid='stApp']");
  new MutationObserver(() => { if (app.dataset.testScriptState === "running") window.__scriptRuns += 1; })
    .observe(app, {attributes: true, attributeFilter: ["data-test-script-state"]});
}"""


def test_a_run_updates_live_and_can_be_paused_resumed_and_stopped(lab, shots):
    """Started from Train, the step counter and the masks advance with no interaction and no rerun of the page;
    Pause holds it, Resume and Stop work, and the stopped run is listed on Runs and opens in Inspect."""
    page, base, cwd = lab
    page.goto(f"{base}train?{query(steps=100000, **TINY)}")
    settle(page)
    page.get_by_role("button", name="Start run").click()
    progress = status_line(page)
    expect(progress).to_contain_text(re.compile(r"step [1-9]\d* of 100000"))
    expect(page.locator(".ml-masks img")).to_have_count(8, timeout=30_000)     # the live charts' overlays
    page.evaluate(SCRIPT_RUNS)
    first = progress.inner_text()
    expect(progress).not_to_have_text(first, timeout=20_000)          # it fetches its file: no click needed ...
    page.wait_for_timeout(3000)
    assert page.evaluate("window.__scriptRuns") == 0                  # ... and no rerun of the page either
    assert "run=" in page.url and exceptions(page) == []
    run_id = re.search(r"run=([^&]+)", page.url).group(1)
    page.screenshot(path=shots / "train-live.png", full_page=True)
    page.get_by_role("button", name="Pause").click()
    expect(badge(page, "paused")).to_be_visible()
    page.get_by_role("button", name="Resume").click()
    expect(badge(page, "running")).to_be_visible()
    page.get_by_role("button", name="Stop").click()
    expect(badge(page, "stopped")).to_be_visible(timeout=90_000)
    page.screenshot(path=shots / "train-stopped.png", full_page=True)
    assert (cwd / "checkpoints" / run_id / "summary.json").is_file() and exceptions(page) == []
    page.goto(base + "runs")
    settle(page)
    expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
    page.goto(f"{base}inspect?checkpoint={run_id}")
    settle(page)
    expect(page.locator("[data-testid='stImage']").first).to_be_visible()
    assert exceptions(page) == []


def test_upload_a_photo_on_inspect(lab, shots):
    """A real colour photo uploads, is converted to the model's input and masked, with a PNG to download."""
    from PIL import Image
    from sklearn.datasets import load_sample_image
    page, base, cwd = lab
    photo = cwd / "china.jpg"
    Image.fromarray(load_sample_image("china.jpg")).save(photo)
    page.goto(base + "inspect")
    settle(page)
    images = page.locator("[data-testid='stImage']")
    expect(images).to_have_count(6)                   # two test samples by default: input, overlay, masked
    page.locator("input[type=file]").first.set_input_files(str(photo))
    expect(page.get_by_text("china.jpg", exact=False).first).to_be_visible()
    expect(images).to_have_count(9)
    expect(page.get_by_role("button", name="Mask PNG").first).to_be_visible()
    page.screenshot(path=shots / "inspect-upload.png", full_page=True)
    assert exceptions(page) == []


def test_a_photo_of_a_cifar_class_gets_the_photo_demo_and_its_mask(lab, shots):
    """With both shipped demos in checkpoints/, CIFAR-10's first test bird (never seen in training) is uploaded:
    Inspect switches to demo-photos and says why, and shows the area that the library computes for the same file
    and the predictions table with the classes and probabilities the library ranks first for the same file; the
    mask keeps part of the photo. (test_demo.py checks what the demo names the first test photo of each class, and
    where their masks lie.)"""
    import shutil
    from masklab.bench_data import SHARED_CIFAR, cifar_folder
    from masklab.checkpoint import load_run
    from masklab.images import open_image, run_mask, to_tensor
    if not SHARED_CIFAR.exists():
        pytest.skip("needs ../shared/data/cifar10-jpeg.tar.gz (absent in a user's clone; CI has it)")
    page, base, cwd = lab
    photo = cwd / "bird.jpg"
    shutil.copy(cifar_folder(train_per_class=1, test_per_class=1) / "test" / "bird" / "0000.jpg", photo)
    cfg, model, summary = load_run(ROOT / "checkpoints" / "demo-photos")
    r = run_mask(model, to_tensor(open_image(photo), 3, (32, 32)), cfg.temperature_end)
    assert 0.1 < r.area < 0.6
    demos = [cwd / "checkpoints" / name for name in ("demo", "demo-photos")]
    for demo in demos:
        shutil.copytree(ROOT / "checkpoints" / demo.name, demo)
    try:
        page.goto(base + "inspect")
        settle(page)
        page.locator("input[type=file]").first.set_input_files(str(photo))
        expect(page.get_by_text("is a colour photo", exact=False)).to_be_visible()
        expect(page.get_by_text("bird.jpg", exact=False).first).to_be_visible()
        expect(page.get_by_text(f"{r.area:.1%}", exact=True)).to_be_visible()      # the kept-area metric
        expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()       # the predictions
        names = summary["data"]["class_names"]
        top = r.top(names, 3)
        # the table's cells, from the grid's accessible copy of them (the grid itself is drawn on a canvas)
        cells = page.locator("[data-testid='stDataFrame'] table [role='gridcell']")
        expect(cells.first).to_be_attached()
        texts = cells.all_inner_texts()[:2 * len(top)]
        assert texts[0::2] == [t["class"] for t in top]                              # what the library ranks
        assert [float(v) for v in texts[1::2]] == pytest.approx([t["probability"] for t in top], abs=1e-3)
        page.screenshot(path=shots / "inspect-photo-demo.png", full_page=True)
        assert exceptions(page) == []
    finally:
        for demo in demos:
            shutil.rmtree(demo)


def test_bad_uploads_are_refused_in_one_line_and_a_good_one_still_works(lab, shots):
    """HTML renamed .png and a truncated JPEG reach the server and are refused with one line each; an SVG is
    refused by the uploader itself; a real photo uploaded with them is still masked. No exception anywhere."""
    from PIL import Image
    from sklearn.datasets import load_sample_image
    page, base, cwd = lab
    bad_html, truncated, svg, good = (cwd / n for n in ("page.png", "cut.jpg", "drawing.svg", "flower.jpg"))
    bad_html.write_text("<!doctype html><html><body>not an image</body></html>")
    Image.fromarray(load_sample_image("flower.jpg")).save(good)
    truncated.write_bytes(good.read_bytes()[:5000])
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    page.goto(base + "inspect")
    settle(page)
    images = page.locator("[data-testid='stImage']")
    expect(images).to_have_count(6)
    page.locator("input[type=file]").first.set_input_files([str(bad_html), str(truncated), str(good)])
    alerts = page.locator("[data-testid='stAlertContentError']")
    expect(alerts.filter(has_text="page.png: not an image")).to_have_count(1)
    expect(alerts.filter(has_text="cut.jpg: damaged or truncated")).to_have_count(1)
    expect(images).to_have_count(9)                                 # flower.jpg: input, overlay, masked
    page.locator("input[type=file]").first.set_input_files(str(svg))
    expect(page.get_by_text(re.compile(r"svg.*not allowed|not allowed.*svg", re.I)).first).to_be_visible()
    page.screenshot(path=shots / "inspect-bad-uploads.png", full_page=True)
    assert exceptions(page) == []


def test_the_url_reproduces_a_setup_and_follows_edits(lab):
    """Opening a URL with config fields (the seed preset's, as the app writes them) sets the widgets; editing a
    widget writes it back into the URL."""
    from masklab.config import preset
    page, base, _ = lab
    page.goto(f"{base}train?{query(**preset('seed').to_query())}")
    settle(page)
    expect(page.get_by_text("Method: seed preset.")).to_be_visible()
    steps = page.get_by_label("steps", exact=True)
    steps.fill("321")
    steps.press("Enter")
    page.wait_for_url(re.compile(r"steps=321"))
    assert "gate=hard_sigmoid" in page.url and exceptions(page) == []


def test_server_shutdown_stops_and_saves_a_live_run(tmp_path, browser):
    """SIGTERM while a run trains: the atexit hook stops and joins it, its folder is saved as stopped, and
    the server exits cleanly instead of aborting. Before that, the fresh server's first visit: a deep link to
    Inspect. Before st.navigation has run once, the browser knows the pages by their file names, and a page whose
    URL is not its file's name (Inspect was pages/inspect_masks.py at /inspect) met a first visitor with "Page not
    found"; and a deep link names a file in pages/, which must not bring a legacy pages/ listing: the sidebar lists
    exactly the six pages, once each (app.py's st.navigation)."""
    feeds = ROOT / "static" / "live"
    before = set(feeds.glob("*"))
    server, base = start_server(tmp_path)
    try:
        page = new_page(browser)
        page.goto(base + "inspect")
        settle(page)
        expect(page.locator("h1").first).to_have_text("Inspect")
        assert page.get_by_text("Page not found").count() == 0
        links = page.locator("[data-testid='stSidebarNav'] a")
        expect(links.filter(has_text=re.compile("Loss explorer"))).to_have_count(1)   # the first run restarts via app.py
        names = [t.split("\n")[-1].strip() for t in links.all_inner_texts()]   # the text after the icon's name
        assert sorted(names) == sorted(["Overview", "Train", "Runs", "Inspect", "Sweeps", "Loss explorer"]), names
        page.goto(f"{base}train?{query(steps=100000, **TINY)}")
        settle(page)
        page.get_by_role("button", name="Start run").click()
        expect(status_line(page)).to_contain_text(re.compile(r"step [1-9]"))
        # this server's live feed: the new feed folder that holds this run's file (other test workers' servers
        # share static/live/ and may add or remove feeds of their own meanwhile)
        runs = [d.name for d in (tmp_path / "checkpoints").iterdir() if d.is_dir()]
        mine = [f for f in set(feeds.glob("*")) - before if any((f / f"{r}.json").exists() for r in runs)]
        assert len(runs) == 1 and len(mine) == 1, (runs, mine)
        page.close()
    finally:
        code = stop_server(server)
    summaries = list((tmp_path / "checkpoints").glob("*/summary.json"))
    assert code == 0, (tmp_path / "server.log").read_text()[-2000:]
    assert len(summaries) == 1 and '"status": "stopped"' in summaries[0].read_text()
    assert not mine[0].exists()                                         # ... removed as the server exits


def drag_slider(page, label: str, dx: float) -> None:
    """Drag the thumb of the slider labelled `label` by dx pixels, as a user's mouse would."""
    slider = page.locator("[data-testid='stSlider']").filter(has_text=label)
    thumb = slider.locator("[data-testid='stSliderThumbValue']").locator("..")     # the knob the value rides on
    thumb.scroll_into_view_if_needed()
    box = thumb.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y, steps=5)
    page.mouse.move(x + dx, y, steps=5)
    page.mouse.up()


def test_dragging_the_alpha_and_lambda_sliders_sets_the_config(lab, shots):
    """α and λ are sliders: dragging α left and λ (a log slider) right changes their values, and the URL, which is
    the run's config, follows; the exact-value box behind the pencil shows the same value."""
    page, base, _ = lab
    from masklab.config import preset
    page.goto(f"{base}train?{query(**preset('seed').to_query())}")
    settle(page)
    drag_slider(page, "α (alpha)", -60)
    page.wait_for_url(re.compile(r"alpha=0\.[0-8]"))
    settle(page)
    drag_slider(page, "λ (lam)", 80)
    page.wait_for_url(re.compile(r"lam=(0\.0[0-9]*[1-9]|0\.[1-9]|[1-9])"))     # up from the seed's 0.001
    settle(page)
    alpha = float(re.search(r"alpha=([0-9.e-]+)", page.url).group(1))
    lam = float(re.search(r"lam=([0-9.e-]+)", page.url).group(1))
    assert alpha < 0.9 and lam > 1e-3
    page.locator("[data-testid='stSlider']").filter(has_text="α (alpha)").scroll_into_view_if_needed()
    page.screenshot(path=shots / "train-sliders.png")
    expect(page.get_by_text("Method: custom")).to_be_visible()
    assert exceptions(page) == []
