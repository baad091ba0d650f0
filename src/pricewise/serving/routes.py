"""HTTP requests in, suggestions, feedback, model facts, health, metrics and the seller page out.

A single suggestion (the request sellers and integrations send most) is priced on the event loop, which is
cheaper than any thread hand-off for well under a millisecond of work; its log commit waits in the log
writer's thread. Everything slower (batches, explanations, comparables, feedback, admin) is a plain function
that FastAPI runs in its thread pool, so it never stalls the loop.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from pricewise.config import Config
from pricewise.models.comparables import Match
from pricewise.models.confidence import assess, vocabulary_of, what_if
from pricewise.serving import bearer, disclosure, limits, monitoring_view
from pricewise.serving.model_holder import ModelHolder, ServedModel
from pricewise.serving.observability import Metrics
from pricewise.serving.schemas import (
    BatchRequest,
    BatchResponse,
    Comparable,
    Confidence,
    Explanation,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    Listing,
    ModelInfo,
    Reason,
    ReloadResponse,
    Suggestion,
    WhatIf,
)
from pricewise.settings import Settings
from pricewise.store.prediction_log import LoggedSuggestion, PredictionLog

INCLUDE_PATTERN = r"^(explanation|comparables)(,(explanation|comparables))*$"
NO_MODEL: dict[int | str, dict[str, Any]] = {503: {"description": "No model is loaded yet (see /ready)."}}

api = APIRouter(prefix="/v1", tags=["suggestions"])
ops = APIRouter(tags=["operations"])
metrics_api = APIRouter(tags=["operations"])  # mounted only with serve.expose_metrics
admin = APIRouter(prefix="/v1/admin", tags=["admin"])


def _holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.models
    return holder


def _served(request: Request) -> ServedModel:
    served = _holder(request).served
    if served is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model loaded yet; see /ready")
    return served


def _log(request: Request) -> PredictionLog:
    log: PredictionLog = request.app.state.prediction_log
    return log


def _config(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


# Dependencies are coroutines so FastAPI calls them on the event loop: as plain functions each would cost a
# hop through the thread pool on every request.
async def _served_dependency(request: Request) -> ServedModel:
    return _served(request)


async def _log_dependency(request: Request) -> PredictionLog:
    return _log(request)


async def _config_dependency(request: Request) -> Config:
    return _config(request)


Served = Annotated[ServedModel, Depends(_served_dependency)]
Log = Annotated[PredictionLog, Depends(_log_dependency)]
Cfg = Annotated[Config, Depends(_config_dependency)]
Include = Annotated[
    str | None,
    Query(
        pattern=INCLUDE_PATTERN,
        max_length=40,
        description="Comma-separated extras: `explanation` (what moved the price), `comparables` (similar listings).",
        examples=["explanation,comparables"],
    ),
]


def model_info(served: ServedModel) -> ModelInfo:
    """What the API says about the model serving."""
    return ModelInfo(
        name=served.name,
        version=served.version,
        run_id=served.run_id,
        source=served.source,
        fallback=served.fallback,
        loaded_at=served.loaded_at,
    )


PriceItem = tuple[ServedModel, dict[str, Any]]
Prices = tuple[float, float, float]


def price_listings(items: list[PriceItem]) -> list[Prices]:
    """Price listings gathered from concurrent requests: one model call per model among them.

    Args:
        items: (model the request started with, raw listing fields) per request; a reload can leave requests
            for two models in one batch, and each keeps its own.

    Returns:
        (price, low, high) per item, in order.
    """
    by_model: dict[int, list[int]] = {}
    for position, (served, _) in enumerate(items):
        by_model.setdefault(id(served), []).append(position)
    prices: list[Prices] = [(0.0, 0.0, 0.0)] * len(items)
    for positions in by_model.values():
        served = items[positions[0]][0]
        scored = served.suggester.suggest_records([items[p][1] for p in positions])
        for position, row in zip(positions, scored, strict=True):
            prices[position] = row
    return prices


def _extras(include: str | None) -> set[str]:
    return set((include or "").split(",")) - {""}


def _suggestions(
    served: ServedModel,
    records: list[dict[str, Any]],
    scored: list[Prices],
    extras: set[str],
    config: Config,
) -> list[Suggestion]:
    """Suggestions for priced listings, with their confidence and the requested extras (explanation, comparables).

    The confidence flags are set lookups in the model's cached vocabulary, cheap enough for every suggestion; its
    what-if prices need the comparables search and a model call, so they come only with the explanation.
    """
    info = model_info(served)
    coverage = float(served.suggester.ranges.coverage)
    vocabulary = vocabulary_of(served.suggester.model)
    index = served.comparables
    suggestions = []
    for record, (price, low, high) in zip(records, scored, strict=True):
        assessment = assess(vocabulary, record)
        explanation = comparables = what_ifs = None
        match: Match | None = None
        guessable = "explanation" in extras and {"brand_name", "category_name"} & set(assessment.missing)
        if index is not None and ("comparables" in extras or guessable):
            match = index.search(pd.DataFrame([record]), config.serve.comparables)
        if "explanation" in extras:
            if served.explainer is None:
                explanation = Explanation(up=[], down=[], note="not available for the rules baseline")
            else:
                reasons = served.explainer.explain(pd.DataFrame([record]))
                explanation = Explanation(
                    up=[
                        Reason(feature=r.feature, effect=round(r.effect, 4), text=r.text) for r in reasons.up
                    ],
                    down=[
                        Reason(feature=r.feature, effect=round(r.effect, 4), text=r.text)
                        for r in reasons.down
                    ],
                    note=served.explainer.note,
                )
            what_ifs = [
                WhatIf(**vars(w)) for w in what_if(served.suggester, record, price, assessment, match)
            ]
        if "comparables" in extras:
            comparables = [Comparable(**vars(n)) for n in match.neighbours] if match is not None else []
        suggestions.append(
            Suggestion(
                request_id=uuid.uuid4().hex,
                price=price,
                low=low,
                high=high,
                coverage=coverage,
                model=info,
                explanation=explanation,
                comparables=comparables,
                confidence=Confidence(
                    level=assessment.level, unfamiliar=list(assessment.unfamiliar), what_if=what_ifs
                ),
            )
        )
    return suggestions


def _log_rows(
    served: ServedModel,
    suggestions: list[Suggestion],
    records: list[dict[str, Any]],
    started: float,
    batch_id: str | None,
) -> list[LoggedSuggestion]:
    latency_ms = (time.perf_counter() - started) * 1000 / max(len(suggestions), 1)
    return [
        LoggedSuggestion(
            request_id=s.request_id,
            batch_id=batch_id,
            model_name=served.name,
            model_version=served.version,
            model_run_id=served.run_id,
            fallback=served.fallback,
            inputs=record,
            outputs=s.model_dump(exclude={"model", "request_id"}),
            latency_ms=latency_ms,
        )
        for s, record in zip(suggestions, records, strict=True)
    ]


def _price(
    request: Request,
    served: ServedModel,
    listings: list[Listing],
    include: str | None,
    config: Config,
    batch_id: str | None,
) -> list[Suggestion]:
    """Price listings in one model call, add the requested extras, and commit them to the prediction log before
    returning (runs in the thread pool: batches and extras take milliseconds, too long for the event loop).

    Log rows go through the log writer, which commits the rows of all requests waiting in one transaction and
    returns to each only after that commit.
    """
    started = time.perf_counter()
    records = [listing.model_dump() for listing in listings]
    scored = served.suggester.suggest_records(records)
    suggestions = _suggestions(served, records, scored, _extras(include), config)
    request.app.state.log_writer.submit(_log_rows(served, suggestions, records, started, batch_id))
    _metrics(request).suggestions.labels(source=served.source).inc(len(suggestions))
    return suggestions


async def _price_one(request: Request, served: ServedModel, listing: Listing, config: Config) -> Suggestion:
    """Price one listing without extras; it is committed to the log before returning.

    Pricing one listing with the sparse model takes well under a millisecond, less than a hand-off to a thread
    would cost, so it runs on the loop through the pricing batcher (listings that arrive in the same turn of the
    loop share a model call). A model with the sentence encoder takes milliseconds, which would stall every other
    request, so it is priced by the same batching in a thread. The commit waits in the log writer's thread, so
    the loop keeps serving meanwhile.
    """
    started = time.perf_counter()
    state = request.app.state
    record = listing.model_dump()
    if served.prices_on_loop:
        scored = await state.pricer.submit((served, record))
    else:
        scored = await state.thread_pricer.submit_async((served, record))
    (suggestion,) = _suggestions(served, [record], [scored], set(), config)
    await state.log_writer.submit_async(_log_rows(served, [suggestion], [record], started, None))
    _metrics(request).suggestions.labels(source=served.source).inc()
    return suggestion


@api.post("/suggestions", response_model=Suggestion, responses=NO_MODEL)
async def suggest(
    listing: Listing,
    request: Request,
    served: Served,
    config: Cfg,
    include: Include = None,
) -> Response:
    """Suggest a price and range for one listing; the suggestion is logged before it is returned."""
    limits.check_listings([listing], config.serve, batch=False)
    if _extras(include):
        (suggestion,) = await run_in_threadpool(_price, request, served, [listing], include, config, None)
    else:
        suggestion = await _price_one(request, served, listing, config)
    # Already validated and typed: serialised directly, not re-validated against the response model.
    headers = {"X-Pricewise-Fallback": "true"} if served.fallback else None
    return Response(suggestion.model_dump_json(), media_type="application/json", headers=headers)


@api.post("/suggestions/batch", response_model=BatchResponse, responses=NO_MODEL)
def suggest_batch(
    body: BatchRequest,
    request: Request,
    response: Response,
    served: Served,
    config: Cfg,
    include: Include = None,
) -> BatchResponse:
    """Suggest prices for up to `serve.max_batch` listings, in request order."""
    limits.check_listings(body.listings, config.serve, batch=True)
    batch_id = uuid.uuid4().hex
    suggestions = _price(request, served, body.listings, include, config, batch_id)
    if served.fallback:
        response.headers["X-Pricewise-Fallback"] = "true"
    return BatchResponse(batch_id=batch_id, suggestions=suggestions)


@api.post(
    "/feedback",
    response_model=FeedbackResponse,
    responses={
        404: {"description": "Unknown request id."},
        429: {"description": "Too many feedback requests."},
    },
)
def feedback(body: FeedbackRequest, request: Request, log: Log) -> FeedbackResponse:
    """Record the price the seller accepted for a logged suggestion (open to the page, so rate-limited per client
    and never a training label; sold prices go to `/v1/outcomes`)."""
    request.app.state.feedback_limit.check(request.client.host if request.client else "unknown")
    if not log.record_feedback(body.request_id, body.chosen_price):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no suggestion with request id {body.request_id}")
    return FeedbackResponse(request_id=body.request_id)


@api.get("/model", response_model=ModelInfo, responses=NO_MODEL)
def model(served: Served) -> ModelInfo:
    """The model serving in this worker: name, version, run and where it was loaded from."""
    return model_info(served)


@ops.get("/health", response_model=Health)
def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@ops.get("/ready", response_model=Health, responses={503: {"model": Health}})
def ready(request: Request) -> Any:
    """Readiness: a model is loaded and the prediction log can be written (503 until then, with the reason).

    Every suggestion is logged before it is returned, so a server whose log cannot be written (a full or
    read-only disk, a database that refuses writes) serves none and is not ready.
    """
    holder = _holder(request)
    if holder.served is None:
        return JSONResponse(Health(status="not ready", detail=holder.error).model_dump(), status_code=503)
    settings: Settings = request.app.state.settings
    problem = _log(request).write_problem(_config(request).serve.log_min_free_mib * 1024 * 1024)
    if problem is not None:
        roots = monitoring_view.settings_roots(settings)
        detail = disclosure.public(f"the prediction log cannot be written: {problem}", roots)
        return JSONResponse(Health(status="not ready", detail=detail).model_dump(), status_code=503)
    notes = ["fallback: rules baseline" if holder.served.fallback else None, holder.refused]
    return Health(status="ready", detail="; ".join(n for n in notes if n) or None)


@metrics_api.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics of the server (of every worker, when there are several)."""
    return Response(_metrics(request).exposition(), media_type=CONTENT_TYPE_LATEST)


def admin_token(settings: Settings) -> str | None:
    """The admin bearer token, or None when unset or blank (admin endpoints off)."""
    return bearer.configured(settings.admin_token)


async def _require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    bearer.require(
        authorization,
        admin_token(request.app.state.settings),
        "wrong token",
        failures=request.app.state.admin_failures,
        client=request.client.host if request.client else "unknown",
    )


@admin.post(
    "/reload",
    response_model=ReloadResponse,
    dependencies=[Depends(_require_admin)],
    responses={
        409: {"model": ReloadResponse, "description": "The new champion failed; the old one serves."},
        429: {"description": "Too many wrong tokens from this client; retry after Retry-After seconds."},
    },
)
def reload(request: Request) -> Any:
    """Load the registry's current champion now; a champion that fails to load leaves the old one serving."""
    holder = _holder(request)
    outcome = holder.reload(force=False)
    _metrics(request).reloads.labels(outcome="failed" if outcome.failed else "ok").inc()
    served = holder.served
    if served is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, outcome.detail)
    _metrics(request).set_model(served.name, served.version, served.run_id, served.source)
    body = ReloadResponse(changed=outcome.changed, model=model_info(served), detail=outcome.detail)
    if outcome.failed:
        return JSONResponse(body.model_dump(), status_code=409)
    return body
