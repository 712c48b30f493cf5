import pytest
import torch

import explorer
from explorer.inputs.baselines import gaussian_blur


@pytest.mark.parametrize("name", sorted(n for n in explorer.BASELINES if n != "image"))
@pytest.mark.parametrize("space", [explorer.PIXELS, explorer.IMAGENET])
def test_every_baseline_has_the_input_shape_and_is_deterministic(name, space):
    x = space.from_pixels(torch.rand(2, 3, 12, 12))
    b = explorer.make_baseline(name, x, input_space=space)
    assert b.shape == x.shape and b.dtype == x.dtype and torch.isfinite(b).all()
    torch.testing.assert_close(b, explorer.make_baseline(name, x, input_space=space))


def test_black_white_and_zero_in_normalised_space():
    space = explorer.IMAGENET
    x = space.from_pixels(torch.rand(1, 3, 4, 4))
    torch.testing.assert_close(space.to_pixels(explorer.make_baseline("black", x, input_space=space)),
                               torch.zeros_like(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(space.to_pixels(explorer.make_baseline("white", x, input_space=space)),
                               torch.ones_like(x), atol=1e-6, rtol=0)
    zero_pixels = space.to_pixels(explorer.make_baseline("zero", x, input_space=space))
    torch.testing.assert_close(zero_pixels[0, :, 0, 0], torch.tensor(space.mean))  # mean colour


def test_mean_and_blur_keep_the_average_colour():
    x = torch.rand(2, 3, 16, 16)
    m = explorer.make_baseline("mean", x)
    torch.testing.assert_close(m.mean((2, 3)), x.mean((2, 3)))
    assert m.std((2, 3)).max() < 1e-6
    blurred = gaussian_blur(x, 2.0)
    assert blurred.std() < x.std()
    torch.testing.assert_close(blurred.mean((2, 3)), x.mean((2, 3)), rtol=0.05, atol=0.02)


def test_image_baseline_checks_shape():
    x = torch.rand(2, 3, 8, 8)
    img = torch.rand(3, 8, 8)
    torch.testing.assert_close(explorer.make_baseline("image", x, image=img), img.expand_as(x))
    with pytest.raises(explorer.InputError, match="baseline has shape"):
        explorer.make_baseline("image", x, image=torch.rand(3, 9, 9))
    with pytest.raises(explorer.InputError, match="unknown baseline"):
        explorer.make_baseline("sky", x)


@pytest.mark.parametrize("name", sorted(n for n, b in explorer.BASELINES.items() if b.sigma))
def test_sigma_baselines_follow_their_sigma_within_their_bounds(name):
    x = torch.rand(1, 3, 28, 28)
    low, high, default = explorer.BASELINES[name].sigma.bounds(tuple(x.shape))
    assert 0 < low < default < high
    torch.testing.assert_close(explorer.make_baseline(name, x),
                               explorer.make_baseline(name, x, sigma=default))
    near, far = (explorer.make_baseline(name, x, sigma=s) for s in (low, high))
    # a wider sigma moves the baseline further from the input
    assert (far - x).norm() > (near - x).norm() > 0
    if name == "blur":
        torch.testing.assert_close(far, gaussian_blur(x, high))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(explorer.InputError, match="sigma"):
            explorer.make_baseline(name, x, sigma=bad)
