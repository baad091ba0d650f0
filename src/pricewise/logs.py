"""A verbosity flag in, the root logger configured for an entry point out (never called on import)."""

from __future__ import annotations

import logging
import sys


def configure(verbose: bool = False) -> None:
    """Send log records to stderr as plain lines; INFO with `verbose`, WARNING otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
