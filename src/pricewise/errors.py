"""Exceptions that carry a message meant for the person running pricewise (no traceback needed)."""

from __future__ import annotations

import errno

# A full disk and an exhausted quota: the machine needs attention, not the input.
OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class PricewiseError(Exception):
    """A failure caused by input, configuration or state that the user can fix; the message says how."""


class InputFileError(PricewiseError):
    """A file offered to pricewise cannot be read as a listings table; the message names the file."""


class DiskFullError(PricewiseError):
    """A disk or quota filled up while pricewise was writing; the message says what was left unchanged."""


def is_out_of_space(exc: BaseException) -> bool:
    """Whether an error, or any error it was raised from, is the operating system saying a disk is full.

    Args:
        exc: Any exception.

    Returns:
        True when an OSError with ENOSPC or EDQUOT is in its chain of causes.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in OUT_OF_SPACE_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False
