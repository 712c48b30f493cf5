"""SmoothGrad's noise: drawn in blocks, yet exactly the stream of one big draw from the seed."""
import pytest
import torch

from explorer.methods.core import normal_rows, seeded_generator


@pytest.mark.parametrize("rows,shape,block", [(16, (1, 28, 28), 64), (32, (3, 5, 5), 7),
                                              (5, (3,), 1), (9, (2, 3), 4), (1, (1,), 1)])
def test_blocks_concatenate_to_one_draw(rows, shape, block):
    blocks = list(normal_rows(seeded_generator(7), rows, shape, block))
    assert all(b.shape[0] <= block for b in blocks)
    whole = torch.randn((rows,) + shape, generator=seeded_generator(7), dtype=torch.float64)
    assert torch.equal(torch.cat(blocks), whole)
