"""The one exception the API raises for bad input, and the warning for non-finite numbers."""


class InputError(ValueError):
    """Bad input a person can fix: the message says what was wrong and what is expected."""


class NumericalWarning(UserWarning):
    """Non-finite values (NaN or Inf) in weights, logits or attributions: never silent."""
