"""AppTest over every page of the Streamlit lab: runs start, step, pause, stop and show up everywhere.

Runs land in a temporary checkpoints/ (the working directory), the process-wide RunManager is cleared between
tests, and every worker thread is stopped and joined in teardown. `run_every` never ticks under AppTest, so a
test reruns the script itself after waiting on the run.
"""
import io
import json
import sys
import time
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                    # `ui` lives at the repository root, next to app.py

import ui  # noqa: E402
from masklab.config import Config, preset  # noqa: E402
from masklab.runs import fit  # noqa: E402

TINY = dict(canvas=32, clutter=2, batch_size=8, steps=12, log_every=2, test_size=40, width=4, classifier_width=4)
PAGES = ["app_pages/home.py", "app_pages/train.py", "app_pages/runs.py", "app_pages/inspect_masks.py",
         "app_pages/loss_explorer.py"]


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A fresh run manager rooted in tmp_path/checkpoints; its workers are stopped and joined afterwards."""
    monkeypatch.chdir(tmp_path)
    st.cache_resource.clear()
    yield tmp_path
    ui.manager().shutdown(timeout=60)
    st.cache_resource.clear()


def app(page: str | None = None, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def configure(at: AppTest, **values) -> AppTest:
    """Set Train-page widgets by field name, then rerun once."""
    for name, value in values.items():
        widget = at.get_by_key(name)
        widget.set_value(value)
    at.run()
    assert not at.exception, at.exception
    return at


def saved_run(root: Path, **overrides) -> str:
    """A finished tiny run folder under root/checkpoints, written by the library's own fit()."""
    run_dir, _ = fit(Config(**{**TINY, "device": "cpu", **overrides}), root=root / "checkpoints")
    return run_dir.name


def wait(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting for the run"
        time.sleep(0.02)


def images(at: AppTest) -> int:
    """Pictures on the page (one st.image call may show several)."""
    return sum(len(node.proto.imgs) for node in at.get("image"))


def status(at: AppTest) -> str | None:
    """The run status badge's text."""
    found = [m.value.split("[", 1)[1].rstrip("]") for m in at.markdown if "-badge[" in m.value]
    return found[0] if found else None


def run_param(at: AppTest) -> str:
    value = at.query_params["run"]
    return value if isinstance(value, str) else value[-1]


def labels(at: AppTest) -> dict[str, bool]:
    """Button key -> disabled."""
    return {b.key: b.disabled for b in at.button}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(lab, page):
    """Each page, with a saved run on disk, renders with no exception and a title."""
    saved_run(lab)
    at = app(page)
    assert at.title and not at.exception


def test_train_page_reads_its_setup_from_the_url(lab):
    """Config widgets are bound to the URL: a link with field values reproduces the setup and its preset."""
    at = app("app_pages/train.py", **{k: str(v) for k, v in preset("seed", steps=7, lr=0.01).to_query().items()})
    assert at.get_by_key("gate").value == "hard_sigmoid" and at.get_by_key("mask_loss").value == "seed"
    assert at.get_by_key("steps").value == 7 and at.get_by_key("lr").value == 0.01
    assert at.get_by_key("preset").value == "seed"


def test_a_preset_sets_the_method_fields_and_keeps_training_fields(lab):
    """Choosing a preset sets gate, loss, constraint and α β λ, and leaves steps alone."""
    at = configure(app("app_pages/train.py"), steps=33)
    at.get_by_key("preset").select("seed").run()
    assert at.get_by_key("gate").value == "hard_sigmoid" and at.get_by_key("constraint").value is False
    assert at.get_by_key("steps").value == 33
    assert any("seed" in c.value for c in at.caption)


def test_start_trains_in_the_background_and_shows_curves_masks_and_histograms(lab):
    """Start puts ?run= in the URL, the run trains on its thread and is saved, and the panel draws it all."""
    at = configure(app("app_pages/train.py"), device="cpu", **TINY)
    at.button(key="start").click().run()
    run_id = run_param(at)
    run = ui.manager().get(run_id)
    assert run is not None and run.join(60)
    at.run()
    assert not at.exception
    assert run.view().status == "done" and (lab / "checkpoints" / run_id / "summary.json").is_file()
    curves, histograms = (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    assert {t["name"] for t in curves["data"]} >= {"loss", "area", "target"}
    assert [t["type"] for t in histograms["data"]] == ["bar", "heatmap"]   # now, and over training
    assert images(at) == 8                                      # the fixed test images with their masks
    assert status(at) == "done"


def test_pause_step_resume_and_stop_from_the_page(lab):
    """Pause holds the run at a record, Step advances exactly one record, Resume continues, Stop saves it."""
    at = configure(app("app_pages/train.py"), device="cpu", **{**TINY, "steps": 100000})
    at.button(key="start").click().run()
    run = ui.manager().get(run_param(at))
    wait(lambda: run.view().step >= 2)
    at.button(key="pause").click().run()
    wait(lambda: run.view().status == "paused")
    held = run.view().step
    time.sleep(0.3)
    at.run()
    buttons = labels(at)
    assert run.view().step == held and not buttons["step"] and buttons["pause"]
    at.button(key="step").click().run()
    wait(lambda: run.view().step == held + 2 and run.view().status == "paused")
    at.run()
    at.button(key="resume").click().run()
    wait(lambda: run.view().step > held + 2)
    at.run()
    at.button(key="stop").click().run()
    assert run.join(60)
    at.run()
    view = run.view()
    assert view.status == "stopped" and "stopped at step" in view.reason
    assert "pause" not in labels(at) and not at.exception


def test_the_seed_preset_shows_the_collapse_warning(lab):
    """The seed setup closes every gate within a few steps, and the page says so, why, and what to try."""
    at = app("app_pages/train.py")
    at.get_by_key("preset").select("seed").run()
    at = configure(at, device="cpu", canvas=32, clutter=2, batch_size=8, steps=12, log_every=4, test_size=40,
                   lr=0.02)
    at.button(key="start").click().run()
    assert ui.manager().get(run_param(at)).join(60)
    at.run()
    titles = [w.proto.title for w in at.warning]
    assert any("Mask collapsed" in t and "area → 0" in t for t in titles), titles
    body = " ".join(w.value for w in at.warning)
    assert "β·α/λ" in body and "hard-concrete" in body


def test_a_url_with_run_reattaches_after_a_refresh_and_a_restart(lab):
    """?run=<id> shows the run from a new session, and from its folder once the server's memory is gone."""
    at = configure(app("app_pages/train.py"), device="cpu", **TINY)
    at.button(key="start").click().run()
    run_id = run_param(at)
    assert ui.manager().get(run_id).join(60)
    second = app(run=run_id)
    second.switch_page("app_pages/train.py")
    second.query_params["run"] = run_id
    second.run()
    assert any(s.value == run_id for s in second.subheader)
    st.cache_resource.clear()                                    # as after a server restart
    third = app("app_pages/train.py")
    third.query_params["run"] = run_id
    third.run()
    assert any(s.value == run_id for s in third.subheader) and not third.exception
    assert status(third) == "done" and images(third) == 8


def test_a_bad_run_id_in_the_url_is_refused(lab):
    """A ?run= that could escape checkpoints/ is refused with a message, not an exception."""
    at = app("app_pages/train.py")
    at.query_params["run"] = "../../etc"
    at.run()
    assert not at.exception and any("not a run id" in e.value for e in at.error)


def test_home_presets_open_the_train_page_set_up(lab):
    """A preset button on the overview applies the preset and switches to Train."""
    at = app()
    at.button(key="preset-seed").click().run()
    assert not at.exception and at.title[0].value == "Train"
    assert at.get_by_key("gate").value == "hard_sigmoid" and at.get_by_key("preset").value == "seed"


def test_runs_page_compares_downloads_and_deletes_with_confirmation(lab):
    """Two saved runs are tabled, compared (curves, diff, Pareto), downloadable, and deletable only when confirmed."""
    first, second = saved_run(lab), saved_run(lab, seed=1)
    at = app("app_pages/runs.py")
    assert set(at.dataframe[0].value["run"]) == {first, second}
    assert len(at.get("plotly_chart")) == 2                     # overlaid curves, Pareto scatter
    assert "seed" in at.dataframe[1].value.index                # the config diff
    assert len(at.get("download_button")) == 3
    chosen = at.get_by_key("one-run").value
    assert at.button(key="delete").disabled
    at.checkbox(key="confirm-delete").check().run()
    at.button(key="delete").click().run()
    assert not at.exception and not (lab / "checkpoints" / chosen).exists()
    assert any("Deleted" in s.value for s in at.success)


def _png(mode: str, size=(70, 45)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else (200, 40, 40, 128)[: len(mode)]).save(buffer, format="PNG")
    return buffer.getvalue()


def test_inspect_masks_uploads_and_refuses_broken_files(lab):
    """An uploaded RGBA photo of any size is converted and masked (overlay, predictions, PNG); junk is an error."""
    saved_run(lab)
    at = app("app_pages/inspect_masks.py")
    before = images(at)
    at.file_uploader(key="uploads").upload("photo.png", _png("RGBA")).run()
    assert not at.exception and images(at) == before + 3
    assert any(d.proto.label == "Mask PNG" for d in at.get("download_button"))
    assert any("grayscale" in c.value for c in at.caption)
    at.file_uploader(key="uploads").upload("junk.png", b"not an image").run()
    assert not at.exception and any("not an image" in e.value for e in at.error)


def test_loss_explorer_plots_every_method_and_states_the_seed_slope(lab):
    """All methods at once: four figures, one table row each, and the seed's β·α/λ slope in the text."""
    at = app("app_pages/loss_explorer.py")
    from masklab.explain import METHODS
    at.get_by_key("explore-methods").set_value(list(METHODS)).run()
    assert not at.exception and len(at.get("plotly_chart")) == 4
    assert len(at.dataframe[0].value) == len(METHODS)
    assert any("≈ 90" in m.value for m in at.markdown)
