"""A verbosity flag in, the root logger configured for an entry point out (never called on import); and any text
in, the same text with secrets in URIs masked out (`redact`), which every log line, error and response that
shows a URI goes through."""

from __future__ import annotations

import json
import logging
import re
import sys

MASK = "***"
# The userinfo of a URI (`scheme://user:password@host`): everything between "//" and the last "@" before the
# host's end. A password may hold an unescaped "@", so the match runs to the last one.
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s?#@'\"]*(?:@[^/\s?#@'\"]*)*)@"
)
# Query parameters that carry credentials (`?token=...`, `&sig=...` of a signed URL, `password=...`).
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;](?:[\w.-]*(?:password|passwd|pwd|secret|token|signature|sig|api[_-]?key|access[_-]?key|"
    r"credential|auth)[\w.-]*))=(?P<value>[^&#\s'\"]+)",
    re.IGNORECASE,
)


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, has_password, _ = userinfo.partition(":")
    # `user:password@` keeps the user (it helps to read the error); a lone `token@` is all secret.
    kept = f"{user}:{MASK}" if has_password else MASK
    return f"{match.group('scheme')}{kept}@"


def redact(text: str) -> str:
    """Mask the secrets of every URI in a text: the password of `scheme://user:password@host` (a userinfo without
    a password is masked whole, as it is then a token) and the values of credential query parameters.

    Args:
        text: Any text: a URI, an error message, a log line.

    Returns:
        The text with each secret replaced by `***`; everything else is unchanged.
    """
    if "://" not in text and "=" not in text:
        return text
    return _SECRET_PARAM.sub(lambda m: f"{m.group('name')}={MASK}", _USERINFO.sub(_mask_userinfo, text))


class RedactingFormatter(logging.Formatter):
    """A plain-line formatter whose output (message, arguments and traceback) has secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        """Format the record as usual, then mask secrets in the whole line."""
        return redact(super().format(record))


def configure(verbose: bool = False) -> None:
    """Send log records to stderr as plain lines with secrets masked; INFO with `verbose`, WARNING otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)


def writes_json() -> bool:
    """True when a handler of the root logger writes JSON lines (the server's ECS lines, or a host application's
    own), whatever its formatter's class: a sample record is formatted by each handler and parsed.

    A progress display drawn between JSON lines would break every reader of them, so it shows only without.
    """
    sample = logging.LogRecord("pricewise", logging.INFO, __file__, 0, "sample", None, None)
    for handler in logging.getLogger().handlers:
        try:
            parsed = json.loads(handler.format(sample))
        except ValueError:
            continue
        if isinstance(parsed, dict):
            return True
    return False
