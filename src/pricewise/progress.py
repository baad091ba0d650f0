"""A stage's steps in, progress lines with elapsed time and an estimate of the time left out: styled lines on
stderr for a person at a terminal, INFO log records otherwise (a pipe, a file, JSON logs); and the switches that
quiet the libraries' own progress bars and warnings, set by an entry point (`quiet_libraries`)."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.text import Text

from pricewise import logs

logger = logging.getLogger(__name__)

# MLflow draws a tqdm bar for every artifact download, also when a model loads from the local store.
MLFLOW_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
# Without it, `import mlflow` gives MLflow's loggers a handler of their own, at INFO, which writes past the
# entry point's format (plain lines with secrets masked, or the server's JSON) and its verbosity.
MLFLOW_CONFIGURE_LOGGING = "MLFLOW_CONFIGURE_LOGGING"


class _DropMessage(logging.Filter):
    """Drops the records of one logger whose message starts with a given text."""

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def quiet_libraries() -> None:
    """Turn off MLflow's artifact download bars (unless the environment already sets the switch) and hide the
    libraries' warnings that say nothing a pricewise user can act on. Called by entry points, never on import.

    Each warning is matched by its category and the start of its message, so any other warning still shows.
    MLflow's loggers are left to the entry point's logging (set before MLflow is imported: the stage commands
    import it).
    """
    os.environ.setdefault(MLFLOW_PROGRESS_BAR, "false")
    os.environ.setdefault(MLFLOW_CONFIGURE_LOGGING, "false")
    # Logged at WARNING for every model train logs: pricewise logs its models as Python objects on purpose (the
    # pickle holds the fitted model and its serving reference), and loads them only from its own registry.
    pyfunc = logging.getLogger("mlflow.pyfunc")
    if not any(isinstance(f, _DropMessage) for f in pyfunc.filters):
        pyfunc.addFilter(_DropMessage("Passing a Python object as `python_model`"))
    # Alembic, run by MLflow's SQL tracking store and by the prediction log at every start, logs each plugin it
    # sets up and its migration context at INFO: a dozen lines of the server's log that say nothing. Its warnings
    # and errors still show.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # MLflow registers its local artifact source twice and then warns that a path could be either of the two.
    warnings.filterwarnings(
        "ignore",
        message=r"The specified dataset source can be interpreted in multiple ways",
        category=UserWarning,
        module=r"mlflow\.data\.",
    )
    # A hint on inferring a schema from the input example; the logged signature declares condition and shipping
    # integers on purpose (they are never missing), so the hint does not apply.
    warnings.filterwarnings(
        "ignore",
        message=r"Hint: Inferred schema contains integer column",
        category=UserWarning,
        module=r"mlflow\.types\.",
    )


def format_seconds(seconds: float) -> str:
    """A duration for a person: `45s`, `3m10s`, `1h05m`."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _time_left(seconds: float) -> str:
    """A rough time left, in whole minutes: an estimate from a few steps is no finer."""
    if seconds < 60:
        return "under a minute left"
    return f"about {round(seconds / 60)}m left"


def per_chunk(stage: str, total_rows: int | None = None) -> Callable[[int], None]:
    """A function for a stage that works in chunks to call after each one with its row count: a line at most
    every few seconds (see `Progress.advance`) with the rows done and, given the total, the time left.

    Args:
        stage: The stage's name (`predict`).
        total_rows: Rows in all, when known.

    Returns:
        The function to call with each chunk's rows.
    """
    return Progress(stage, total=total_rows, unit="rows").advance


def shows_live(stream: TextIO) -> bool:
    """True when progress goes to `stream` as styled lines: it is a terminal and the logs are not JSON lines."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty()) and not logs.writes_json()


class Progress:
    """The progress of one stage: a line per step with the count done, elapsed time and, where the total is
    known and a step is done, an estimate of the time left (the mean time per step so far times the steps left).

    On a terminal, unless the logs are JSON lines, the lines go to the stream, styled; otherwise each line is an INFO record of
    this module's logger, shown with `--verbose` (or in the server's JSON logs).
    """

    def __init__(
        self,
        stage: str,
        *,
        total: int | None = None,
        unit: str = "steps",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        since: float | None = None,
        min_interval: float = 5.0,
    ) -> None:
        """Start counting.

        Args:
            stage: The stage's name, which leads every line (`train`, `tune`...).
            total: How many steps there are, when known (no estimate of the time left without it).
            unit: What a step is, for the count (`components`, `trials`, `rows`).
            stream: Where styled lines go on a terminal; default: stderr at the time of the call.
            clock: Seconds of a monotonic clock (a fake one in tests).
            since: Clock time the elapsed time counts from (default: now); a part of a stage passes the stage's
                start, so that its lines show the stage's elapsed time.
            min_interval: `advance` reports at most once per this many seconds (and always the last step).
        """
        self.stage = stage
        self.total = total
        self.unit = unit
        self.done = 0
        self._clock = clock
        self._counted_from = clock()
        self._started = self._counted_from if since is None else since
        self._min_interval = min_interval
        self._last_report: float | None = None
        self._stream = stream if stream is not None else sys.stderr
        self._console = (
            Console(file=self._stream, highlight=False, soft_wrap=True) if shows_live(self._stream) else None
        )

    @property
    def elapsed(self) -> float:
        """Seconds since the stage started."""
        return self._clock() - self._started

    def part(self, *, total: int | None, unit: str) -> Progress:
        """A counter for a part of this stage (the main model's components, say), with the stage's elapsed time."""
        return Progress(
            self.stage,
            total=total,
            unit=unit,
            stream=self._stream,
            clock=self._clock,
            since=self._started,
            min_interval=self._min_interval,
        )

    def line(self, label: str = "") -> str:
        """The progress line as it stands: `train: 2/5 components, mlp 1 of 2 ... 3m10s elapsed, about 4m left`."""
        count = f"{self.done}/{self.total} {self.unit}" if self.total is not None else ""
        head = ", ".join(part for part in (count, label) if part)
        tail = f"{format_seconds(self.elapsed)} elapsed"
        left = self.seconds_left()
        if left is not None:
            tail += f", {_time_left(left)}"
        return f"{self.stage}: {head} ... {tail}" if head else f"{self.stage}: {tail}"

    def seconds_left(self) -> float | None:
        """The estimate of the time left; None before the first step is done or without a total."""
        if self.total is None or self.done <= 0 or self.done >= self.total:
            return None
        per_step = (self._clock() - self._counted_from) / self.done
        return per_step * (self.total - self.done)

    def step(self, label: str, *, done: int | None = None) -> None:
        """Report that a step begins.

        Args:
            label: What runs now (`mlp 1 of 2`, `drift`).
            done: Steps finished before it, when the caller counts them (else the count of `advance` calls).
        """
        if done is not None:
            self.done = done
        self._emit(self.line(label))

    def advance(self, amount: int = 1, label: str = "") -> None:
        """Count `amount` steps (a chunk's rows, say) as done; reports at most once per `min_interval` seconds,
        and always when the total is reached.

        Args:
            amount: Steps just finished.
            label: What was done, for the line.
        """
        self.done += amount
        now = self._clock()
        finished = self.total is not None and self.done >= self.total
        if not finished and self._last_report is not None and now - self._last_report < self._min_interval:
            return
        self._last_report = now
        self._emit(self.line(label))

    def finish(self, summary: str = "done") -> None:
        """Report the end of the stage: `train: done in 7m02s`."""
        self._emit(f"{self.stage}: {summary} in {format_seconds(self.elapsed)}")

    def _emit(self, text: str) -> None:
        if self._console is not None:
            styled = Text(text)
            styled.stylize("bold", 0, len(self.stage) + 1)
            self._console.print(styled)
        else:
            logger.info("%s", text)
