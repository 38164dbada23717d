"""Inspect: mask uploaded images or test samples with a checkpoint; overlay, predictions, kept area, PNG."""
from pathlib import Path

import streamlit as st
import torch
from PIL import Image

import ui
from masklab.checkpoint import CheckpointError, load_run
from masklab.config import Config
from masklab.data import test_samples
from masklab.figures import histogram_figure
from masklab.images import (ACCEPTED, IMAGE_TYPES, ImageError, enlarge, is_colour, open_image, overlay, png_bytes,
                            run_mask, to_tensor, to_uint8)
from masklab.views import BINS

ui.own_navigation()


def describe_run(run_id: str) -> str:
    return f"{run_id} ({ui.DEMOS[run_id]})" if run_id in ui.DEMOS else run_id


def colour_upload() -> str | None:
    """The name of the first uploaded colour picture (decoded at thumbnail scale), else None."""
    for upload in st.session_state.get("uploads") or []:
        try:
            if is_colour(open_image(upload.getvalue(), name=upload.name, draft=(64, 64))):
                return upload.name
        except ImageError:
            continue
    return None


def pick_demo(ids: list[str]) -> tuple[str | None, bool]:
    """Until the user picks a checkpoint (the selectbox, or a URL that names one), the demo that suits the uploads:
    the photo demo for a colour picture, the digit demo for grayscale ones. Returns (the colour upload's name or
    None, whether the selectbox's value was set here)."""
    if "checkpoint_chosen" not in st.session_state:
        st.session_state.checkpoint_chosen = "checkpoint" in st.query_params
    if st.session_state.checkpoint_chosen or not all(demo in ids for demo in ui.DEMOS):
        return None, False
    colour = colour_upload()
    want = ui.PHOTO_DEMO if colour else ui.DEMO if st.session_state.get("uploads") else None
    if want is None or st.session_state.get("checkpoint") == want:
        return colour, False
    st.session_state.checkpoint = want
    return colour, True


def load_checkpoint(path: str):
    """(cfg, model, summary) of a run folder, cached until its summary.json changes; or the error as a string."""
    summary = Path(path) / "summary.json"
    return _load(path, summary.stat().st_mtime if summary.exists() else 0.0)


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint…")
def _load(path: str, mtime: float):
    try:
        return load_run(Path(path))
    except CheckpointError as e:
        return f"Cannot load this checkpoint: {e}"


@st.cache_resource(max_entries=4, show_spinner="Opening the test set…")
def _test_set(cfg_json: str, n: int):
    try:
        return test_samples(Config.from_json(cfg_json), n)
    except Exception:                                  # e.g. an mnist:ROOT that is not on this machine
        return None


def samples_of(cfg: Config, n: int = 64):
    """(x, y) of the first n test images of the checkpoint's dataset, or None where it is unavailable."""
    return _test_set(cfg.to_json(), n)


def class_names(model, summary: dict) -> list[str]:
    return (summary.get("data") or {}).get("class_names") or [str(i) for i in range(model.classes)]


def input_size(summary: dict) -> tuple[int, int] | None:
    size = (summary.get("data") or {}).get("input_size")
    return tuple(size) if size else None


def expects(model, size, names) -> str:
    """What uploads are turned into, said plainly."""
    mode = "grayscale (1 channel)" if model.channels == 1 else "RGB (3 channels)"
    fit = f"resized to fit {size[1]}×{size[0]} pixels keeping their aspect ratio" if size else "kept at their size"
    classes = f"{', '.join(names[:10])}{'…' if len(names) > 10 else ''}"
    return (f"This model classifies {len(names)} classes ({classes}). Uploads are converted to {mode} "
            f"(transparent pixels become black, as masked pixels are) and {fit}. Accepted: {ACCEPTED}; EXIF "
            f"orientation is honoured.")


def inspect_image(name: str, x: torch.Tensor, model, cfg: Config, names: list[str], threshold: float,
                  truth: str | None = None, key: str = "") -> None:
    """One image: input, overlay, masked image, top-k predictions, kept area, histogram, mask PNG download."""
    r = run_mask(model, x, cfg.temperature_end, threshold)
    h, w = r.x.shape[-2:]
    with st.container(border=True):
        truth = f" · true label **{truth}**" if truth else ""
        st.markdown(f"**{name}**{truth} · {w}×{h} as the model sees it")
        cols = st.columns([1, 1, 1, 1.5, 1.5])
        mask_img = Image.fromarray(to_uint8(r.hard))
        for col, img, caption in zip(cols, [Image.fromarray(to_uint8(r.x)), overlay(r.x, r.hard),
                                            Image.fromarray(to_uint8(r.x * r.hard))],
                                     ["input", "mask overlay", "what the classifier sees"]):
            col.image(enlarge(img, 200), caption=caption, alt=f"{name}: {caption}")
        with cols[3]:
            st.metric("kept area", f"{r.area:.1%}", help=f"{int(r.hard.sum())} of {h * w} pixels have m_eval > "
                      f"{threshold:g}")
            st.caption("top predictions on x · hard mask")
            st.dataframe(r.top(names, 3), hide_index=True, alt=f"top predictions for {name}",
                         column_config={"probability": st.column_config.NumberColumn(format="percent")})
            st.download_button("Mask PNG", png_bytes(mask_img), f"{Path(name).stem}.mask.png", "image/png",
                               on_click="ignore", icon=":material/download:", key=f"png-{key or name}")
        cols[4].plotly_chart(histogram_figure(r.histogram(BINS), "mask values", threshold), key=f"hist-{key or name}")



st.title("Inspect")
runs = ui.manager()
ids = runs.saved_ids()
if not ids:
    st.info(f"No checkpoints under {runs.root} yet: train one on the Train page.", icon=":material/info:")
    st.stop()

left, right = st.columns([3, 2], vertical_alignment="bottom")
picked_for, set_here = pick_demo(ids)
default = None if set_here else ids.index(ui.DEMO) if ui.DEMO in ids else 0     # no default beside a value set here
chosen = left.selectbox("Checkpoint", ids, index=default, key="checkpoint",
                        bind="query-params", format_func=describe_run,
                        on_change=lambda: st.session_state.update(checkpoint_chosen=True),
                        help=f"A run folder under checkpoints/. `{ui.DEMO}` suits grayscale handwritten digits, "
                             f"`{ui.PHOTO_DEMO}` colour photos of CIFAR-10's ten classes (airplane, automobile, "
                             f"bird, cat, deer, dog, frog, horse, ship, truck); until you pick one, a colour "
                             f"upload gets `{ui.PHOTO_DEMO}` and a grayscale one `{ui.DEMO}`.")
threshold = right.slider("Threshold", 0.05, 0.95, 0.5, 0.05, key="threshold",
                         help="Hard mask = m_eval > threshold; the classifier sees x · hard mask.")
loaded = load_checkpoint(str(runs.path(chosen)))
if isinstance(loaded, str):
    st.error(loaded)
    st.stop()
cfg, model, summary = loaded
names, size = class_names(model, summary), input_size(summary)
st.caption(expects(model, size, names))
if picked_for and chosen == ui.PHOTO_DEMO:
    st.caption(f":material/photo_camera: `{ui.PHOTO_DEMO}` was picked because **{picked_for}** is a colour photo; "
               "choose another checkpoint above to override.")

uploads = st.file_uploader("Upload images", type=IMAGE_TYPES, accept_multiple_files=True, key="uploads",
                           help=f"Accepted: {ACCEPTED}.")
samples = samples_of(cfg)
# One widget per checkpoint: its options (and their labels) are that checkpoint's test set; the browser would keep
# showing the previous checkpoint's labels on the chips of a widget whose options changed under it.
picked = st.multiselect("Test samples", list(range(len(samples[0]))) if samples else [], key=f"samples-{chosen}",
                        default=list(range(min(2, len(samples[0])))) if samples else [],
                        format_func=lambda i: f"test #{i} (label {names[int(samples[1][i])]})",
                        help="Images from this checkpoint's own test set.")
if samples is None:
    st.caption(f"This checkpoint's test set ({cfg.data}) is not on this machine: upload images instead.")

for n, upload in enumerate(uploads or []):
    try:
        x = to_tensor(open_image(upload.getvalue(), name=upload.name), model.channels, size)
    except ImageError as e:
        st.error(str(e), icon=":material/broken_image:")
        continue
    inspect_image(upload.name, x, model, cfg, names, threshold, key=f"upload-{n}")
for i in picked:
    inspect_image(f"test #{i}", samples[0][i:i + 1], model, cfg, names, threshold,
                     truth=names[int(samples[1][i])], key=f"test-{i}")
if not uploads and not picked:
    st.info("Upload an image or pick test samples to see its mask.", icon=":material/image:")
