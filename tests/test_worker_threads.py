"""Under pytest-xdist each worker gets its share of the cores (tests/conftest.py)."""
import os

import pytest
import torch


def test_each_xdist_worker_uses_its_share_of_the_cores():
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        pytest.skip("not under pytest-xdist (run with -n 2 to check)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    wanted = os.environ.get("EXPLORER_TEST_THREADS")
    assert torch.get_num_threads() == (int(wanted) if wanted else max(1, cores // workers))
