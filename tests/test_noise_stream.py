"""SmoothGrad's noise: drawn in blocks, yet exactly the stream of one big draw from the seed."""
import pytest
import torch

from explorer.methods.core import normal_rows
from explorer.runtime.tensors import seeded_generator


@pytest.mark.parametrize("rows,shape,block", [(16, (1, 28, 28), 64), (32, (3, 5, 5), 7),
                                              (5, (3,), 1), (9, (2, 3), 4), (1, (1,), 1)])
def test_blocks_concatenate_to_one_draw(rows, shape, block):
    blocks = list(normal_rows(seeded_generator(7), rows, shape, block))
    assert all(b.shape[0] <= block for b in blocks)
    whole = torch.randn((rows,) + shape, generator=seeded_generator(7), dtype=torch.float64)
    assert torch.equal(torch.cat(blocks), whole)


@pytest.mark.parametrize("rows,block", [(37, 5), (16, 16), (3, 64), (40, 1)])
def test_device_draws_do_not_depend_on_the_block_size(rows, block):
    """The accelerator path (here run with a CPU generator): fixed draws of DEVICE_DRAW_ROWS
    rows, cut into blocks; row k is the same for any block size, and the rows are N(0, 1)."""
    from explorer.methods.core import DEVICE_DRAW_ROWS, fixed_draw_rows
    blocks = list(fixed_draw_rows(seeded_generator(3), rows, (2, 3), block, torch.float32))
    assert all(b.shape[0] <= block for b in blocks) and sum(b.shape[0] for b in blocks) == rows
    one = torch.cat(list(fixed_draw_rows(seeded_generator(3), rows, (2, 3), rows, torch.float32)))
    assert torch.equal(torch.cat(blocks), one)
    gen = seeded_generator(3)
    draws = [torch.randn((DEVICE_DRAW_ROWS, 2, 3), generator=gen)
             for _ in range(-(-rows // DEVICE_DRAW_ROWS))]
    assert torch.equal(one, torch.cat(draws)[:rows])


def test_cpu_noise_is_the_one_big_draw_cast():
    from explorer.methods.core import noise_rows
    got = torch.cat(list(noise_rows(7, 9, (2, 3), 4, torch.device("cpu"), torch.float32)))
    want = torch.randn((9, 2, 3), generator=seeded_generator(7), dtype=torch.float64).float()
    assert torch.equal(got, want)
