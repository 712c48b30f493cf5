"""The app's entry script: ``streamlit run <this file>`` (what ``explorer app`` runs).

Streamlit executes this file on every rerun, so the work is in ``run()``; the repository's
top-level ``streamlit_app.py`` calls the same function.
"""
import streamlit as st


def run() -> None:
    st.set_page_config(page_title="Attribution explorer", layout="wide")
    from explorer.ui import main  # page config must come first
    main()


if __name__ == "__main__":  # as streamlit runs a script
    run()
