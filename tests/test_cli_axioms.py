"""``python -m explorer axioms``: the axiom table for a bundled sample, printed and as CSV."""
import pandas as pd

from explorer.cli import main


def test_axioms_command_writes_the_table(tmp_path, capsys):
    out = tmp_path / "axioms.csv"
    assert main(["axioms", "--methods", "saliency,deeplift", "--bias-free", "--sample", "1",
                 "--max-features", "0", "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Digits CNN (bias-free), sample 1" in printed
    assert "DeepLIFT (zero baseline) vs Input x Gradient" in printed
    table = pd.read_csv(out)
    relu_pair = table[table["measured on"].str.startswith("ReLU(ReLU(x1)")]
    assert relu_pair["DeepLIFT (Rescale)"].item() == "✗ 0.25"
    assert relu_pair["Saliency"].item().startswith("✓")
    completeness = table[(table["axiom"] == "completeness")]
    assert completeness["DeepLIFT (Rescale)"].item().startswith("✓")
    assert completeness["Saliency"].item().startswith("✗")


def test_axioms_command_refuses_an_unknown_method(capsys):
    assert main(["axioms", "--methods", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
