import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import os

import pytest

# Tests never download weights: a missing cache must fail fast and clearly.
os.environ.setdefault("EXPLORER_OFFLINE", "1")
# The app's default compute budget, large: on a loaded test machine an estimate must not hold
# back the work of tests that are not about the budget (tests/test_budget_app.py sets its own).
os.environ.setdefault("EXPLORER_BUDGET_S", "3600")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cuda: needs a CUDA device (skipped without one); run them alone with "
                   "`python -m pytest -m cuda`")
    _threads_per_worker()


def _threads_per_worker() -> None:
    """Under pytest-xdist, give each worker its share of the cores, not all of them: N workers
    of torch's default (every core each) oversubscribe the machine N times over and run slower
    than one process. EXPLORER_TEST_THREADS overrides the share."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    wanted = os.environ.get("EXPLORER_TEST_THREADS")
    if workers <= 1 and not wanted:
        return
    import torch
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = int(wanted) if wanted else max(1, (cores or 1) // workers)
    torch.set_num_threads(threads)
    # Subprocesses a test starts (torchrun, the bench's memory probe) inherit the share.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped where torch sees no CUDA device."""
    import pytest
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def quick_bench(tmp_path_factory):
    """One run of ``python -m explorer bench --quick`` on the digits CNN, shared by the tests of
    the command and of the Speed page (each run costs ~30 s on 2 cores): (folder, printed)."""
    import contextlib
    import io

    pytest.importorskip("captum")
    from explorer.cli import main
    folder = tmp_path_factory.mktemp("bench")
    import torch
    printed, threads = io.StringIO(), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(printed):
            status = main(["bench", "--model", "digits-cnn", "--quick", "--rounds", "2",
                           "--threads", "1", "--clock", "process",
                           "--sections", "methods,captum,mfaba,adaptive", "--out", str(folder)])
    finally:  # the command sets the process's threads; the tests after it keep theirs
        torch.set_num_threads(threads)
    assert status == 0
    return folder, printed.getvalue()
