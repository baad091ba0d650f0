"""Command-line arguments in, a stage run and its printed result out; the CLI holds no logic of its own.

Stage modules are imported inside their commands: the model stages pull in MLflow and PyTorch, which would
otherwise add seconds to every `pricewise ingest` or `pricewise data status`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from pricewise import logs, progress
from pricewise.config import Config, load_config
from pricewise.errors import PricewiseError
from pricewise.settings import Settings, get_settings

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="pricewise: price suggestions for second-hand listings, from raw files to a served model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and fetch data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
outcomes_app = typer.Typer(
    help="Trusted sold prices (the labels retraining learns from).", no_args_is_help=True
)
app.add_typer(outcomes_app, name="outcomes")

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """What every command needs: settings from the environment and the stage parameters."""

    settings: Settings
    config_path: Path | None

    def config(self) -> Config:
        """Load the stage parameters (built-in defaults when the default file is absent)."""
        return load_config(self.config_path)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error for a person and return the exit to raise."""
    typer.secho(f"error: {logs.redact(message)}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn errors into a one-line message and a non-zero exit instead of a traceback.

    Errors the user can fix exit 2; anything unexpected exits 3, with the traceback logged under --verbose.
    """
    try:
        yield
    except PricewiseError as exc:
        raise fail(str(exc)) from exc
    except Exception as exc:
        logger.info("unexpected failure", exc_info=True)
        raise fail(
            f"unexpected failure: {type(exc).__name__}: {exc} (run with --verbose for details)", 3
        ) from exc


def guarded(func: Callable[[], T]) -> T:
    """Run a stage, turning user-fixable errors into a clean exit."""
    with user_errors():
        return func()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Stage parameters (YAML). Default: PRICEWISE_CONFIG_PATH."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
) -> None:
    """Configure logging, read settings and find the stage parameters."""
    logs.configure(verbose)
    progress.quiet_libraries()
    settings = guarded(get_settings)
    config_path: Path | None = config if config is not None else settings.config_path
    if config is None and not settings.config_path.exists():
        config_path = None
    ctx.obj = Context(settings=settings, config_path=config_path)


def _context(ctx: typer.Context) -> Context:
    obj = ctx.obj
    if not isinstance(obj, Context):
        raise fail("internal: command context missing")
    return obj


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Files (.tsv .csv .gz .zip .7z .parquet) or directories of them.")
    ],
    mapping: Annotated[
        str | None,
        typer.Option(help="Another marketplace's mapping: a name in configs/sources/ or a YAML file's path."),
    ] = None,
) -> None:
    """Load listing files into the warehouse as batches, with lineage; content already there is skipped."""
    from pricewise import ingest  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: ingest.run(c.config(), c.settings, paths, mapping))
    for b in result.batches:
        if b.already_ingested:
            typer.echo(f"{b.source_name}: already ingested as batch {b.batch_id}, nothing to do")
        else:
            typer.echo(
                f"{b.source_name}: batch {b.batch_id}, {b.kind}, {b.rows} rows read "
                f"({b.parse_rejected} unparseable, quarantined at validation)"
            )
    typer.echo(f"{len(result.new_batches)} new batch(es) in {c.settings.warehouse}")


@app.command("validate")
def validate_command(
    ctx: typer.Context,
    batch: Annotated[
        str | None, typer.Option("--batch", "-b", help="Batch to (re)validate; default: all new.")
    ] = None,
) -> None:
    """Check rows and batches; accept, quarantine with reasons, and report. Exits 1 when a batch fails."""
    from pricewise import validate  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: validate.run(c.config(), c.settings, batch))
    if not result.batches:
        typer.echo("no batches waiting for validation (use --batch ID to validate one again)")
    for b in result.batches:
        typer.echo(
            f"batch {b.batch_id} ({b.source_name}): {b.status.upper()}: {b.accepted} accepted, "
            f"{b.rejected} rejected of {b.rows_read} read"
        )
        for reason, n in list(b.reasons.items())[:5]:
            typer.echo(f"  reject reason {reason}: {n}")
        for check in b.checks:
            if check.status != "pass":
                typer.echo(f"  {check.status}: {check.name} = {check.value} ({check.detail})")
        typer.echo(f"  report: {b.report_html}")
    if result.failed:
        raise typer.Exit(1)


@app.command("split")
def split_command(ctx: typer.Context) -> None:
    """Reassign train/valid/test splits from listing ids with the configured shares."""
    from pricewise import split  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: split.run(c.config(), c.settings))
    typer.echo(", ".join(f"{name}: {n}" for name, n in result.counts.items()))


@data_app.command("status")
def status_command(ctx: typer.Context) -> None:
    """Show batches, row counts, accepted/rejected and the last validation result."""
    from pricewise.store import status  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: status.run(c.settings))
    typer.echo(f"warehouse {result.warehouse}")
    if not result.batches:
        typer.echo("no batches yet: run `pricewise ingest PATH`")
    for b in result.batches:
        verdict = (
            f"{b.status}: {b.accepted} accepted, {b.rejected} rejected" if b.status else "not validated yet"
        )
        typer.echo(f"{b.batch_id}  {b.kind:8}  {b.rows:>9} rows  {b.ingested_at}  {verdict}  {b.source_name}")
    splits = ", ".join(f"{k}: {v}" for k, v in sorted(result.training_splits.items()))
    typer.echo(f"training listings by split: {splits or 'none'}")


@data_app.command("download")
def download_command(ctx: typer.Context) -> None:
    """Fetch train.tsv.7z from Kaggle (needs the kaggle extra and credentials)."""
    from pricewise.inputs import kaggle  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    for path in guarded(lambda: kaggle.run(c.settings)):
        typer.echo(f"downloaded {path}; next: pricewise ingest {path}")


@data_app.command("harvest-feedback")
def harvest_feedback_command(ctx: typer.Context) -> None:
    """Turn trusted sold prices (outcomes) into a priced batch (ingested; `pricewise validate` checks it)."""
    from pricewise import harvest  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: harvest.run(c.config(), c.settings))
    if result.batch_id is None:
        typer.echo(f"no new sold prices in the outcomes ({result.sold} already harvested)")
    else:
        typer.echo(
            f"{result.harvested} sold listings from outcomes ({result.sources_text()}) ingested as batch "
            f"{result.batch_id}; "
            "next: pricewise validate"
        )


@outcomes_app.command("import")
def outcomes_import_command(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="The marketplace's sales export (.csv or .tsv, optionally .gz).")
    ],
) -> None:
    """Store a sales export's sold prices as trusted outcomes of logged suggestions, all or nothing."""
    from pricewise import outcomes  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: outcomes.run(c.config(), c.settings, path))
    typer.echo(
        f"{result.stored} outcomes stored from {result.path.name} (source {result.source}), "
        f"{result.already_recorded} already recorded; next: pricewise data harvest-feedback"
    )


@app.command("train")
def train_command(ctx: typer.Context) -> None:
    """Fit the rules baseline and the main model on the training split; track and register both in MLflow."""
    from pricewise import train  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: train.run(c.config(), c.settings))
    typer.echo(f"run {result.run_id} on {result.rows} listings from batches {', '.join(result.batch_ids)}")
    for m in (result.baseline, result.main):
        figures = ", ".join(f"{k} {v:.4f}" for k, v in m.metrics.items())
        typer.echo(f"{m.kind}: {m.registered_model} v{m.version}: {figures}")
    typer.echo(
        f"challenger: {result.main.registered_model} v{result.main.version}; "
        "next: pricewise evaluate, then pricewise promote"
    )


@app.command("tune")
def tune_command(
    ctx: typer.Context,
    max_evals: Annotated[int | None, typer.Option(min=1, help="Trials; default from config.")] = None,
    engine: Annotated[
        str, typer.Option(help="local (one trial at a time), or spark (tasks on PRICEWISE_SPARK_MASTER).")
    ] = "local",
    parallelism: Annotated[
        int | None, typer.Option(help="Spark only: trials at once; default the master's default parallelism.")
    ] = None,
) -> None:
    """Search the main model's hyperparameters with Hyperopt (TPE); save the best for `train`."""
    from pricewise import tune  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: tune.run(c.config(), c.settings, max_evals, engine, parallelism))
    on = f" on {result.engine}, {result.parallelism} at a time" if result.engine != "local" else ""
    failed = f" ({result.failed_trials} failed)" if result.failed_trials else ""
    typer.echo(
        f"{result.trials} trials{failed}{on} in run {result.run_id}; "
        f"best valid RMSLE {result.best_valid_rmsle:.4f}"
    )
    typer.echo(f"best parameters {result.best_params} saved to {result.saved_to}")


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="MLflow model URI; default the champion.")] = None,
) -> None:
    """Score the test split: RMSLE, MAE and range coverage overall and by segment, with plots and a report."""
    from pricewise import evaluate  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: evaluate.run(c.config(), c.settings, model))
    typer.echo(f"{result.model_uri}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.overall.items()))
    typer.echo(f"report: {result.report_html}")


@app.command("export")
def export_command(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the exported files.")],
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    model: Annotated[
        str | None, typer.Option(help="Registry URI (models:/name@alias); default the champion.")
    ] = None,
) -> None:
    """Export the parts of a model that convert (the sentence encoder, to ONNX), checked against the model."""
    from pricewise import export  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: export.run(c.config(), c.settings, output, model, fmt))
    typer.echo(
        f"{result.model_uri} (v{result.model_version}): the sentence encoder, within "
        f"{result.max_abs_diff:.1e} of the Python encoder, in {result.directory}"
    )
    for file in result.files:
        typer.echo(f"  {file.name} ({file.stat().st_size / 1e6:.1f} MB)")
    typer.echo("the sparse components, the kernel ridge, the blend and the ranges stay Python")


@app.command("promote")
def promote_command(ctx: typer.Context) -> None:
    """Promote the challenger to champion if it passes the gate; record the decision either way."""
    from pricewise import promote  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    decision = guarded(lambda: promote.run(c.config(), c.settings))
    typer.echo(f"{decision.action}: {decision.reason}")
    typer.echo(f"champion of {decision.registered_model}: v{decision.champion_after}")


@app.command("rollback")
def rollback_command(ctx: typer.Context) -> None:
    """Restore the previous champion in one step."""
    from pricewise import promote  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    decision = guarded(lambda: promote.rollback(c.config(), c.settings))
    typer.echo(f"{decision.reason}; champion of {decision.registered_model}: v{decision.champion_after}")


@app.command("predict")
def predict_command(
    ctx: typer.Context,
    input_path: Annotated[Path, typer.Option("--input", "-i", help="Listings in any format ingest takes.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Scores: .csv, .tsv or .parquet.")],
    model: Annotated[str | None, typer.Option(help="MLflow model URI; default the champion.")] = None,
    engine: Annotated[
        str, typer.Option(help="local, or spark (PRICEWISE_SPARK_MASTER; writes a folder of part files).")
    ] = "local",
    mapping: Annotated[
        str | None,
        typer.Option(help="Another marketplace's mapping: a name in configs/sources/ or a YAML file's path."),
    ] = None,
) -> None:
    """Score a file of listings: id, price, low, high, model version; rejected rows get their reasons."""
    from pricewise import predict  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    result = guarded(lambda: predict.run(c.config(), c.settings, input_path, output, model, engine, mapping))
    typer.echo(
        f"{result.scored} scored, {result.rejected} rejected with {result.model_version} "
        f"in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s): {result.output}"
    )


def _parse_time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise fail(f"{option} {text!r} is not an ISO 8601 time such as 2026-11-23T12:00:00+00:00") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@app.command("monitor")
def monitor_command(
    ctx: typer.Context,
    last_hours: Annotated[
        float | None,
        typer.Option(min=0.001, help="Window: the last H hours of suggestions; default from config."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Window start (ISO 8601, UTC unless an offset is given).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Window end (ISO 8601); default now.")] = None,
    batch: Annotated[
        str | None, typer.Option("--batch", "-b", help="Compare an ingested batch instead.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on the last line.")
    ] = False,
) -> None:
    """Compare a window (suggestions logged over a period, or a batch) with the champion's training data."""
    from pricewise import monitor  # noqa: PLC0415 - see module docstring
    from pricewise.monitoring.windows import ComparedWindow  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    if batch is not None and (last_hours is not None or since is not None or until is not None):
        raise fail("--batch compares one batch; it does not combine with --last-hours, --since or --until")
    if last_hours is not None and since is not None:
        raise fail("give either --last-hours or --since, not both")
    start, end = _parse_time(since, "--since"), _parse_time(until, "--until")
    if start is not None and end is not None and start >= end:
        raise fail(f"--since {since} is not before --until {until}")
    config = guarded(c.config)
    if batch is not None:
        window = ComparedWindow.of_batch(batch)
    elif start is not None:
        window = ComparedWindow("predictions", start=start, end=end or datetime.now(UTC))
    else:
        hours = last_hours if last_hours is not None else config.monitor.window_hours
        window = ComparedWindow.last_hours(hours, end)
    result = guarded(lambda: monitor.run(config, c.settings, window))
    typer.echo(f"monitoring run {result.run_id}: {result.status.upper()}: {result.message}")
    if result.report_html:
        typer.echo(f"report: {result.report_html}")
    if as_json:
        typer.echo(json.dumps(result.summary(), default=str))


@app.command("retrain")
def retrain_command(
    ctx: typer.Context,
    if_needed: Annotated[
        bool, typer.Option("--if-needed", help="Retrain only when a rule of the retrain policy triggers.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Decide and record the decision; train nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcome as JSON on the last line.")
    ] = False,
) -> None:
    """Retrain a challenger on the current data and put it through the promotion gate; record why."""
    from pricewise import retrain  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    if check and if_needed:
        raise fail("--check only decides; it does not combine with --if-needed")
    mode: retrain.Mode = "check" if check else "if-needed" if if_needed else "force"
    outcome = guarded(lambda: retrain.run(c.config(), c.settings, mode))
    typer.echo(outcome.message)
    for rule in outcome.reasons:
        mark = "TRIGGERED" if rule.triggered else "ok"
        typer.echo(f"  {rule.rule}: {mark}: {rule.detail}")
    if as_json:
        typer.echo(json.dumps(outcome.summary(), default=str))


@app.command("serve")
def serve_command(ctx: typer.Context) -> None:
    """Run the suggestion API and seller page on uvicorn (host, port and workers from PRICEWISE_SERVE_*)."""
    from pricewise.serving import server  # noqa: PLC0415 - see module docstring

    c = _context(ctx)
    # Said once /ready answers: the workers load the model before they listen.
    guarded(lambda: server.run(c.settings, c.config_path, on_ready=typer.echo))
