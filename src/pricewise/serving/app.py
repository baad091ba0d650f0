"""Settings and config in, the FastAPI application (API, seller and monitoring pages, metrics and docs where
configured, security headers, lifespan-managed model) out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError

from pricewise import __version__
from pricewise.config import Config, load_config
from pricewise.serving import limits, log_figures, monitoring_routes, outcomes_routes, pages, routes
from pricewise.serving.batching import LoopBatcher, MicroBatcher
from pricewise.serving.headers import SecurityHeaders
from pricewise.serving.middleware import BodySizeLimit, RequestTelemetry
from pricewise.serving.model_holder import ModelHolder
from pricewise.serving.observability import Metrics
from pricewise.serving.throttle import ClientRateLimit
from pricewise.settings import Settings, get_settings
from pricewise.store.prediction_log import PredictionLog, default_url
from pricewise.store.sql import StoreUnavailableError, is_unavailable, reason

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
# Swagger UI and ReDoc as files of an installed package: the docs need no CDN and no network.
DOCS_ASSETS = Path(str(files("fastapi_offline") / "static"))
DOCS_ASSETS_PATH = "/static/docs"
LOG_GROUP_MAX = 512
DESCRIPTION = (
    "Price suggestions for second-hand listings. Every suggestion carries a request id, is written to the "
    "prediction log before it is returned, and can be followed up with `/v1/feedback`."
)


async def _poll_champion(app: FastAPI, every_seconds: float) -> None:
    """Pick up a new champion without a restart; failures are logged and the current model keeps serving."""
    holder: ModelHolder = app.state.models
    metrics: Metrics = app.state.metrics
    while True:
        await asyncio.sleep(every_seconds)
        try:
            outcome = await asyncio.to_thread(holder.reload)
        except Exception:
            logger.exception("champion poll failed")
            continue
        if outcome.changed or outcome.failed:
            metrics.reloads.labels(outcome="failed" if outcome.failed else "ok").inc()
            logger.info("champion poll: %s", outcome.detail)
        served = holder.served
        if served is not None:
            metrics.set_model(served.name, served.version, served.run_id, served.source)


def _one_torch_thread_per_request() -> None:
    """Serving runs one request per thread: torch's intra-op thread pool only adds hand-off cost for one row
    (about 8 ms -> 0.1 ms per MLP on two cores), so each worker process uses one torch thread."""
    import torch  # noqa: PLC0415 - a heavy import, needed only once the server starts

    torch.set_num_threads(1)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    config: Config = app.state.config
    _one_torch_thread_per_request()
    log = PredictionLog(default_url(settings), config.serve.log_synchronous)
    app.state.prediction_log = log
    app.state.log_figures = log_figures.LogFigures(log)
    app.state.pricer = LoopBatcher(routes.price_listings, config.serve.max_batch, "pricewise-pricer")
    app.state.thread_pricer = MicroBatcher(
        routes.price_listings, config.serve.max_batch, "pricewise-thread-pricer"
    )
    app.state.thread_pricer.start()
    app.state.log_writer = MicroBatcher(log.record_groups, LOG_GROUP_MAX, "pricewise-log-writer")
    app.state.log_writer.start()
    holder: ModelHolder = app.state.models
    await asyncio.to_thread(holder.load_initial)
    served = holder.served
    if served is not None:
        app.state.metrics.set_model(served.name, served.version, served.run_id, served.source)
        logger.info("serving %s v%s from %s", served.name, served.version, served.source)
    poller = None
    if config.serve.reload_poll_seconds > 0:
        poller = asyncio.create_task(_poll_champion(app, config.serve.reload_poll_seconds))
    try:
        yield
    finally:
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        app.state.thread_pricer.stop()
        app.state.log_writer.stop()
        log.close()
        app.state.metrics.close()


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 with the field path, message and type of each error; the input is not echoed back (it can be huge,
    binary, or personal), so the answer is always small, valid JSON."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    errors = limits.restate_ceilings(list(errors), request.app.state.config.serve)
    detail = [
        {
            "type": str(error.get("type", "")),
            "loc": [_plain(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            **({"ctx": {k: _plain(v) for k, v in error["ctx"].items()}} if error.get("ctx") else {}),
        }
        for error in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A database is down or restarting: 503 with its reason and a Retry-After, so clients retry; nothing was
    returned for the request, and a suggestion is only returned once it is committed. Any other database error
    is a bug of ours (500)."""
    if isinstance(exc, SQLAlchemyError) and not is_unavailable(exc):
        return await _unexpected(request, exc)
    detail = (
        str(exc) if isinstance(exc, StoreUnavailableError) else f"a database is unavailable: {reason(exc)}"
    )
    logger.warning("%s: %s", request.url.path, detail)
    return JSONResponse({"detail": f"{detail}; retry shortly"}, status_code=503, headers={"Retry-After": "1"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug of ours: log it with the trace id, answer 500 without internals."""
    trace_id = getattr(request.state, "trace_id", None)
    logger.error("unhandled error", exc_info=exc, extra={"trace.id": trace_id, "url.path": request.url.path})
    return JSONResponse({"detail": "internal error", "trace_id": trace_id}, status_code=500)


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs (with its OAuth2 redirect page) and ReDoc at /redoc, their scripts, styles and icon
    from `DOCS_ASSETS_PATH`: the pages load nothing from another host."""
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=str(DOCS_ASSETS)), name="docs-assets")

    def local(request: Request, path: str) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/") + path

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=local(request, "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=local(request, f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js"),
            swagger_css_url=local(request, f"{DOCS_ASSETS_PATH}/swagger-ui.css"),
            swagger_favicon_url=local(request, f"{DOCS_ASSETS_PATH}/favicon.png"),
            oauth2_redirect_url=local(request, oauth2_redirect_url),
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=local(request, "/openapi.json"),
            title=f"{app.title} - ReDoc",
            redoc_js_url=local(request, f"{DOCS_ASSETS_PATH}/redoc.standalone.js"),
            redoc_favicon_url=local(request, f"{DOCS_ASSETS_PATH}/favicon.png"),
            with_google_fonts=False,
        )


def create_app(settings: Settings, config: Config) -> FastAPI:
    """Build the API; the model and the prediction log are opened by the lifespan, not here.

    Args:
        settings: Environment settings (registry, data directory, admin token, prediction log URL).
        config: Stage parameters; `config.serve` holds the request limits and the reload poll interval.

    Returns:
        The application, with its state (settings, config, metrics, model holder) on `app.state`.
    """
    app = FastAPI(
        title="pricewise",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
        # The interactive docs and the schema are opt-in: a public server need not describe itself. The docs
        # pages are our own routes (below), built on local copies of Swagger UI and ReDoc.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if config.serve.expose_docs else None,
    )
    app.state.settings = settings
    app.state.config = config
    app.state.metrics = Metrics()
    app.state.models = ModelHolder(settings, config)
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.state.feedback_limit = ClientRateLimit(config.serve.feedback_per_minute)
    app.state.admin_failures = ClientRateLimit(
        config.serve.admin_failures_per_minute, what="wrong admin tokens"
    )
    app.include_router(routes.api)
    app.include_router(routes.ops)
    if config.serve.expose_metrics:  # off: /metrics does not exist (404)
        app.include_router(routes.metrics_api)
    app.include_router(pages.page)
    app.include_router(monitoring_routes.api)
    app.include_router(monitoring_routes.reports)
    app.include_router(monitoring_routes.page)
    if routes.admin_token(settings) is not None:  # no token: the admin endpoints do not exist (404)
        app.include_router(routes.admin)
    if outcomes_routes.outcomes_token(settings) is not None:  # no token: no outcomes endpoint (404)
        app.include_router(outcomes_routes.api)
    if config.serve.expose_docs:
        _add_docs(app)  # before /static: its mount would take /static/docs/ too
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StoreUnavailableError, _store_unavailable)
    app.add_exception_handler(SQLAlchemyError, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=config.serve.max_body_bytes,
        timeout_seconds=config.serve.body_timeout_seconds,
    )
    app.add_middleware(RequestTelemetry, metrics=app.state.metrics)
    # Outermost: the other middlewares' own answers (413, 408) get the headers too.
    app.add_middleware(SecurityHeaders)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = limits.patch_openapi(schema, config.serve)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory for each worker: settings from the environment, config from PRICEWISE_CONFIG_PATH."""
    settings = get_settings()
    path = settings.config_path if settings.config_path.exists() else None
    return create_app(settings, load_config(path))
