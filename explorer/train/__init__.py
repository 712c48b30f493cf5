"""Training: the bundled models, attribution priors, the decoy experiment, one loop for all
(single process or DDP under torchrun). No streamlit here."""
from explorer.train.bundled import (BUNDLED, DECOY_TEST_SEED, DECOY_TRAIN_SEED, datasets,
                                    train_digits, write_bundled, write_samples)
from explorer.train.loop import RECIPE, Trainer, accuracy
from explorer.train.priors import ATTRIBUTIONS, PRIORS, Prior

__all__ = ["BUNDLED", "DECOY_TEST_SEED", "DECOY_TRAIN_SEED", "datasets", "train_digits",
           "write_bundled", "write_samples", "RECIPE", "Trainer", "accuracy", "ATTRIBUTIONS",
           "PRIORS", "Prior"]
