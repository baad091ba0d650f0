"""Settings and config in, the API running on uvicorn (workers from settings) until stopped out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import uvicorn

from pricewise.serving.observability import log_config, multiprocess_dir
from pricewise.settings import Settings


def run(settings: Settings, config_path: Path | None) -> None:
    """Serve the API with `settings.serve_workers` worker processes on host:port from settings.

    Each worker builds its own app through `app_from_environment`, so the config path is handed to the workers
    through the environment they inherit.

    Args:
        settings: Host, port, workers and everything the app needs.
        config_path: The stage parameters file the CLI resolved (None: built-in defaults).
    """
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
    uvicorn.run(
        "pricewise.serving.app:app_from_environment",
        factory=True,
        host=settings.serve_host,
        port=settings.serve_port,
        workers=settings.serve_workers,
        log_config=log_config(),
        access_log=False,
        timeout_graceful_shutdown=10,
    )
