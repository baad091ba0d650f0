"""Validated request models and the `serve` config in, field-level 422 errors for the config's limits out.

The request models carry hard ceilings; the config's tighter limits (which can change without a code change)
are checked here and reported in exactly the shape FastAPI uses for its own validation errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError

from pricewise.config import ServeConfig
from pricewise.serving.schemas import Listing


def _too_long(loc: tuple[str | int, ...], value: str, limit: int) -> dict[str, Any]:
    return {
        "type": "string_too_long",
        "loc": loc,
        "msg": f"String should have at most {limit} characters",
        "input": value[:100] + "...",
        "ctx": {"max_length": limit},
    }


def listing_errors(listing: Listing, serve: ServeConfig, loc: tuple[str | int, ...]) -> list[dict[str, Any]]:
    """Errors of one listing against the configured text limits (empty when it passes)."""
    errors = []
    if len(listing.name) > serve.max_name_chars:
        errors.append(_too_long((*loc, "name"), listing.name, serve.max_name_chars))
    description = listing.item_description or ""
    if len(description) > serve.max_description_chars:
        errors.append(_too_long((*loc, "item_description"), description, serve.max_description_chars))
    return errors


def check_listings(listings: Sequence[Listing], serve: ServeConfig, batch: bool) -> None:
    """Raise a 422 for listings (or a batch) over the configured limits.

    Raises:
        RequestValidationError: At least one limit is exceeded; every failing field is named.
    """
    errors: list[dict[str, Any]] = []
    if batch and len(listings) > serve.max_batch:
        errors.append(
            {
                "type": "too_long",
                "loc": ("body", "listings"),
                "msg": f"List should have at most {serve.max_batch} items after validation, not {len(listings)}",
                "input": f"{len(listings)} listings",
                "ctx": {"max_length": serve.max_batch},
            }
        )
    for index, listing in enumerate(listings):
        loc: tuple[str | int, ...] = ("body", "listings", index) if batch else ("body",)
        errors.extend(listing_errors(listing, serve, loc))
    if errors:
        raise RequestValidationError(errors)


def restate_ceilings(errors: list[dict[str, Any]], serve: ServeConfig) -> list[dict[str, Any]]:
    """The request models' errors with the configured limits in place of the hard ceilings they were checked
    against: a batch of 1,001 listings is told the configured maximum, not the model's 1,000.

    Args:
        errors: FastAPI's validation errors, as `RequestValidationError.errors()` gives them.
        serve: The configured limits (never above the ceilings, see `ServeConfig`).

    Returns:
        The errors, those about a ceiling restated; the others as they were.
    """
    limits = {"name": serve.max_name_chars, "item_description": serve.max_description_chars}
    restated = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        kind = error.get("type")
        update: dict[str, Any] = {}
        if kind == "too_long" and loc == ("body", "listings"):
            count = error.get("input")
            count_text = f", not {len(count)}" if isinstance(count, list) else ""
            update = {
                "msg": f"List should have at most {serve.max_batch} items after validation{count_text}",
                "ctx": {"max_length": serve.max_batch},
            }
        elif kind == "string_too_long" and loc and loc[-1] in limits:
            limit = limits[str(loc[-1])]
            update = {"msg": f"String should have at most {limit} characters", "ctx": {"max_length": limit}}
        restated.append({**error, **update})
    return restated


def patch_openapi(schema: dict[str, Any], serve: ServeConfig) -> dict[str, Any]:
    """Show the configured limits (not the hard ceilings) in the OpenAPI document."""
    components = schema.get("components", {}).get("schemas", {})
    properties = components.get("Listing", {}).get("properties", {})
    limits = {"name": serve.max_name_chars, "item_description": serve.max_description_chars}
    for field, limit in limits.items():
        spec = properties.get(field, {})
        for option in [spec, *spec.get("anyOf", [])]:
            if option.get("type") == "string":
                option["maxLength"] = limit
    batch = components.get("BatchRequest", {}).get("properties", {}).get("listings")
    if batch is not None:
        batch["maxItems"] = serve.max_batch
    return schema
