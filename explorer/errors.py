"""The one exception the API raises for bad input."""


class InputError(ValueError):
    """Bad input a person can fix: the message says what was wrong and what is expected."""
