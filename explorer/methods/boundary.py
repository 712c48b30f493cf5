"""MFABA (Zhu et al., AAAI 2024): attribution accumulated along a walk to the decision boundary."""
from __future__ import annotations

import torch

from explorer.methods.core import input_gradients, report_progress
from explorer.methods.registry import Cost, MethodOutput, Param, register_method

DEFAULT_STEP = {"smooth": 1e-3, "sharp": 0.1}  # the reference code's step sizes


@register_method(
    "mfaba", label="MFABA",
    params=(
        Param("variant", str, "smooth", choices=("smooth", "sharp"),
              help="smooth: sign steps; sharp: L2-normalised gradient steps."),
        Param("steps", int, 50, 1, 1000, help="Most steps of the walk; it stops earlier per "
                                              "sample once the prediction changes."),
        Param("step_size", float, 0.0, 0.0, 10.0,
              help="Step length in the model's input space; 0: the reference default "
                   "(smooth 0.001, sharp 0.1)."),
    ),
    cost=lambda p, shape: Cost(p["steps"], p["steps"]),
    cost_exact=False,
    completeness="quadrature",
    description=(
        "Walk from x against the gradient of the target logit until the prediction changes, "
        "accumulating A = -sum_t (x_{t+1} - x_t) * dF(x_t)/dx: the walk's own gradients, reused. "
        "Complete against the walk's end point, up to the error of that first-order sum. "
        "Unlike the reference code (softmax probability) F is the logit, as for every method here."
    ),
)
def mfaba(model, x, target, *, baseline=None, variant, steps, step_size) -> MethodOutput:
    eta = step_size or DEFAULT_STEP[variant]
    n = x.shape[0]
    view = (-1,) + (1,) * (x.dim() - 1)
    current = x.clone()
    total = torch.zeros_like(x)
    taken = torch.zeros(n, dtype=torch.long, device=x.device)
    evaluated = torch.zeros(n, dtype=torch.long, device=x.device)  # forward+backward passes
    active = torch.arange(n, device=x.device)
    start_class = None
    for step in range(steps):
        report_progress(step, steps)
        xs = current[active]
        grad, logits = input_gradients(model, xs, target[active])
        evaluated[active] += 1
        pred = logits.argmax(1)
        if start_class is None:
            start_class = pred.clone()
        else:
            keep = pred == start_class[active]  # stop where the prediction has changed
            active, xs, grad = active[keep], xs[keep], grad[keep]
            if active.numel() == 0:
                break
        if variant == "smooth":
            move = -eta * grad.sign()
        else:
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
            move = -eta * grad / norm
        total[active] -= move * grad
        current[active] = xs + move
        taken[active] += 1
    return MethodOutput(total, references=current.unsqueeze(1),
                        info={"steps_taken": taken, "passes": evaluated})
