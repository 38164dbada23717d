"""Inspect: mask uploaded images or test samples with a checkpoint; overlay, predictions, kept area, PNG."""
import streamlit as st

import ui
from masklab.images import ACCEPTED, ImageError, open_image, to_tensor

ui.own_navigation()

st.title("Inspect")
runs = ui.manager()
ids = runs.saved_ids()
if not ids:
    st.info(f"No checkpoints under {runs.root} yet: train one on the Train page.", icon=":material/info:")
    st.stop()

left, right = st.columns([3, 2], vertical_alignment="bottom")
chosen = left.selectbox("Checkpoint", ids, index=ids.index(ui.DEMO) if ui.DEMO in ids else 0, key="checkpoint",
                        bind="query-params", format_func=ui.describe_run,
                        help="A run folder under checkpoints/ (the shipped demo by default).")
threshold = right.slider("Threshold", 0.05, 0.95, 0.5, 0.05, key="threshold",
                         help="Hard mask = m_eval > threshold; the classifier sees x · hard mask.")
loaded = ui.load_checkpoint(str(runs.path(chosen)))
if isinstance(loaded, str):
    st.error(loaded)
    st.stop()
cfg, model, summary = loaded
names, size = ui.class_names(model, summary), ui.input_size(summary)
st.caption(ui.expects(model, size, names))

uploads = st.file_uploader("Upload images", type=ui.IMAGE_TYPES, accept_multiple_files=True, key="uploads",
                           help=f"Accepted: {ACCEPTED}.")
samples = ui.test_samples(cfg)
picked = st.multiselect("Test samples", list(range(len(samples[0]))) if samples else [], key="samples",
                        default=list(range(min(2, len(samples[0])))) if samples else [],
                        format_func=lambda i: f"test #{i} (label {names[int(samples[1][i])]})",
                        help="Images from this checkpoint's own test set.")

for n, upload in enumerate(uploads or []):
    try:
        x = to_tensor(open_image(upload.getvalue(), name=upload.name), model.channels, size)
    except ImageError as e:
        st.error(str(e), icon=":material/broken_image:")
        continue
    ui.inspect_image(upload.name, x, model, cfg, names, threshold, key=f"upload-{n}")
for i in picked:
    ui.inspect_image(f"test #{i}", samples[0][i:i + 1], model, cfg, names, threshold,
                     truth=names[int(samples[1][i])], key=f"test-{i}")
if not uploads and not picked:
    st.info("Upload an image or pick test samples to see its mask.", icon=":material/image:")
