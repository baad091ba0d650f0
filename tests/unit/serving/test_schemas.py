"""Request bodies in; validated listings and feedback, or errors naming the bad field, out."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pricewise.serving.schemas import Confidence, FeedbackRequest, Listing, Suggestion, WhatIf

LISTING: dict[str, Any] = {"name": "Blue dress", "item_condition_id": 3, "shipping": 0}


def test_listing_accepts_minimal_and_unicode_fields() -> None:
    listing = Listing.model_validate({**LISTING, "item_description": "très belle robe 👗\nline two"})
    assert listing.brand_name is None
    assert listing.item_description is not None
    assert listing.item_description.endswith("line two")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"item_condition_id": 6}, "item_condition_id"),
        ({"item_condition_id": True}, "item_condition_id"),
        ({"shipping": "1"}, "shipping"),
        ({"name": ""}, "name"),
        ({"name": "a\x1bb"}, "name"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_listing_rejects_bad_fields_by_name(override: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Listing.model_validate({**LISTING, **override})
    assert [e["loc"][0] for e in caught.value.errors()] == [field]


def test_feedback_needs_the_accepted_price_and_refuses_sold_prices() -> None:
    with pytest.raises(ValidationError, match="chosen_price"):
        FeedbackRequest.model_validate({"request_id": "abc123"})
    with pytest.raises(ValidationError, match="sold prices are not feedback") as caught:
        FeedbackRequest.model_validate({"request_id": "abc123", "chosen_price": 10.0, "sold_price": 18.0})
    assert [e["loc"] for e in caught.value.errors()] == [("sold_price",)]
    assert FeedbackRequest.model_validate({"request_id": "abc123", "chosen_price": 10.0}).sold_price is None


def test_every_suggestion_carries_a_confidence_and_its_fields_are_documented() -> None:
    example = Suggestion.model_json_schema()["examples"][0]
    assert Suggestion.model_validate(example).confidence.what_if is None
    with pytest.raises(ValidationError, match="confidence"):
        Suggestion.model_validate({k: v for k, v in example.items() if k != "confidence"})
    definitions = Suggestion.model_json_schema()["$defs"]
    documented = {
        "Suggestion": ["confidence"],
        "Confidence": ["level", "unfamiliar", "what_if"],
        "WhatIf": ["field", "value", "price", "change", "text"],
        "Reason": ["feature", "effect", "text"],
        "Comparable": ["condition", "similarity"],
    }
    schemas = {"Suggestion": Suggestion.model_json_schema(), **definitions}
    for model, fields in documented.items():
        properties = schemas[model]["properties"]
        assert all(properties[f].get("description") for f in fields), model


def test_confidence_levels_and_what_if_fields_are_closed_sets() -> None:
    assert Confidence(level="low", unfamiliar=[]).what_if is None
    with pytest.raises(ValidationError, match="level"):
        Confidence.model_validate({"level": "high", "unfamiliar": []})
    with pytest.raises(ValidationError, match="field"):
        WhatIf.model_validate({"field": "name", "value": "x", "price": 1.0, "change": 0.0, "text": "x"})
