"""JSON bodies in, validated request models out; served results in, typed response models (with examples) out.

The field limits here are hard ceilings that keep the OpenAPI schema honest about what can ever be accepted;
the tighter limits of the `serve` config section are checked per app (see `pricewise.serving.limits`) and
shown in the app's OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
)

HARD_MAX_NAME_CHARS = 1_000
HARD_MAX_DESCRIPTION_CHARS = 100_000
HARD_MAX_BRAND_CHARS = 100
HARD_MAX_CATEGORY_CHARS = 200
HARD_MAX_BATCH = 1_000
MAX_PRICE = 1_000_000.0

_CONTROL = {chr(c) for c in range(32) if chr(c) not in "\t\n\r"} | {"\x7f"}

EXAMPLE_LISTING: dict[str, JsonValue] = {
    "name": "Nike Air Max 90 size 10",
    "brand_name": "Nike",
    "category_name": "Men/Shoes/Athletic",
    "item_condition_id": 2,
    "shipping": 1,
    "item_description": "Worn twice, no box. Clean soles.",
}


def _reject_control_characters(value: str | None) -> str | None:
    if value is not None and any(ch in _CONTROL for ch in value):
        raise ValueError("must not contain control characters (tab, newline and carriage return are allowed)")
    return value


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are errors, values are not coerced from other types."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Listing(RequestModel):
    """One listing as a seller describes it (the raw fields the model was trained on)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_LISTING]})

    name: Annotated[str, StringConstraints(min_length=1, max_length=HARD_MAX_NAME_CHARS)] = Field(
        description="Listing title."
    )
    brand_name: Annotated[str, StringConstraints(max_length=HARD_MAX_BRAND_CHARS)] | None = Field(
        default=None, description="Brand, if any."
    )
    category_name: Annotated[str, StringConstraints(max_length=HARD_MAX_CATEGORY_CHARS)] | None = Field(
        default=None, description="Category path, e.g. 'Women/Tops & Blouses/T-Shirts'."
    )
    item_condition_id: int = Field(ge=1, le=5, description="1 = new ... 5 = poor.")
    shipping: int = Field(ge=0, le=1, description="1 = the seller pays shipping, 0 = the buyer does.")
    item_description: Annotated[str, StringConstraints(max_length=HARD_MAX_DESCRIPTION_CHARS)] | None = Field(
        default=None, description="Free-text description."
    )

    @field_validator("name")
    @classmethod
    def _name_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain at least one non-space character")
        return value

    _no_control = field_validator("name", "brand_name", "category_name", "item_description")(
        _reject_control_characters
    )


class BatchRequest(RequestModel):
    """Several listings priced in one call."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"listings": [EXAMPLE_LISTING, EXAMPLE_LISTING]}]}
    )

    listings: list[Listing] = Field(min_length=1, max_length=HARD_MAX_BATCH)


class FeedbackRequest(RequestModel):
    """What the seller did with a suggestion: the price they accepted. Sold prices are outcomes, sent by a
    trusted source to `/v1/outcomes`; this open endpoint refuses them, so nothing typed here becomes a label."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"request_id": "3f2c9a0e6b1d4e8f9a7b5c3d1e0f2a4b", "chosen_price": 42.0}]
        }
    )

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9a-f-]+$")]
    chosen_price: float = Field(gt=0, le=MAX_PRICE)
    sold_price: None = Field(
        default=None,
        description="Not accepted here: sold prices are outcomes (POST /v1/outcomes with the outcomes token).",
    )

    @field_validator("sold_price", mode="before")
    @classmethod
    def _no_sold_price(cls, value: object) -> None:
        if value is not None:
            raise ValueError(
                "sold prices are not feedback: the marketplace sends them to POST /v1/outcomes with the "
                "outcomes token, or the operator imports its sales export (`pricewise outcomes import`)"
            )


class ModelInfo(BaseModel):
    """Which model answered."""

    name: str = Field(description="Registered model name.")
    version: str | None = Field(description="Registered version.")
    run_id: str | None = Field(description="MLflow run that produced the model.")
    source: Literal["registry", "cache", "baseline-registry"] = Field(
        description="Where it was loaded from: the registry, the on-disk cache of the last good model, or the "
        "registered rules baseline (the fallback)."
    )
    fallback: bool = Field(
        description="True when a rules baseline answers because no trained model is available."
    )
    loaded_at: str = Field(description="When this worker loaded it (ISO 8601, UTC).")


class Reason(BaseModel):
    """A word or detail of the listing, how much it moved the price, and the same as a sentence."""

    feature: str = Field(
        description="What the reason is about, one reason per feature: 'brand: nike', 'category: men/shoes', "
        "'condition: like new', 'shipping: free' or 'shipping: buyer pays', or a word or word pair of the text. "
        "The brand's words in the title count as the brand; department, category and the category's words as "
        "the category."
    )
    effect: float = Field(
        description="Relative effect on the price, e.g. 0.12 = about +12 % (a merged reason: the product of "
        "its parts' relative effects)."
    )
    text: str = Field(
        description="The reason as a seller reads it, e.g. 'The brand Nike raises the price by about 16%'."
    )


class Explanation(BaseModel):
    """The strongest reasons up and down, from the model's linear component."""

    up: list[Reason] = Field(description="Reasons that raise the price, strongest first.")
    down: list[Reason] = Field(description="Reasons that lower the price, strongest first.")
    note: str = Field(description="How to read the reasons.")


class Comparable(BaseModel):
    """A similar listing of the same kind from the training data, and its price."""

    name: str = Field(description="Its title.")
    brand_name: str = Field(description="Its brand ('' when none).")
    category_name: str = Field(description="Its category path.")
    item_condition_id: int = Field(description="Its condition, 1 = new ... 5 = poor.")
    condition: str = Field(
        description="Its condition as a word: 'New', 'Like new', 'Good', 'Fair' or 'Poor'."
    )
    price: float = Field(description="Its price.")
    similarity: float = Field(description="Cosine similarity of its text to the listing's (0..1).")


class WhatIf(BaseModel):
    """The suggestion the listing would get with one missing field filled in as its comparables suggest."""

    field: Literal["brand_name", "category_name", "item_description"] = Field(
        description="The listing field that was missing."
    )
    value: str | None = Field(
        description="The value tried: the kind of item of the comparables (category), or the most common "
        "brand among comparables of that kind (brand)."
    )
    price: float = Field(description="The suggested price with that value.")
    change: float = Field(description="Relative change from the suggestion, e.g. 0.12 = +12 %.")
    text: str = Field(
        description="The same as a seller reads it, e.g. 'With the brand Apple the suggestion would be about "
        "$180 (+35%)'."
    )


class Confidence(BaseModel):
    """How far the listing is from what the model knows: what is missing or unfamiliar, and what adding it does."""

    level: Literal["normal", "low"] = Field(
        description="'low' when the category is missing or not one the model has seen, the brand is not one "
        "it has seen, or only a title was given; else 'normal'."
    )
    unfamiliar: list[str] = Field(
        description="Sentences for the seller, one per missing or unfamiliar detail (empty when nothing is)."
    )
    what_if: list[WhatIf] | None = Field(
        default=None,
        description="With include=explanation: the suggestion with each missing brand or category filled in "
        "from the comparables (empty when nothing could be guessed); null otherwise.",
    )


class Suggestion(BaseModel):
    """A suggested price with its range, and where it came from."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "3f2c9a0e6b1d4e8f9a7b5c3d1e0f2a4b",
                    "price": 48.0,
                    "low": 31.5,
                    "high": 70.0,
                    "coverage": 0.8,
                    "model": {
                        "name": "pricewise",
                        "version": "3",
                        "run_id": "a1b2c3",
                        "source": "registry",
                        "fallback": False,
                        "loaded_at": "2026-11-23T10:00:00+00:00",
                    },
                    "explanation": None,
                    "comparables": None,
                    "confidence": {
                        "level": "normal",
                        "unfamiliar": ["No brand was given; add it if the item has one."],
                        "what_if": None,
                    },
                }
            ]
        }
    )

    request_id: str = Field(description="Quote it in /v1/feedback.")
    price: float
    low: float = Field(description="'Sell fast' end of the range.")
    high: float = Field(description="'Top price' end of the range.")
    coverage: float = Field(description="Share of past listings whose price fell inside such a range.")
    model: ModelInfo
    explanation: Explanation | None = None
    comparables: list[Comparable] | None = None
    confidence: Confidence = Field(
        description="Always present: how familiar the listing is to the model (see Confidence)."
    )


class BatchResponse(BaseModel):
    """One suggestion per listing, in request order."""

    batch_id: str
    suggestions: list[Suggestion]


class FeedbackResponse(BaseModel):
    """The recorded feedback."""

    request_id: str
    recorded: bool = True


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "ready", "not ready"]
    detail: str | None = None


class ReloadResponse(BaseModel):
    """Outcome of a reload: the model now serving, and whether it changed."""

    changed: bool
    model: ModelInfo
    detail: str


SectionState = Literal["ok", "empty", "unsupported", "error"]


class MonitoringSection(BaseModel):
    """Base of the monitoring sections: each is computed on its own and says whether it has data."""

    state: SectionState = Field(
        description=(
            "'ok': figures below; 'empty': nothing recorded yet; 'unsupported': the prediction log's "
            "database cannot compute this section; 'error': reading failed (see message and server log)."
        )
    )
    message: str | None = Field(default=None, description="What the state means for a reader.")


class ChampionSection(MonitoringSection):
    """The champion (the registry's alias), since when it holds the alias, and the model this worker serves."""

    registered_model: str = Field(description="Registered model name the promotion gate works on.")
    version: str | None = Field(default=None, description="The version the champion alias points at.")
    since: str | None = Field(
        default=None,
        description="When it became champion (ISO 8601, UTC); None when the alias was moved outside pricewise.",
    )
    promoted_by: str | None = Field(
        default=None,
        description="The recorded decision that made it champion: 'first', 'promote' or 'rollback'.",
    )
    run_id: str | None = Field(
        default=None, description="MLflow run of the champion, when this worker serves that version."
    )
    serving: ModelInfo | None = Field(default=None, description="The model answering in this worker.")


class PromotionRow(BaseModel):
    """One decision of the promotion gate or a rollback."""

    decided_at: str
    registered_model: str
    action: str = Field(description="'first', 'promote', 'refuse' or 'rollback'.")
    champion_before: str | None
    challenger: str | None
    champion_after: str | None
    reason: str
    metrics: dict[str, JsonValue] = Field(description="Figures the decision rests on (test RMSLE, checks).")


class PromotionsSection(MonitoringSection):
    """The promotion history, newest first."""

    rows: list[PromotionRow] = Field(default_factory=list)


class TrafficBucket(BaseModel):
    """Suggestions logged in one time bucket and their latency percentiles (nearest rank)."""

    start: str = Field(description="Bucket start (ISO 8601, UTC).")
    requests: int = Field(description="Suggestions logged in the bucket.")
    per_minute: float = Field(description="Suggestions per minute over the bucket.")
    p50_ms: float
    p95_ms: float
    p99_ms: float


class TrafficSection(MonitoringSection):
    """Request rate and latency over time, from the prediction log."""

    bucket_seconds: int | None = Field(default=None, description="Width of a bucket, chosen from the span.")
    window_start: str | None = Field(default=None, description="First bucket start (ISO 8601, UTC).")
    window_end: str | None = Field(default=None, description="Latest logged suggestion (ISO 8601, UTC).")
    total_requests: int = Field(default=0, description="Suggestions in the window.")
    buckets: list[TrafficBucket] = Field(default_factory=list)


class AccuracyBucket(BaseModel):
    """Suggestions made in one time bucket that have a sold price, and how well they priced."""

    start: str = Field(description="Bucket start of the suggestion time (ISO 8601, UTC).")
    sold: int = Field(description="Suggestions with a reported sold price.")
    rmsle: float = Field(description="sqrt(mean((log1p(price) - log1p(sold))^2)).")
    coverage: float = Field(description="Share of sold prices inside the suggested [low, high].")


class AccuracyByModel(BaseModel):
    """Accuracy of one model version over the window."""

    model_version: str | None
    sold: int
    rmsle: float
    coverage: float


class AccuracySection(MonitoringSection):
    """RMSLE and range coverage of suggestions against the sold prices sellers reported."""

    bucket_seconds: int | None = None
    window_start: str | None = None
    window_end: str | None = None
    sold: int = Field(default=0, description="Suggestions in the window with a sold price.")
    rmsle: float | None = None
    coverage: float | None = None
    stated_coverage: float | None = Field(
        default=None, description="Mean coverage the suggestions promised (the target for `coverage`)."
    )
    buckets: list[AccuracyBucket] = Field(default_factory=list)
    by_model: list[AccuracyByModel] = Field(default_factory=list)


class SellerResponseByModel(BaseModel):
    """Sellers' response to one model version's suggestions."""

    model_version: str | None
    answered: int
    acceptance_rate: float
    median_ratio: float


class SellerResponseSection(MonitoringSection):
    """What sellers did with the suggestions on the page: the immediate signal, before anything sells."""

    window_start: str | None = None
    window_end: str | None = None
    suggestions: int = Field(default=0, description="Suggestions logged in the window.")
    answered: int = Field(default=0, description="Suggestions whose seller chose a price on the page.")
    response_rate: float | None = Field(default=None, description="answered / suggestions.")
    acceptance_rate: float | None = Field(
        default=None, description="Share of answered suggestions kept as suggested (within 1% or 50 cents)."
    )
    within_range: float | None = Field(
        default=None, description="Share of chosen prices inside the suggested [low, high]."
    )
    median_ratio: float | None = Field(default=None, description="Median of chosen / suggested price.")
    by_model: list[SellerResponseByModel] = Field(default_factory=list)


class MonitoringRunRow(BaseModel):
    """One drift and accuracy check recorded by `pricewise monitor`."""

    run_id: str
    created_at: str
    status: str = Field(description="'ok', 'drift', 'empty' (nothing to compare) or 'error'.")
    window_kind: str | None
    window_start: str | None
    window_end: str | None
    batch_id: str | None
    model_version: str | None
    drift_share: float | None = Field(description="Share of drifted columns.")
    drifted_columns: list[str]
    prediction_drift: bool | None
    target_drift: bool | None
    feedback_rows: int | None
    rmsle: float | None = Field(description="RMSLE against the sold prices in the window (realized).")
    coverage: float | None
    estimated_rmsle: float | None = Field(
        default=None,
        description="RMSLE estimated without sold prices from the champion's loss model (direct loss estimation).",
    )
    estimated_rmsle_low: float | None = Field(
        default=None, description="Low end of the estimate's ~95% interval."
    )
    estimated_rmsle_high: float | None = Field(
        default=None, description="High end of the estimate's ~95% interval."
    )
    message: str
    report_url: str | None = Field(description="Where this server shows the run's Evidently report, if any.")


class DriftSection(MonitoringSection):
    """Monitoring runs, newest first."""

    runs: list[MonitoringRunRow] = Field(default_factory=list)


class MonitoringOverview(BaseModel):
    """Everything the monitoring page shows; each section carries its own state."""

    generated_at: str = Field(description="When this overview was computed (ISO 8601, UTC).")
    champion: ChampionSection
    promotions: PromotionsSection
    traffic: TrafficSection
    accuracy: AccuracySection
    sellers: SellerResponseSection
    drift: DriftSection
