"""Trusted sold prices in (bearer token of the outcomes scope); stored outcomes, or a refusal naming the ids, out.

Sold prices are the labels retraining learns from, so only a holder of `PRICEWISE_OUTCOMES_TOKEN` (the
marketplace's back office, not the seller's page) may send them; that token is a scope of its own and opens
nothing else, and the admin token does not open this. Without a token configured the endpoint does not exist.
A request is stored whole or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.concurrency import run_in_threadpool

from pricewise.config import Config
from pricewise.serving import bearer
from pricewise.serving.schemas import MAX_PRICE
from pricewise.settings import Settings
from pricewise.store.prediction_log import Outcome, PredictionLog

HARD_MAX_OUTCOMES = 10_000
SOURCE = "api"

api = APIRouter(prefix="/v1", tags=["outcomes"])


class OutcomeItem(BaseModel):
    """The price a suggested listing sold at."""

    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9a-f-]+$")]
    sold_price: float = Field(
        gt=0, le=MAX_PRICE, description="In the marketplace's currency units, not cents."
    )
    sold_at: datetime | None = Field(default=None, strict=False, description="When it sold (ISO 8601).")


class OutcomesRequest(BaseModel):
    """Sold prices of logged suggestions, each request id once."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"outcomes": [{"request_id": "3f2c9a0e6b1d4e8f9a7b5c3d1e0f2a4b", "sold_price": 38.0}]}
            ]
        },
    )

    outcomes: list[OutcomeItem] = Field(min_length=1, max_length=HARD_MAX_OUTCOMES)

    @model_validator(mode="after")
    def _each_once(self) -> OutcomesRequest:
        ids = [o.request_id for o in self.outcomes]
        if len(set(ids)) != len(ids):
            raise ValueError("each request_id may appear once")
        return self


class OutcomesResponse(BaseModel):
    """What was stored."""

    stored: int = Field(description="New outcomes stored.")
    already_recorded: int = Field(description="Outcomes that were already stored with the same sold price.")
    source: str = SOURCE


def outcomes_token(settings: Settings) -> str | None:
    """The outcomes bearer token, or None when unset or blank (the endpoint is off)."""
    return bearer.configured(settings.outcomes_token)


async def _require_outcomes_scope(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    bearer.require(
        authorization, outcomes_token(request.app.state.settings), "wrong token for the outcomes scope"
    )


def _record(log: PredictionLog, body: OutcomesRequest) -> Any:
    receipt = log.record_outcomes(
        [Outcome(o.request_id, o.sold_price, o.sold_at) for o in body.outcomes], source=SOURCE
    )
    if receipt.unknown:
        return JSONResponse(
            {
                "detail": f"{len(receipt.unknown)} request ids have no logged suggestion; nothing was stored",
                "unknown": list(receipt.unknown[:100]),
            },
            status_code=status.HTTP_404_NOT_FOUND,
        )
    if receipt.conflicting:
        return JSONResponse(
            {
                "detail": f"{len(receipt.conflicting)} suggestions already have a different sold price; "
                "nothing was stored",
                "conflicting": list(receipt.conflicting[:100]),
            },
            status_code=status.HTTP_409_CONFLICT,
        )
    return OutcomesResponse(stored=receipt.stored, already_recorded=receipt.already_recorded)


@api.post(
    "/outcomes",
    response_model=OutcomesResponse,
    dependencies=[Depends(_require_outcomes_scope)],
    responses={
        401: {"description": "No bearer token."},
        403: {"description": "A token that is not the outcomes token."},
        404: {"description": "Unknown request ids (listed); nothing stored."},
        409: {
            "description": "Request ids that already have a different sold price (listed); nothing stored."
        },
    },
)
async def record_outcomes(body: OutcomesRequest, request: Request) -> Any:
    """Store the sold prices of logged suggestions: the labels retraining learns from, with their source."""
    config: Config = request.app.state.config
    if len(body.outcomes) > config.serve.max_outcomes:
        return JSONResponse(
            {
                "detail": [
                    {
                        "type": "too_long",
                        "loc": ["body", "outcomes"],
                        "msg": f"List should have at most {config.serve.max_outcomes} items, "
                        f"not {len(body.outcomes)}",
                    }
                ]
            },
            status_code=422,
        )
    log: PredictionLog = request.app.state.prediction_log
    return await run_in_threadpool(_record, log, body)
