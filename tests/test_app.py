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

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                    # `ui` lives at the repository root, next to app.py

import ui  # noqa: E402
from masklab.config import Config, preset  # noqa: E402
from masklab.images import IMAGE_TYPES  # noqa: E402
from masklab.runs import fit  # noqa: E402

TINY = dict(canvas=32, clutter=2, batch_size=8, steps=12, log_every=2, test_size=40, width=4, classifier_width=4)
PAGES = ["pages/home.py", "pages/train.py", "pages/runs.py", "pages/inspect.py", "pages/sweeps.py",
         "pages/loss_explorer.py"]


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
    at = app("pages/train.py", **{k: str(v) for k, v in preset("seed", steps=7, lr=0.01).to_query().items()})
    assert at.get_by_key("gate").value == "hard_sigmoid" and at.get_by_key("mask_loss").value == "seed"
    assert at.get_by_key("steps").value == 7 and at.get_by_key("lr").value == 0.01
    assert at.get_by_key("preset").value == "seed"


def test_a_preset_sets_the_method_fields_and_keeps_training_fields(lab):
    """Choosing a preset sets gate, loss, constraint and α β λ, and leaves steps alone."""
    at = configure(app("pages/train.py"), steps=33)
    at.get_by_key("preset").select("seed").run()
    assert at.get_by_key("gate").value == "hard_sigmoid" and at.get_by_key("constraint").value is False
    assert at.get_by_key("steps").value == 33
    assert any("seed" in c.value for c in at.caption)


def test_the_alpha_beta_lambda_sliders_set_the_config_and_the_url(lab):
    """α moves on a linear slider, β and λ on log sliders; each writes its field (the URL-bound number box) and
    the caption's preset follows; a value typed in the box becomes a stop of the slider, shown exactly."""
    at = app("pages/train.py")
    at.select_slider(key="alpha__slider").set_value(0.75).run()
    at.select_slider(key="lam__slider").set_value(1e-5).run()
    at.select_slider(key="beta__slider").set_value(0.0).run()
    assert not at.exception
    assert (at.get_by_key("alpha").value, at.get_by_key("lam").value, at.get_by_key("beta").value) == (0.75, 1e-5, 0.0)
    assert at.query_params["alpha"] == "0.75" and at.query_params["lam"] == "1e-05"
    assert any("custom" in c.value for c in at.caption)
    lam = at.select_slider(key="lam__slider")
    assert lam.options.index("1e-05") < lam.options.index("0.001") < lam.options.index("10")   # log-spaced stops
    assert "off" in at.select_slider(key="beta__slider").options                                # beta 0 reads "off"
    at.get_by_key("lam").set_value(0.00123).run()                 # an exact value typed in the box
    assert at.select_slider(key="lam__slider").value == 0.00123 and "0.00123" in at.select_slider(key="lam__slider").options
    at.get_by_key("preset").select("seed").run()                  # a preset moves the sliders too
    assert at.select_slider(key="alpha__slider").value == 0.9 and at.select_slider(key="lam__slider").value == 1e-3


def test_every_knob_with_a_slider_offers_only_values_config_accepts(lab):
    """The slider stops come from the same Knob as Config's checks: every stop of every slider is a valid value."""
    from masklab.config import KNOBS
    for name, knob in KNOBS.items():
        if knob.slider:
            for v in knob.stops(getattr(Config(), name)):
                Config(**{name: v, **({"warmup": 0.0, "anneal_frac": 0.0, "finetune": 0.0}
                                      if name in ("warmup", "anneal_frac", "finetune") else {})})


def test_start_trains_in_the_background_and_shows_curves_masks_and_histograms(lab):
    """Start puts ?run= in the URL, the run trains on its thread and is saved, and the panel draws it all."""
    at = configure(app("pages/train.py"), device="cpu", **TINY)
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


def test_a_training_run_draws_its_charts_as_images_unless_asked_for_interactive_ones(lab, monkeypatch):
    """While the run trains, curves and histograms are server-drawn PNGs (cheap for the browser, so the training
    keeps its cores), drawn once per record for every tab; the toggle brings the interactive figures back at once,
    and the run's end does too."""
    from masklab import plots
    real, drawn = plots.curves_png, []
    monkeypatch.setattr(plots, "curves_png", lambda records: drawn.append(len(records)) or real(records))
    at = configure(app("pages/train.py"), device="cpu", **{**TINY, "steps": 100000})
    at.button(key="start").click().run()
    run = ui.manager().get(run_param(at))
    wait(lambda: run.view().step >= 2 and run.view().snapshots)
    at.button(key="pause").click().run()
    wait(lambda: run.view().status == "paused")
    at.run()
    assert not at.get("plotly_chart") and images(at) == 8 + 2     # the mask overlays, curves and histograms
    pngs = [img.url for node in at.get("image") for img in node.proto.imgs if len(node.proto.imgs) == 1]
    assert len(pngs) == 2
    other = app("pages/train.py", run=run.id)                     # a second tab on the same run: same figures,
    assert images(other) == 10 and drawn.count(len(run.view().records)) == 1     # drawn once for both
    at.toggle(key="train-interactive").set_value(True).run()
    assert len(at.get("plotly_chart")) == 2 and images(at) == 8
    at.toggle(key="train-interactive").set_value(False).run()
    at.button(key="stop").click().run()
    assert run.join(60)
    at.run()
    assert len(at.get("plotly_chart")) == 2 and images(at) == 8 and not at.exception   # ended: interactive


def test_pause_step_resume_and_stop_from_the_page(lab):
    """Pause holds the run at a record, Step advances exactly one record, Resume continues, Stop saves it."""
    at = configure(app("pages/train.py"), device="cpu", **{**TINY, "steps": 100000})
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
    at = app("pages/train.py")
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
    at = configure(app("pages/train.py"), device="cpu", **TINY)
    at.button(key="start").click().run()
    run_id = run_param(at)
    assert ui.manager().get(run_id).join(60)
    second = app(run=run_id)
    second.switch_page("pages/train.py")
    second.query_params["run"] = run_id
    second.run()
    assert any(s.value == run_id for s in second.subheader)
    st.cache_resource.clear()                                    # as after a server restart
    third = app("pages/train.py")
    third.query_params["run"] = run_id
    third.run()
    assert any(s.value == run_id for s in third.subheader) and not third.exception
    assert status(third) == "done" and images(third) == 8


def test_a_bad_run_id_in_the_url_is_refused(lab):
    """A ?run= that could escape checkpoints/ is refused with a message, not an exception."""
    at = app("pages/train.py")
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
    at = app("pages/runs.py")
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
    at = app("pages/inspect.py")
    before = images(at)
    at.file_uploader(key="uploads").upload("photo.png", _png("RGBA")).run()
    assert not at.exception and images(at) == before + 3
    assert any(d.proto.label == "Mask PNG" for d in at.get("download_button"))
    assert any("grayscale" in c.value for c in at.caption)
    at.file_uploader(key="uploads").upload("junk.png", b"not an image").run()
    assert not at.exception and any("not an image" in e.value for e in at.error)


def _photo(colour: bool, seed: int = 0) -> bytes:
    """A 60x40 RGB PNG of noise: three different channels (a colour photo) or one channel repeated (a scan)."""
    a = np.random.default_rng(seed).integers(0, 256, (40, 60, 3 if colour else 1), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.repeat(a, 3 // a.shape[2], axis=2), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _demos(root: Path) -> None:
    """Two tiny runs under root/checkpoints named as the shipped demos: digits (1 channel), shapes (3 channels)."""
    (root / "checkpoints" / saved_run(root)).rename(root / "checkpoints" / ui.DEMO)
    (root / "checkpoints" / saved_run(root, data="shapes")).rename(root / "checkpoints" / ui.PHOTO_DEMO)


def test_inspect_picks_the_demo_that_suits_the_upload_until_the_user_chooses(lab):
    """Both demos shipped: a colour upload switches to the photo demo (and says so), a grayscale one back to the
    digit demo; once the user picks a checkpoint, uploads no longer change it."""
    _demos(lab)
    at = app("pages/inspect.py")
    checkpoint = lambda: at.get_by_key("checkpoint").value
    assert checkpoint() == ui.DEMO
    at.file_uploader(key="uploads").set_value([("photo.png", _photo(True), "image/png")]).run()
    assert not at.exception and checkpoint() == ui.PHOTO_DEMO
    assert any("photo.png** is a colour photo" in c.value for c in at.caption)
    assert any("RGB (3 channels)" in c.value for c in at.caption)
    assert images(at) == 3 * (1 + len(at.multiselect[0].value))                    # the upload, test samples
    at.file_uploader(key="uploads").set_value([("scan.png", _photo(False), "image/png")]).run()
    assert not at.exception and checkpoint() == ui.DEMO
    at.get_by_key("checkpoint").set_value(ui.PHOTO_DEMO).run()                  # the user's choice
    at.file_uploader(key="uploads").set_value([("scan2.png", _photo(False, 1), "image/png")]).run()
    assert not at.exception and checkpoint() == ui.PHOTO_DEMO


def test_inspect_keeps_the_checkpoint_a_link_names_whatever_is_uploaded(lab):
    _demos(lab)
    at = app("pages/inspect.py", checkpoint=ui.DEMO)
    at.file_uploader(key="uploads").set_value([("photo.png", _photo(True), "image/png")]).run()
    assert not at.exception and at.get_by_key("checkpoint").value == ui.DEMO
    assert not any("colour photo" in c.value for c in at.caption)


def test_loss_explorer_plots_every_method_and_states_the_seed_slope(lab):
    """All methods at once: four figures, one table row each, and the seed's β·α/λ slope in the text."""
    at = app("pages/loss_explorer.py")
    from masklab.explain import METHODS
    at.get_by_key("explore-methods").set_value(list(METHODS)).run()
    assert not at.exception and len(at.get("plotly_chart")) == 4
    assert len(at.dataframe[0].value) == len(METHODS)
    assert any("≈ 90" in m.value for m in at.markdown)


# --- hostile input and faults (issue 5) -------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("alpha", "2"), ("alpha", "nan"), ("lam", "0"), ("steps", "-5"),
                                          ("steps", "abc"), ("lr", "inf"), ("gate", "bogus")])
def test_bad_values_in_the_url_are_ignored_with_a_visible_note(lab, field, value):
    """A shared link with a refused value: the field keeps its default, the sidebar says which value was ignored
    and why, and the setup that remains is valid (Start enabled: never a NaN run)."""
    at = app("pages/train.py", **{field: value})
    notes = [w.value for w in at.sidebar.warning]
    assert any(f"?{field}={value}" in n for n in notes), notes
    assert at.get_by_key(field).value == getattr(Config(), field)
    assert not labels(at)["start"]


def test_inspect_takes_the_whole_hostile_corpus_in_one_upload(lab):
    """Every file of the hostile corpus at once: refused ones get one error naming the file, the others their
    overlay, masked image and histogram; the page survives and keeps going after a refusal. (.svg and .ico never
    reach the page: the uploader's type filter refuses them in the browser, see test_browser.)"""
    from test_hostile import CASES
    CASES = [c for c in CASES if c[0].rsplit(".", 1)[1] in IMAGE_TYPES]
    assert len(CASES) >= 20
    saved_run(lab)
    at = app("pages/inspect.py")
    at.multiselect[0].set_value([]).run()                                       # the test samples
    files = [(name, make(), "application/octet-stream") for name, make, _ in CASES]
    at.file_uploader(key="uploads").set_value(files).run()
    assert not at.exception
    refused = {name: why for name, _, why in CASES if why}
    errors = [e.value for e in at.error]
    assert len(errors) == len(refused)
    for name, why in refused.items():
        assert any(e.startswith(name) and why in e for e in errors), name
    assert images(at) == 3 * (len(CASES) - len(refused))


def test_a_malicious_checkpoint_in_checkpoints_is_refused_on_inspect(lab):
    """A run folder whose model.pt would create a file when unpickled: Inspect shows an error, nothing runs."""
    run_id = saved_run(lab)
    proof = lab / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(proof), "w"))

    import torch
    torch.save({"classifier.head.weight": Payload()}, lab / "checkpoints" / run_id / "model.pt")
    at = app("pages/inspect.py")
    assert not at.exception and any("nothing in the file was executed" in e.value for e in at.error)
    assert not proof.exists()


@pytest.mark.parametrize("error, shown", [(ValueError("boom in the worker"), "ValueError: boom in the worker"),
                                          ("oom", "out of memory")])
def test_a_worker_failure_is_shown_and_the_server_lives_on(lab, monkeypatch, error, shown):
    """An exception (or an out-of-memory error) inside the training thread ends that run as 'failed' with the
    reason on the page; the other pages still render and a new run can start."""
    import torch

    import masklab.train
    calls = {"n": 0}
    real = masklab.train.objective

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB") if error == "oom" else error
        return real(*args, **kwargs)

    monkeypatch.setattr(masklab.train, "objective", failing)
    at = configure(app("pages/train.py"), device="cpu", **TINY)
    at.button(key="start").click().run()
    run = ui.manager().get(run_param(at))
    assert run.join(60)
    at.run()
    assert not at.exception and status(at) == "failed"
    assert any(shown in e.value for e in at.error), [e.value for e in at.error]
    if error == "oom":
        assert any("lower batch_size" in e.value for e in at.error)
    assert (lab / "checkpoints" / run.id / "summary.json").is_file()       # the steps before the fault are kept
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    at.switch_page("pages/train.py").run()
    assert not labels(at)["start"]


def test_pause_and_stop_from_a_second_tab(lab):
    """Two sessions on one run: the second pauses and stops it, the first sees it (one manager per server)."""
    first = configure(app("pages/train.py"), device="cpu", **{**TINY, "steps": 100000})
    first.button(key="start").click().run()
    run_id = run_param(first)
    run = ui.manager().get(run_id)
    wait(lambda: run.view().step >= 2)
    second = app("pages/train.py", run=run_id)
    assert any(s.value == run_id for s in second.subheader)
    second.button(key="pause").click().run()
    wait(lambda: run.view().status == "paused")
    first.run()
    assert status(first) == "paused"
    second.button(key="stop").click().run()
    assert run.join(60)
    first.run()
    assert status(first) == "stopped" and not first.exception and not second.exception


@pytest.mark.parametrize("bad", ["../../etc", "/etc/passwd", "..", "no-such-run"])
def test_inspect_ignores_a_checkpoint_outside_the_list(lab, bad):
    """?checkpoint= can only pick a folder listed under checkpoints/: anything else falls back to a listed one."""
    run_id = saved_run(lab)
    at = app("pages/inspect.py", checkpoint=bad)
    assert not at.exception and at.get_by_key("checkpoint").value == run_id


def test_the_dataset_picker_writes_the_spec_and_checks_a_folder_before_the_run(lab):
    """Datasets by name: 'my image folder' asks for a path, says what layout it expects and refuses a bad one
    (Start disabled); a good folder is described (classes, images) and becomes the URL's data=folder:PATH."""
    good = lab / "photos"
    for c in ("cat", "dog"):
        (good / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(good / c / f"{i}.png")
    at = app("pages/train.py")
    at.selectbox(key="data__kind").select("my image folder").run()
    at.text_input(key="data__path").input(str(lab / "nowhere")).run()
    assert not at.exception and any("is not a folder" in e.value and "PATH/<class>/<image>" in e.value
                                    for e in at.sidebar.error)
    assert labels(at)["start"]                                      # disabled: nothing starts on a bad folder
    at.text_input(key="data__path").input(str(good)).run()
    assert any("2 classes (cat, dog), 6 images" in c.value for c in at.sidebar.caption)
    assert at.query_params["data"] == f"folder:{good}" and not labels(at)["start"]
    at.selectbox(key="data__kind").select("shapes (built in)").run()
    assert at.query_params["data"] == "shapes" and at.get_by_key("data").value == "shapes"


@pytest.mark.parametrize("query, shown", [(dict(gate="hard_sigmoid", mask_loss="seed", constraint="false"), True),
                                          (dict(gate="top_k", mask_loss="none", constraint="false"), True),
                                          (dict(gate="none", mask_loss="none", constraint="false"), False)])
def test_the_closing_phase_knob_shows_for_every_learned_mask(lab, query, shown):
    """finetune freezes any learned mask for the last part of training (train.py), not only a constrained one: the
    sidebar's Method section offers it for the seed's hard sigmoid too; for the unmasked classifier it stays under
    "More settings"."""
    at = app("pages/train.py", **query)
    more = at.sidebar.expander[0]
    assert more.label == "More settings"
    tucked = {w.key for w in more.get("slider") + more.get("select_slider")}
    assert ("finetune__slider" in tucked) != shown, sorted(tucked)


def test_the_shared_memo_builds_once_per_version_for_every_session_and_keeps_the_newest(monkeypatch):
    """ui.shared_memo: a (name, version) pair is built once; a new version is built again; past SHARED_ENTRIES the
    least recently used entry goes."""
    monkeypatch.setattr(ui, "_SHARED", {})
    monkeypatch.setattr(ui, "SHARED_ENTRIES", 2)
    built = []
    make = lambda v: (lambda: built.append(v) or f"figure {v}")
    assert ui.shared_memo("f", 1, make(1)) == ui.shared_memo("f", 1, make(1)) == "figure 1" and built == [1]
    ui.shared_memo("f", 2, make(2))
    ui.shared_memo("f", 1, make(1))                     # used again: now the newest
    ui.shared_memo("g", 1, make("g"))                   # a third entry evicts ("f", 2)
    ui.shared_memo("f", 1, make(1))
    ui.shared_memo("f", 2, make(2))
    assert built == [1, 2, "g", 2]


@pytest.fixture
def static_serving(lab, monkeypatch):
    """Streamlit serving static/ (the repository's .streamlit/config.toml sets it; AppTest does not read it), with
    the live feed's folder under lab/static."""
    from streamlit import config
    monkeypatch.setattr(ui, "STATIC", lab / "static")
    config.set_option("server.enableStaticServing", True)
    st.cache_resource.clear()
    yield lab / "static" / "live"
    config.set_option("server.enableStaticServing", False)


def components(at: AppTest) -> dict[str, dict]:
    """The custom components on the page: name -> the data mounted with."""
    return {c.proto.component_name: json.loads(c.proto.json) for c in at.get("bidi_component")}


def test_a_live_run_is_shown_from_the_feed_without_polling_the_page(static_serving):
    """With static serving the status line and the charts are components fed by the run's file (no Streamlit
    progress or image elements); asking for interactive charts brings the polled Streamlit charts back; a lost
    feed falls back to the polled status line; the ended run is drawn by Streamlit."""
    at = configure(app("pages/train.py"), device="cpu", **{**TINY, "steps": 100000})
    at.button(key="start").click().run()
    run = ui.manager().get(run_param(at))
    wait(lambda: run.view().step >= 4)
    at.run()
    feed, mounted = ui.live_feed(), components(at)
    line = mounted["masklab.status_line"]
    assert line["state"]["status"] == "running" and line["state"]["run"] == run.id
    assert line["url"] == f"/app/static/live/{feed.folder.name}/{run.id}.json"
    assert (static_serving / feed.folder.name / f"{run.id}.json").is_file()
    assert mounted["masklab.live_charts"]["url"] == line["url"] and status(at) is None
    assert not at.get("progress") and images(at) == 0
    at.toggle(key="train-interactive").set_value(True).run()
    assert "masklab.live_charts" not in components(at) and at.get("plotly_chart")
    at.session_state["status-feed-lost"] = True
    at.run()
    assert "masklab.status_line" not in components(at) and status(at) == "running" and at.get("progress")
    run.stop()
    assert run.join(60)
    at.run()
    assert status(at) == "stopped" and not components(at) and not at.exception


def test_the_feed_url_follows_the_servers_base_path(static_serving):
    from streamlit import config
    config.set_option("server.baseUrlPath", "/lab/")
    try:
        assert ui.static_url("live/x.json") == "/lab/app/static/live/x.json"
    finally:
        config.set_option("server.baseUrlPath", "")
    assert ui.static_url("live/x.json") == "/app/static/live/x.json"
