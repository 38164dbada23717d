"""Overview: the question in a few lines, and one-click presets that open the Train page set up."""
import streamlit as st

import ui
from masklab.config import PRESETS

ui.own_navigation()

st.title("MaskLab")
st.markdown(
    "**The question** (Cross Validated 384355): an attention branch gives each pixel a logit *l*, a gate turns "
    "it into a mask *m*, and the classifier sees only *x ⊙ m*. Which loss makes *m* (1) exactly 0 or 1, "
    "(2) mostly 0, and (3) still trainable by gradient descent? The asker's hard sigmoid with a concave log "
    "penalty collapsed to an all-zero mask.")
st.latex(r"\mathcal{L} = \mathrm{CE}\big(f(x \odot m), y\big) + \beta\,\tfrac{1}{HW}\textstyle\sum_{xy}"
         r"\big[\alpha\log(m+\lambda) + (1-\alpha)\log(1-m+\lambda)\big],\quad m = \mathrm{hardsigmoid}(l)")
st.markdown(
    "**Why it collapses:** near *m = 0* that penalty's slope is about β·α/λ (90 with the asker's values), and "
    "the hard sigmoid's gradient is exactly zero below *l = −3*: a pixel that closes can never reopen. "
    "**What works:** gates with a gradient everywhere (straight-through, binary or hard concrete) and a "
    "target area enforced by a Lagrange multiplier, with the target annealed from 1 so the classifier learns "
    "first. The seed loss above is a reconstruction: the question's formula was an image that is lost.")

PRESET_NOTES = {
    "seed": "the question's setup: watch it collapse",
    "hard-concrete": "the default: hard concrete under an annealed, damped area constraint with a floor, the gate "
                     "noise shrinking over the anneal, a bimodality term and a closing phase that commits the mask "
                     "and averages the classifier's weights",
    "hard-concrete-fine": "the default with a mask decided pixel by pixel (stride 1): better on the digits, "
                          "pieces on photos",
    "hard-concrete-dec01pm": "the default until 2026-12-02: the classifier of the last step, not averaged (the "
                             "photo demo, the front and the datasets table)",
    "hard-concrete-nov29": "the default until 2026-12-01: collapses on some photo targets",
    "hard-concrete-plain": "Louizos et al.'s expected-L0 area under an annealed target (published)",
    "ste": "threshold at 0, backward through a sigmoid",
    "binary-concrete": "Gumbel-sigmoid, temperature 1 → 0.5",
    "sorted-area": "exact area on the sorted mask (TorchRay)",
    "mse-zero": "the asker's first try: MSE to zero",
    "pooled-l1": "the answer: L1 on pooled features",
    "unmasked": "no mask: what a mask must not cost",
    "oracle-ink": "told the digit's own pixels: what a perfect mask gives (digits, shapes)",
    "oracle-box": "told the object's box (digits, shapes)",
}

st.subheader("Start from a preset")
cols = st.columns(4)
order = sorted(PRESETS, key=lambda n: list(PRESET_NOTES).index(n) if n in PRESET_NOTES else len(PRESET_NOTES))
for i, name in enumerate(order):
    with cols[i % 4].container(border=True, height="stretch"):
        st.markdown(f"**{name}**  \n{PRESET_NOTES.get(name, '')}")
        if st.button("Open in Train", key=f"preset-{name}", icon=":material/arrow_forward:",
                     on_click=ui.apply_preset, args=(name,)):
            st.switch_page(ui.TRAIN_PAGE)

st.subheader("Explore")
with st.container(horizontal=True):
    st.page_link(ui.INSPECT_PAGE, label="Inspect the shipped demos' masks (digits, photos)",
                 icon=":material/image_search:")
    st.page_link(ui.RUNS_PAGE, label="Compare saved runs", icon=":material/table_chart:")
    st.page_link("pages/loss_explorer.py", label="See where each loss's gradient dies",
                 icon=":material/ssid_chart:")
