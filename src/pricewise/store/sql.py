"""A SQLAlchemy URL in, an engine set up for several processes writing at once out (SQLite in WAL mode, PostgreSQL
through psycopg 3 with short connect timeouts and a pool that reconnects); and the errors a store raises when its
database cannot be reached, with the password never in them.

The prediction log and the decision tables share this: SQLite files by default, any SQLAlchemy URL (PostgreSQL in
a deployment) through settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from pricewise import logs
from pricewise.errors import PricewiseError

SQLITE_BUSY_TIMEOUT_S = 30.0
# A database that does not answer a connection attempt within this fails the request instead of holding it;
# a URL's own `connect_timeout` parameter wins.
CONNECT_TIMEOUT_S = 5
Synchronous = Literal["FULL", "NORMAL"]


class StoreUnavailableError(PricewiseError):
    """The database behind a store cannot be reached or lost the connection (down, restarting, refusing the
    credentials); the message names the store, its URL without the password, and the database's reason."""


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path.resolve()}"


def parse_url(url: str) -> URL:
    """The URL with PostgreSQL's driver filled in: `postgresql://` and `postgres://` mean psycopg 3 (the driver
    pricewise ships), not SQLAlchemy's default psycopg2.

    Raises:
        PricewiseError: The text is not a SQLAlchemy URL.
    """
    text = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url.strip())
    try:
        return make_url(text)
    except ArgumentError as exc:
        raise PricewiseError(
            f"not a database URL: {redacted(url)!r} (expected e.g. postgresql://...)"
        ) from exc


def redacted(url: str) -> str:
    """The URL as it may be shown or logged: the password replaced by ***."""
    try:
        return make_url(url.strip()).render_as_string(hide_password=True)
    except ArgumentError:
        return logs.redact(url)


def reason(exc: BaseException, url: str | None = None) -> str:
    """What the database said, on one line: the driver's message without the statement, its parameters or the
    URL's password (scrubbed even if a driver were to echo it)."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(original).split()) or type(original).__name__
    if url is not None:
        password = _password(url)
        if password:
            text = text.replace(password, "***")
    return text


def _password(url: str) -> str | None:
    try:
        return make_url(url.strip()).password
    except ArgumentError:
        return None


def is_unavailable(exc: BaseException) -> bool:
    """Whether a database error means the database is out of reach (down, restarting, network, credentials, no
    free connection) rather than a fault of the statement."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def unavailable(what: str, url: str, exc: SQLAlchemyError) -> StoreUnavailableError:
    """The error a store raises when its database cannot be reached (see `is_unavailable`)."""
    return StoreUnavailableError(f"{what} at {redacted(url)} is unavailable: {reason(exc, url)}")


def _sqlite_pragmas(synchronous: Synchronous) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def engine_for(url: str, synchronous: Synchronous = "NORMAL") -> Engine:
    """An engine for `url`; a SQLite file (and its directory) is created on first use and runs in WAL mode.

    WAL lets readers read while one process writes; writers wait for each other through the busy timeout instead
    of failing. Other databases get a pool that checks connections before use, so a restarted server is
    reconnected to instead of failing the next request, and a connection attempt gives up after
    `CONNECT_TIMEOUT_S`. Nothing connects here: the first statement does.

    Args:
        url: Any SQLAlchemy URL; `postgresql://` uses psycopg 3.
        synchronous: SQLite's synchronous level; other databases ignore it.

    Raises:
        PricewiseError: The URL cannot be parsed, or names a driver that is not installed.
        OSError: A SQLite file's directory cannot be created.
    """
    parsed = parse_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    connect_args: dict[str, Any] = {}
    if sqlite:
        connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
    elif parsed.get_backend_name() == "postgresql":
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in parsed.query:
            connect_args["application_name"] = "pricewise"
    try:
        engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=not sqlite)
    except (ArgumentError, ImportError) as exc:
        raise PricewiseError(f"cannot use the database URL {redacted(url)}: {exc}") from exc
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas(synchronous))
    return engine
