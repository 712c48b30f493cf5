"""The floor under the classroom bench: streamlit's own front end drawing one image.

Nothing of the explorer runs here. ``python -m benchmarks.bench_classroom --app floor`` serves
this page the way it serves the explorer, so the difference between the two is the explorer's
own cost, and what remains with this page is the cost of streamlit and of the clients."""
import numpy as np
import streamlit as st

st.title("Classroom floor")
# about the size of the Explore page's heatmap grid (a row of maps at 28 x 28, upscaled)
st.image(np.random.default_rng(0).integers(0, 256, (240, 960, 3), dtype=np.uint8))
