"""The Streamlit app. The only package that imports streamlit."""
from explorer.ui.app import main

__all__ = ["main"]
