"""Settings and config in, the API running on uvicorn (workers from settings) until stopped out."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import uvicorn

from pricewise.config import load_config
from pricewise.serving.connections import BoundedHttpProtocol
from pricewise.serving.observability import log_config, multiprocess_dir
from pricewise.settings import Settings
from pricewise.store.prediction_log import PredictionLog, default_url


def run(settings: Settings, config_path: Path | None) -> None:
    """Serve the API with `settings.serve_workers` worker processes on host:port from settings.

    Each worker builds its own app through `app_from_environment`, so the config path is handed to the workers
    through the environment they inherit.

    Args:
        settings: Host, port, workers and everything the app needs.
        config_path: The stage parameters file the CLI resolved (None: built-in defaults).

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
