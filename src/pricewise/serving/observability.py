"""Requests and model events in, Prometheus metrics (one registry per app) and ECS JSON log lines out.

With several worker processes, each answers `/metrics` for the whole server: `pricewise serve` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, every worker's metrics are written to
files there, and a scrape aggregates all of them (counters and histograms summed, including those of workers
that have exited; the model gauge reported per live worker, with its pid).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from pricewise.logs import redact

ECS_VERSION = "8.11.0"
# Attributes a LogRecord always has; anything else passed in `extra=` is an ECS field to emit.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
CLIENT_CLOSED = 499  # nginx's "client closed request"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class EcsJsonFormatter(logging.Formatter):
    """One JSON object per line with Elastic Common Schema field names.

    Extra fields are passed with dotted ECS names, e.g. ``logger.info("...", extra={"event.duration": ns})``.
    Secrets in URIs are masked in every text field (message, extras, error message and stack trace), whichever
    library logged them.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as an ECS JSON line."""
        document: dict[str, Any] = {
            "@timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "log.level": record.levelname.lower(),
            "message": redact(record.getMessage()),
            "ecs.version": ECS_VERSION,
            "log.logger": record.name,
            "process.pid": record.process or os.getpid(),
            "service.name": "pricewise",
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                document[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            document["error.type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            document["error.message"] = redact(str(record.exc_info[1]))
            document["error.stack_trace"] = redact(self.formatException(record.exc_info))
        return json.dumps(document, default=str, ensure_ascii=False)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A logging dictConfig for uvicorn and pricewise: ECS JSON lines on stderr, uvicorn's access log off."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"ecs": {"()": f"{__name__}.EcsJsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "ecs", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": level},
    }


def multiprocess_dir() -> str | None:
    """The directory of Prometheus' multiprocess mode, when it is on (set before the workers started)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The server's Prometheus metrics, registered in a registry owned by one app (no global state)."""

    def __init__(self) -> None:
        """Create the registry and its metrics."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pricewise_http_requests",
            "HTTP requests by route, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pricewise_http_request_duration_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "pricewise_http_errors",
            "Responses with a 4xx or 5xx status, by route and class (4xx, 5xx, or client_closed: the client left "
            "before any response, logged with status 499).",
            ["route", "kind"],
            registry=self.registry,
        )
        self.suggestions = Counter(
            "pricewise_suggestions", "Prices suggested, by model source.", ["source"], registry=self.registry
        )
        self.model = Gauge(
            "pricewise_model_info",
            "1 for the model this worker serves, 0 for models it served before.",
            ["name", "version", "run_id", "source"],
            registry=self.registry,
            multiprocess_mode="liveall",  # one series per live worker (pid label): who serves what
        )
        self._model_labels: tuple[str, str, str, str] | None = None
        self.reloads = Counter(
            "pricewise_model_reloads",
            "Model reload attempts by outcome.",
            ["outcome"],
            registry=self.registry,
        )

    def set_model(self, name: str, version: str | None, run_id: str | None, source: str) -> None:
        """Point the model-info gauge at the model now serving (series are set to 0, not removed: removing is
        not possible in multiprocess mode)."""
        labels = (name, version or "", run_id or "", source)
        if self._model_labels is not None and self._model_labels != labels:
            self.model.labels(*self._model_labels).set(0)
        self.model.labels(*labels).set(1)
        self._model_labels = labels

    def exposition(self) -> bytes:
        """The text exposition format: this app's registry, or every worker's files in multiprocess mode."""
        directory = multiprocess_dir()
        if directory is None:
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))

    def close(self) -> None:
        """A worker going away: drop its per-process gauge series (its counters keep counting in the totals)."""
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)
        if status == CLIENT_CLOSED:  # the client left before an answer: neither its error nor ours
            self.errors.labels(route=route, kind="client_closed").inc()
        elif status >= 400:
            self.errors.labels(route=route, kind="5xx" if status >= 500 else "4xx").inc()
