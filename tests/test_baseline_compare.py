"""Baselines side by side: maps and completeness targets against closed forms."""
import pytest
import torch

import explorer
from explorer.analyses.baseline_compare import compare_baselines, named_baselines
from helpers import ExpSum

F64 = torch.float64


@pytest.fixture(scope="module")
def setup():
    gen = torch.Generator().manual_seed(2)
    coef = torch.randn(3, 16, generator=gen, dtype=F64)
    x = torch.rand(2, 1, 4, 4, generator=gen, dtype=F64)
    refs = torch.rand(5, 1, 4, 4, generator=gen, dtype=F64)
    return ExpSum(coef).eval(), coef, x, refs


def test_each_baseline_gets_its_closed_form_map_and_reference(setup):
    model, coef, x, refs = setup
    target = torch.tensor([1, 2])
    c = coef[target].view(2, 1, 4, 4)
    bases = named_baselines(x, references=refs, image=refs[0])
    # a model fed pixels: the zero input is the black image, shown once under both names
    assert list(bases) == ["zero = black", "blur", "uniform", "gaussian",
                           "mean of 5 references", "your image"]
    assert bases["mean of 5 references"].shape == (2, 5, 1, 4, 4)
    results = compare_baselines(model, x, target, bases, steps=64, rule="gauss_legendre")
    for r in results:
        b = bases[r.name]
        if b.dim() == 5:  # IG of a sum of exponentials: c (e^x - e^b), averaged over references
            expected = (c.unsqueeze(1) * (torch.exp(x).unsqueeze(1) - torch.exp(b))).mean(1)
            f_ref = (c.unsqueeze(1) * (torch.exp(b) - 1)).flatten(2).sum(2).mean(1)
        else:
            expected = c * (torch.exp(x) - torch.exp(b))
            f_ref = (c * (torch.exp(b) - 1)).flatten(1).sum(1)
        assert torch.allclose(r.attributions, expected, rtol=1e-9, atol=1e-12), r.name
        assert torch.allclose(r.report.reference_output, f_ref, rtol=1e-12), r.name
        assert r.report.rel_error.max() < 1e-9, r.name
    # the maps differ between baselines: the choice of absence decides the map
    assert (results[0].attributions - results[1].attributions).abs().max() > 1e-2


def test_bad_choices_raise_input_error(setup):
    model, _, x, refs = setup
    with pytest.raises(explorer.InputError, match="baseline"):
        compare_baselines(model, x, 0, {"zero": torch.zeros_like(x)}, method="saliency")
    with pytest.raises(explorer.InputError, match="references"):
        named_baselines(x, references=refs[:, 0])


def test_a_chosen_sigma_replaces_the_default_width_and_is_named():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    default = named_baselines(x)
    chosen = named_baselines(x, sigmas={"blur": 1.0, "gaussian": 0.3})
    assert "blur" in default and "blur (sigma 1)" in chosen and "gaussian (sigma 0.3)" in chosen
    torch.testing.assert_close(chosen["blur (sigma 1)"], explorer.make_baseline("blur", x, sigma=1.0))
    assert not torch.equal(chosen["blur (sigma 1)"], default["blur"])  # default sigma is 2 here
    torch.testing.assert_close(chosen["uniform"], default["uniform"])  # the others untouched
