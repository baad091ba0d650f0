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
    model_validator,
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
    """What the seller did with a suggestion: the price chosen and, later, the price it sold at."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"request_id": "3f2c9a0e6b1d4e8f9a7b5c3d1e0f2a4b", "chosen_price": 42.0}]
        }
    )

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9a-f-]+$")]
    chosen_price: float | None = Field(default=None, gt=0, le=MAX_PRICE)
    sold_price: float | None = Field(default=None, ge=0, le=MAX_PRICE)

    @model_validator(mode="after")
    def _some_price(self) -> FeedbackRequest:
        if self.chosen_price is None and self.sold_price is None:
            raise ValueError("give chosen_price, sold_price or both")
        return self


class ModelInfo(BaseModel):
    """Which model answered."""

    name: str = Field(description="Registered model name.")
    version: str | None = Field(description="Registered version (None for a baseline fitted in the server).")
    run_id: str | None = Field(description="MLflow run that produced the model.")
    source: Literal["registry", "cache", "baseline-registry", "baseline-fitted"] = Field(
        description="Where it was loaded from: the registry, the on-disk cache of the last good model, or a fallback."
    )
    fallback: bool = Field(
        description="True when a rules baseline answers because no trained model is available."
    )
    loaded_at: str = Field(description="When this worker loaded it (ISO 8601, UTC).")


class Reason(BaseModel):
    """A word or attribute of the listing and how much it moved the price."""

    feature: str = Field(description="A word, word pair, or attribute such as 'brand: nike'.")
    effect: float = Field(description="Relative effect on the price, e.g. 0.12 = about +12 %.")


class Explanation(BaseModel):
    """The strongest reasons up and down, from the model's linear component."""

    up: list[Reason]
    down: list[Reason]
    note: str


class Comparable(BaseModel):
    """A similar listing from the training data and its price."""

    name: str
    brand_name: str
    category_name: str
    item_condition_id: int
    price: float
    similarity: float


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
