"""explorer: axiomatic feature attribution, made visible and testable.

Public API (see README): ``METHODS``, ``attribute``, ``explain``, ``remove_biases``,
``homogeneity_error``, ``completeness``, ``MODELS``, ``load_model``, ``InputError``,
``precision`` (the number-format policy every call runs under). Nothing here imports streamlit.
"""
from explorer.analyses.axioms import AxiomResult, check_axioms, homogeneity_curves, unified_view
from explorer.methods.budget import BudgetExceeded, Estimate, PassTime, estimate, pass_time
from explorer.inputs.baselines import BASELINES, make_baseline
from explorer.analyses.checks import CompletenessReport, completeness
from explorer.analyses.quadrature_convergence import Convergence, convergence
from explorer.errors import InputError, NumericalWarning
from explorer.models.homogeneous import (ChannelScale, Obstacle, homogeneity_error,
                                  homogeneity_obstacles, is_bias_free, remove_biases)
from explorer.inputs.input_space import IMAGENET, PIXELS, InputSpace
from explorer.analyses import metrics
from explorer.runtime import precision
from explorer.methods import METHODS, Explanation, attribute, explain, method_label
from explorer.models import (MODELS, InputDescription, WeightsUnavailable, ZooEntry,
                             default_device, load_model)
from explorer.analyses.integration_path import PathTrace, path_trace
from explorer.methods.ig_paths import MethodPath, method_path
from explorer.train.priors import Prior

__all__ = [
    "METHODS", "BASELINES", "attribute", "explain", "Explanation", "method_label", "make_baseline",
    "remove_biases", "homogeneity_error", "homogeneity_obstacles", "is_bias_free",
    "ChannelScale", "Obstacle", "completeness", "CompletenessReport", "InputError",
    "InputSpace", "PIXELS", "IMAGENET", "MODELS", "load_model", "InputDescription", "ZooEntry", "default_device",
    "WeightsUnavailable", "metrics", "NumericalWarning",
    "path_trace", "PathTrace", "method_path", "MethodPath", "convergence", "Convergence",
    "check_axioms", "AxiomResult", "homogeneity_curves", "unified_view",
    "BudgetExceeded", "Estimate", "PassTime", "estimate", "pass_time",
    "Prior", "precision",
]
