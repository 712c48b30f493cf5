"""What people read: tables, figures and sentences (no streamlit here)."""
