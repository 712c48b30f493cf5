"""Entry point: `streamlit run streamlit_app.py`."""
import streamlit as st

import explorer

st.set_page_config(page_title="explorer", layout="wide")
st.title("explorer")
st.write({name: spec.label for name, spec in explorer.METHODS.items()})
