"""Settings and config in, the API running on uvicorn (workers from settings) until stopped out; and the
watch of `/ready` that says "serving on ..." once the server answers it."""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from pricewise.config import load_config
from pricewise.serving.connections import BoundedHttpProtocol
from pricewise.serving.observability import log_config, multiprocess_dir
from pricewise.settings import Settings
from pricewise.store.prediction_log import PredictionLog, default_url

# How often the watch asks /ready, and how long one answer may take.
READY_POLL_SECONDS = 0.25
READY_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Readiness:
    """One answer of `/ready`: its HTTP status (None when nothing answered) and the reason it gave."""

    status: int | None
    detail: str | None = None


def base_url(host: str, port: int) -> str:
    """The URL a person opens for a server bound to host:port (brackets around an IPv6 address)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _reachable_host(host: str) -> str:
    """The address that reaches a server bound to `host` from this machine (the wildcard addresses are none)."""
    wildcards = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104 - mapped away, not bound
    return wildcards.get(host, host)


def probe_ready(url: str, timeout: float = READY_TIMEOUT_SECONDS) -> Readiness:
    """Ask `{url}/ready` once.

    Args:
        url: The server's base URL.
        timeout: Seconds to wait for the answer.

    Returns:
        The status and detail of the answer; status None when the server does not answer (yet).
    """
    try:
        with urllib.request.urlopen(f"{url}/ready", timeout=timeout) as response:  # noqa: S310 - our own URL
            return Readiness(response.status, _detail(response.read()))
    except urllib.error.HTTPError as exc:
        return Readiness(exc.code, _detail(exc.read()))
    except (OSError, ValueError):  # refused, reset, timed out: not listening yet
        return Readiness(None)


def _detail(body: bytes) -> str | None:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return None
    return str(detail) if detail else None


def announcement(readiness: Readiness, url: str, waiting_said: bool) -> str | None:
    """What to tell a person after one answer of /ready: "serving on URL" once it is ready, once "URL answers
    but is not ready" with the reason when it answers otherwise, and nothing while nothing answers.

    Args:
        readiness: The latest answer.
        url: The URL to name.
        waiting_said: Whether the not-ready line was said already.

    Returns:
        The line to say, or None.
    """
    if readiness.status == 200:
        note = f" ({readiness.detail})" if readiness.detail else ""
        return f"serving on {url}{note}"
    if readiness.status is not None and not waiting_said:
        reason = readiness.detail or f"HTTP {readiness.status}"
        return f"{url} answers but is not ready yet: {reason}"
    return None


def watch_readiness(
    probe: Callable[[], Readiness],
    announce: Callable[[str], None],
    url: str,
    stop: threading.Event,
    interval: float = READY_POLL_SECONDS,
) -> bool:
    """Ask /ready until it answers 200 or `stop` is set, saying what `announcement` decides.

    Args:
        probe: One question to /ready (`probe_ready` bound to the server's URL).
        announce: Where the lines go (the CLI prints them).
        url: The URL to name in them.
        stop: Set when the server has stopped.
        interval: Seconds between questions.

    Returns:
        True once the server was ready, False when stopped before.
    """
    waiting_said = False
    while not stop.is_set():
        readiness = probe()
        line = announcement(readiness, url, waiting_said)
        if line is not None:
            announce(line)
        if readiness.status == 200:
            return True
        waiting_said = waiting_said or readiness.status is not None
        stop.wait(interval)
    return False


def run(settings: Settings, config_path: Path | None, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the API with `settings.serve_workers` worker processes on host:port from settings.

    Each worker builds its own app through `app_from_environment`, so the config path is handed to the workers
    through the environment they inherit.

    Args:
        settings: Host, port, workers and everything the app needs.
        config_path: The stage parameters file the CLI resolved (None: built-in defaults).
        on_ready: Told "serving on URL" once /ready answers 200 (and, before, why it is not ready when it
            answers otherwise); the workers load the model before they listen, which takes seconds.

    Raises:
        PricewiseError: The prediction log cannot be opened (its database is down, refuses the credentials, or
            holds a schema this version cannot use): checked before any worker starts, so the command exits
            with one clear line instead of workers failing one after another.
    """
    PredictionLog(default_url(settings)).close()
    if settings.serve_workers > 1 and multiprocess_dir() is None:
        # Every worker writes its metrics here, so that any of them answers /metrics for all; the directory
        # must start empty, or counts of an earlier run would be added in.
        directory = settings.data_dir / "serving" / "prometheus"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory.resolve())
    if config_path is not None:
        os.environ["PRICEWISE_CONFIG_PATH"] = str(config_path.resolve())
    else:
        os.environ["PRICEWISE_CONFIG_PATH"] = str(Path(os.devnull))
    serve = load_config(config_path).serve
    # The protocol's limits are bound here, so they travel to each worker with uvicorn's (pickled) config.
    protocol = functools.partial(
        BoundedHttpProtocol,
        header_timeout=serve.header_timeout_seconds,
        max_header_bytes=serve.max_header_bytes,
        body_timeout=serve.body_timeout_seconds,
    )
    stop = threading.Event()
    if on_ready is not None:
        url = base_url(settings.serve_host, settings.serve_port)
        reachable = base_url(_reachable_host(settings.serve_host), settings.serve_port)
        threading.Thread(
            target=watch_readiness,
            args=(functools.partial(probe_ready, reachable), on_ready, url, stop),
            name="pricewise-ready-watch",
            daemon=True,
        ).start()
    try:
        uvicorn.run(
            "pricewise.serving.app:app_from_environment",
            factory=True,
            host=settings.serve_host,
            port=settings.serve_port,
            workers=settings.serve_workers,
            http=protocol,  # type: ignore[arg-type]
            timeout_keep_alive=serve.keep_alive_seconds,  # type: ignore[arg-type]
            log_config=log_config(),
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        stop.set()
