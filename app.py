"""MaskLab app entry point (placeholder until the Streamlit lab lands): `streamlit run app.py`."""
import streamlit as st

st.set_page_config(page_title="MaskLab", layout="wide")
st.title("MaskLab")
st.write("Hard, sparse, binary attention masks that do not collapse. The lab pages are under construction; "
         "use `python -m masklab --help` meanwhile.")
