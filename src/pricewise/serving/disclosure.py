"""Text bound for an anonymous client (an error message, a recorded run's message) in; the same text with secrets
in URIs and filesystem paths masked out.

Public endpoints (/ready, /v1/monitoring and its page, monitoring reports) show why something failed, and such
reasons often quote a database URL or a file. The URL's password and the server's directory layout are not for
the public; the server log keeps the full text for the operator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pricewise.logs import redact

HIDDEN_PATH = "<path>"
# A URL with an empty host names a local file: sqlite:////srv/x.db, file:///srv/x.
_LOCAL_URL = re.compile(r"\b(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*):///[^\s'\"()<>,;:]*")
# An absolute path standing on its own (not the path part of a URL, which follows a host name).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/%-])(?:~|\.{1,2})?/[^\s'\"()<>,;:]+")


def public(text: str | None, roots: Iterable[Path] = ()) -> str | None:
    """A text as an anonymous client may see it.

    Args:
        text: Any text (None passes through).
        roots: Directories whose relative spelling (e.g. `data`) is masked too, with anything below them.

    Returns:
        The text with secrets in URIs masked (see `pricewise.logs.redact`) and every absolute path, local-file
        URL and path under one of `roots` replaced by `<path>`.
    """
    if text is None:
        return None
    shown = _LOCAL_URL.sub(lambda m: f"{m.group('scheme')}:///{HIDDEN_PATH}", redact(text))
    shown = _ABSOLUTE_PATH.sub(HIDDEN_PATH, shown)
    for root in roots:
        spelled = str(root).rstrip("/")
        if spelled and not root.is_absolute() and spelled != ".":
            shown = re.sub(
                rf"(?<![\w.-]){re.escape(spelled)}(?:/[^\s'\"()<>,;:]*)?(?![\w.-])", HIDDEN_PATH, shown
            )
    return shown
