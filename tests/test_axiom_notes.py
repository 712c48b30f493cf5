"""The Axioms page's n/a lines come from the results' own reasons, not one fixed definition."""
from explorer.analyses.axioms import AxiomResult, mark, not_applicable_notes


def r(name, holds, why):
    return AxiomResult(name, holds, float("nan") if holds is None else 0.0, 1e-3, why, "current model")


def test_each_distinct_reason_is_named_with_its_axiom_and_methods():
    twin = "No two weighted layers joined by ReLU-like layers to rescale."
    results = {"IG": [r("implementation invariance", None, twin), r("completeness", True, "ok")],
               "Saliency": [r("implementation invariance", None, twin)],
               "Grad-CAM": [r("completeness", None, "Cannot be measured here: needs images")]}
    notes = not_applicable_notes(results)
    assert notes == [f"implementation invariance (IG, Saliency): {twin}",
                     "completeness (Grad-CAM): Cannot be measured here: needs images"]
    assert mark(results["IG"][0]) == "n/a"
    assert not_applicable_notes({"IG": [r("completeness", True, "ok")]}) == []
