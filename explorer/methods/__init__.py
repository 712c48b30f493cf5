"""Attribution methods, one module per family; importing this registers them all."""
from explorer.methods import (attention, bcos, boundary, cam, exact,  # noqa: F401
                               gradients, ig_paths, modified, path,
                               perturbation)  # importing registers them
from explorer.methods.api import Explanation, attribute, explain, method_label
from explorer.methods.registry import COMPLETENESS, METHODS, Cost, MethodSpec, Param, get_method

__all__ = ["METHODS", "COMPLETENESS", "Cost", "MethodSpec", "Param", "Explanation",
           "attribute", "explain", "get_method", "method_label"]
