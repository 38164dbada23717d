"""Loss explorer: each method's per-pixel loss and gradient against the mask value and the logit."""
import pandas as pd
import streamlit as st

import ui
from masklab.explain import METHODS, Knobs, summary
from masklab.figures import explorer_figures

ui.own_navigation()

st.title("Loss explorer")
st.markdown(
    "Each method's mask term for **one pixel**, and the gradient training backpropagates from it, first against "
    "the mask value *m*, then against the logit *l* through the method's gate (straight-through where the method "
    "uses it; the concrete gates averaged over their noise). Shaded: logits where the gradient is exactly zero. "
    "α, β, λ and τ are the Train page's (same URL parameters).")

with st.container(horizontal=True):
    alpha, beta, lam, temperature = (ui.field_widget(f) for f in ("alpha", "beta", "lam", "temperature"))
    mu = st.number_input("multiplier μ", min_value=0.0, value=1.0, step=0.1, key="mu",
                         help="The Lagrange multiplier of the target-area constraint (learned during training; "
                              "set here to compare scales).")
chosen = st.pills("Methods", list(METHODS), selection_mode="multi", default=["seed", "hard-concrete"],
                  key="explore-methods", help="Presets whose mask term is plotted.")
knobs = Knobs(alpha, beta, lam, temperature, mu)
methods = [METHODS[name] for name in chosen or []]

if not methods:
    st.info("Pick at least one method.", icon=":material/info:")
    st.stop()
figs = explorer_figures(methods, knobs)
on_logit = [m.preset for m in methods if m.on_mask is None]
if on_logit:
    st.caption(f"{', '.join(on_logit)}: the area term is a function of the logit, not of m, so it appears only in "
               "the lower two plots.")
for r, row in enumerate((figs[:2], figs[2:])):
    for c, (col, fig) in enumerate(zip(st.columns(2), row)):
        col.plotly_chart(fig, key=f"explore-{2 * r + c}")

st.dataframe(pd.DataFrame([summary(m, knobs) for m in methods]), hide_index=True,
             alt="per-method slopes at m = 0 and m = 1 and the logits where gradients vanish")
for m in methods:
    st.markdown(f"- **{m.preset}** (gate `{m.gate}`): ${m.term}$ — {m.note}")

slope = beta * alpha / lam
st.markdown(
    f"**The seed's collapse in one picture.** With α = {alpha:g}, β = {beta:g}, λ = {lam:g}, the seed term's slope "
    f"at m = 0 is β·α/λ ≈ {slope:.3g}: near zero the penalty is a cliff, so any pixel that drifts down is pulled "
    "to 0 hard. Under the hard sigmoid, a logit below −3 gives m = 0 exactly *and* dm/dl = 0, so neither the "
    "penalty nor cross-entropy can ever reopen it: the mask only closes. The concrete gates and the expected-L0 "
    "term keep a gradient at every logit, and the target-area constraint replaces the cliff with a multiplier "
    "that only pushes while the area is above target.")
