"""The model zoo."""
from explorer.models.checkpoints import WeightsUnavailable, read_state_dict
from explorer.models.zoo import MODELS, ModelSpec, ZooEntry, default_device, load_model
from explorer.models.spec import InputDescription, resolve

__all__ = ["MODELS", "ModelSpec", "ZooEntry", "load_model", "default_device",
           "WeightsUnavailable", "read_state_dict", "InputDescription", "resolve"]
