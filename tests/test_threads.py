"""The app shares one model between sessions (threads): a hooking method running in one thread
must not change what another thread computes on the same module at the same time."""
import threading

import torch

import explorer
from explorer.runtime.timing import count_passes
from helpers import images, small_cnn


def test_hooks_act_only_for_the_thread_that_installed_them():
    model = small_cnn(seed=6)
    x = images(2)
    reference = explorer.attribute("gradient", model, x, 1)
    stop = threading.Event()
    errors = []

    def hooking():
        try:
            while not stop.is_set():
                explorer.attribute("deeplift", model, x, 1, baseline=torch.full_like(x, 0.5))
                explorer.attribute("grad_cam", model, x, 1)
                with count_passes(model):
                    explorer.attribute("epsilon_lrp", model, x, 1, eps=0.3)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    worker = threading.Thread(target=hooking)
    worker.start()
    try:
        mismatches = 0
        with count_passes(model) as mine:
            for _ in range(150):
                got = explorer.attribute("gradient", model, x, 1)
                mismatches += not torch.equal(got, reference)
    finally:
        stop.set()
        worker.join()
    assert not errors, errors
    assert mismatches == 0
    assert (mine.forward, mine.backward) == (300, 300)  # only this thread's passes
