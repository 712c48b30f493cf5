"""Entry point from a clone: `streamlit run streamlit_app.py` (installed: `explorer app`)."""
from explorer.ui.app import run

run()
