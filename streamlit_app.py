"""Entry point: `streamlit run streamlit_app.py`."""
import streamlit as st

st.set_page_config(page_title="Attribution explorer", layout="wide")

from explorer.ui import main  # noqa: E402  (page config must come first)

main()
