"""The model card's facts, computed headless (the app caches them; nothing here needs streamlit)."""
import numpy as np
import torch

import explorer
from explorer.presentation import report
from explorer.inputs.data import sample_digits


def test_model_facts_of_the_bundled_digits_models():
    digits = sample_digits()
    x = torch.from_numpy(digits["clean"][:1]).float() / 255
    for bias_free in (False, True):
        entry = explorer.load_model("digits-cnn", bias_free=bias_free, device="cpu")
        facts = report.model_facts(entry.module, entry.labels, x)
        with torch.no_grad():
            want = torch.softmax(entry.module(x).double(), 1)[0].numpy()
        np.testing.assert_allclose(facts["probs"], want, rtol=1e-5, atol=1e-7)
        top = [p for _, _, p in facts["top"]]
        assert len(top) == 5 and top == sorted(top, reverse=True)
        assert facts["top"][0][0] == int(np.argmax(want))
        if bias_free:  # an X-DNN: homogeneous, nothing in the way
            assert facts["homogeneity_error"] < 1e-5 and facts["obstacles"] == []
        else:
            assert facts["homogeneity_error"] > 1e-3 and facts["obstacles"]
