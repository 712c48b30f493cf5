"""``python -m explorer convergence`` prints what IG's completeness says, per rule and steps."""
import pytest
import torch

import explorer
from explorer.cli import main
from explorer.inputs.data import sample_digits


def test_printed_errors_match_integrated_gradients_completeness(capsys):
    assert main(["convergence", "--steps", "4,8", "--rules", "middle,left", "--sample", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {ln.split()[0]: [float(v) for v in ln.split()[1:3]] for ln in lines[3:5]}
    entry = explorer.load_model("digits-cnn", device="cpu")  # the CLI runs on default_device()
    d = sample_digits()
    x = torch.from_numpy(d["clean"][2:3]).float() / 255
    target = int(entry.module(x).argmax(1)[0])
    for rule in ("middle", "left"):
        for k, steps in enumerate((4, 8)):
            ig = explorer.attribute("integrated_gradients", entry.module, x, target, steps=steps, rule=rule)
            expected = float(explorer.completeness(entry.module, x, ig, target).rel_error[0])
            assert table[rule][k] == pytest.approx(expected, rel=0.02)  # printed to 3 digits
    assert lines[-1].startswith("X-Gradient")


def test_bad_arguments_exit_with_a_message():
    with pytest.raises(SystemExit, match="comma-separated"):
        main(["convergence", "--steps", "8,many"])
    with pytest.raises(SystemExit, match="unknown rule"):
        main(["convergence", "--rules", "simpson", "--steps", "4"])
