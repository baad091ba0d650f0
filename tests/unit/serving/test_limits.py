"""Listings and the serve config's limits in; errors naming every failing field, and the OpenAPI schema showing
the configured limits, out."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from pricewise.config import ServeConfig
from pricewise.serving.limits import check_listings, patch_openapi
from pricewise.serving.schemas import Listing

LISTING: dict[str, Any] = {"name": "Blue dress", "item_condition_id": 3, "shipping": 0}


def test_config_limits_name_every_failing_field() -> None:
    serve = ServeConfig(max_name_chars=5, max_description_chars=10, max_batch=2)
    long_one = Listing.model_validate({**LISTING, "item_description": "x" * 11})
    with pytest.raises(RequestValidationError) as caught:
        check_listings([long_one, long_one, long_one], serve, batch=True)
    locations = [tuple(e["loc"]) for e in caught.value.errors()]
    assert ("body", "listings") in locations
    assert ("body", "listings", 0, "name") in locations
    assert ("body", "listings", 2, "item_description") in locations
    check_listings([Listing.model_validate({**LISTING, "name": "short"})], serve, batch=False)


def test_openapi_shows_configured_limits() -> None:
    schema = {
        "components": {
            "schemas": {
                "Listing": {
                    "properties": {
                        "name": {"type": "string", "maxLength": 1000},
                        "item_description": {"anyOf": [{"type": "string", "maxLength": 9}, {"type": "null"}]},
                    }
                },
                "BatchRequest": {"properties": {"listings": {"maxItems": 1000}}},
            }
        }
    }
    patched = patch_openapi(schema, ServeConfig(max_name_chars=50, max_description_chars=70, max_batch=7))
    props = patched["components"]["schemas"]["Listing"]["properties"]
    assert props["name"]["maxLength"] == 50
    assert props["item_description"]["anyOf"][0]["maxLength"] == 70
    assert patched["components"]["schemas"]["BatchRequest"]["properties"]["listings"]["maxItems"] == 7
