"""Exceptions that carry a message meant for the person running pricewise (no traceback needed)."""


class PricewiseError(Exception):
    """A failure caused by input, configuration or state that the user can fix; the message says how."""


class InputFileError(PricewiseError):
    """A file offered to pricewise cannot be read as a listings table; the message names the file."""
