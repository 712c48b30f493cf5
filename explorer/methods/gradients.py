"""Single-pass gradient methods, and SmoothGrad (averaged gradients of noisy copies)."""
from __future__ import annotations

import torch

from explorer.methods.core import (input_gradients, noise_rows, out_of_memory_as_input_error,
                                   run_in_chunks)
from explorer.methods.registry import Cost, MethodOutput, Param, register_method

BATCH_SIZE = Param("batch_size", int, 64, 1, 4096,
                   help="Points sent through the network at once; bounds memory, not the result.")


@register_method(
    "gradient", label="Gradient",
    description="Signed gradient dF/dx of the target logit: local sensitivity, not a share of F.",
)
def gradient(model, x, target, *, baseline=None) -> MethodOutput:
    grad, _ = input_gradients(model, x, target)
    return MethodOutput(grad)


@register_method(
    "saliency", label="Saliency",
    description="|dF/dx| (Simonyan et al.): how strongly each input moves the logit, unsigned.",
)
def saliency(model, x, target, *, baseline=None) -> MethodOutput:
    grad, _ = input_gradients(model, x, target)
    return MethodOutput(grad.abs())


@register_method(
    "input_x_gradient", label="Input x Gradient", bias_free_label="X-Gradient",
    completeness="homogeneous",
    description=(
        "x * dF/dx from one pass. On a bias-free ReLU network F is homogeneous, so by Euler's "
        "theorem the sum equals F(x) - F(0): it *is* Integrated Gradients with the zero baseline."
    ),
)
def input_x_gradient(model, x, target, *, baseline=None) -> MethodOutput:
    grad, _ = input_gradients(model, x, target)
    return MethodOutput(x * grad, references=torch.zeros_like(x).unsqueeze(1))


@register_method(
    "smoothgrad", label="SmoothGrad", stochastic=True,
    params=(
        Param("samples", int, 32, 1, 4096, help="Noisy copies averaged per input."),
        Param("noise", float, 0.15, 0.0, 1.0,
              help="Noise level as a fraction of the input's value range (max - min)."),
        Param("seed", int, 0, 0, 2**31 - 1,
              help="Seed of the noise; same seed and device, same map."),
        BATCH_SIZE,
    ),
    cost=lambda p, shape: Cost(p["samples"], p["samples"]),
    description="Mean gradient over copies of x with Gaussian noise (Smilkov et al. 2017).",
)
def smoothgrad(model, x, target, *, baseline=None, samples, noise, seed, batch_size) -> MethodOutput:
    n = x.shape[0]
    flat = x.reshape(n, -1)
    sigma = noise * (flat.max(1).values - flat.min(1).values)  # the paper's relative noise level
    view = (-1,) + (1,) * (x.dim() - 1)
    total = torch.zeros_like(x)
    # One noise stream for every input (drawn from the seed alone), so a sample's map does not
    # depend on its position in the batch; drawn batch_size copies at a time, so memory is
    # bounded by batch_size, not samples. Each input still sums its copies in stream order.
    # The noise is drawn on x's device (see ``noise_rows``): no host sampling, no copies.
    for eps in noise_rows(seed, samples, tuple(x.shape[1:]), batch_size, x.device, x.dtype):
        b = eps.shape[0]

        def work(lo: int, hi: int, eps=eps, b=b):
            pairs = torch.arange(lo, hi, device=x.device)
            i, j = pairs // b, pairs % b
            with out_of_memory_as_input_error(hi - lo):
                grad, _ = input_gradients(model, x[i] + sigma[i].view(view) * eps[j], target[i])
                return i, grad

        for _, _, (i, grad) in run_in_chunks(n * b, batch_size, work):
            total.index_add_(0, i, grad)
            del i, grad  # not alive while the next chunk runs
    return MethodOutput(total / samples)
