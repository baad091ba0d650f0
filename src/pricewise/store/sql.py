"""A SQLAlchemy URL in, an engine set up for several processes writing at once out (SQLite in WAL mode).

The prediction log and the decision tables share this: SQLite files by default, any SQLAlchemy URL (PostgreSQL in
a deployment) through settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event

SQLITE_BUSY_TIMEOUT_S = 30.0
Synchronous = Literal["FULL", "NORMAL"]


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path.resolve()}"


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
    reconnected to instead of failing the next request.

    Args:
        url: Any SQLAlchemy URL.
        synchronous: SQLite's synchronous level; other databases ignore it.
    """
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S} if url.startswith("sqlite") else {},
        pool_pre_ping=not url.startswith("sqlite"),
    )
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(synchronous))
    return engine
