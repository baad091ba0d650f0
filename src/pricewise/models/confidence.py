"""A served model and one listing in, how far the listing is from what the model knows out, with what-if prices.

A price for a listing whose brand or category the model never saw in training, or for a bare title, rests on
little; the seller should know, and know what to add. The checks are set lookups in the model's own vocabulary
(its one-hot encoder's brands and categories), built once per model and cached on it, so they cost microseconds
and run on every suggestion. The what-if prices re-price the listing with a brand or category guessed from its
comparables, which needs the comparables search, so they come only with an explanation.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pricewise.models.comparables import Match
from pricewise.models.features.sparse import SparseFeatureBuilder
from pricewise.models.features.text import DESCRIPTION_PLACEHOLDER, listing_fields
from pricewise.models.suggester import LogPriceModel, PriceSuggester

Level = Literal["normal", "low"]
Field = Literal["brand_name", "category_name", "item_description"]
# A description of fewer words than this says next to nothing about the item.
MIN_DESCRIPTION_WORDS = 3
# Longer brand or category values are cut in the sentences.
MAX_SHOWN_CHARS = 100

TITLE_ONLY = "Only a title was given: add the brand, category and a description."
NO_CATEGORY = (
    "No category was given, so the model cannot tell what kind of item this is; pick one from the list."
)
UNSEEN_CATEGORY = "The category '{}' is not one the model has seen; pick one from the list."
NO_BRAND = "No brand was given; add it if the item has one."
UNSEEN_BRAND = "The brand '{}' is not one the model has seen, so the price leans on the other details."
NO_DESCRIPTION = "No description was given; its condition, size and what is included help the price."
SHORT_DESCRIPTION = "The description is very short; its condition, size and what is included help the price."


@dataclass(frozen=True)
class Vocabulary:
    """The brands and categories a model saw in training (normalised as its features read them)."""

    brands: frozenset[str]
    categories: frozenset[str]


@dataclass(frozen=True)
class Assessment:
    """How familiar a listing is to the model.

    Attributes:
        level: "low" when the category is missing or unseen, the brand is unseen, or only a title was given.
        unfamiliar: Sentences for the seller, one per thing missing or unknown to the model.
        missing: The optional fields the listing leaves empty.
    """

    level: Level
    unfamiliar: tuple[str, ...]
    missing: tuple[Field, ...]


@dataclass(frozen=True)
class WhatIfPrice:
    """The suggestion the listing would get with one more field filled in."""

    field: Field
    value: str | None
    price: float
    change: float
    text: str


_cache: weakref.WeakKeyDictionary[SparseFeatureBuilder, Vocabulary] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def vocabulary_of(model: LogPriceModel) -> Vocabulary | None:
    """The model's vocabulary, built on first use and kept for as long as the model lives.

    Args:
        model: A fitted price model.

    Returns:
        Its brands and categories, or None for a model without a sparse feature builder (the rules baseline),
        which cannot say what it has not seen.
    """
    builder = getattr(model, "builder_", None)
    if not isinstance(builder, SparseFeatureBuilder):
        return None
    with _cache_lock:
        known = _cache.get(builder)
        if known is None:
            known = _build_vocabulary(builder)
            _cache[builder] = known
        return known


def _build_vocabulary(builder: SparseFeatureBuilder) -> Vocabulary:
    encoder = builder.one_hot_
    columns = [str(c) for c in encoder.feature_names_in_]
    values = dict(zip(columns, encoder.categories_, strict=True))

    def seen(column: str) -> frozenset[str]:
        return frozenset(str(v) for v in values.get(column, ()) if str(v))

    return Vocabulary(brands=seen("brand"), categories=seen("category"))


def _shown(value: str) -> str:
    value = " ".join(value.split())
    return value if len(value) <= MAX_SHOWN_CHARS else value[: MAX_SHOWN_CHARS - 1].rstrip() + "…"


def _text(record: Mapping[str, Any], field: str) -> str:
    value = record.get(field)
    return value if isinstance(value, str) else ""


def _description_words(description: str) -> int:
    """Words of the description up to MIN_DESCRIPTION_WORDS (a long one is not read to the end)."""
    head = description[: 40 * MIN_DESCRIPTION_WORDS]
    if " ".join(head.lower().split()) == DESCRIPTION_PLACEHOLDER:
        return 0
    return min(len(head.split()), MIN_DESCRIPTION_WORDS)


def assess(vocabulary: Vocabulary | None, record: Mapping[str, Any]) -> Assessment:
    """Say what in one listing is missing or unfamiliar to the model.

    Args:
        vocabulary: The model's vocabulary (see vocabulary_of); None when it has none to compare against.
        record: The listing's raw fields (brand_name, category_name, item_description may be absent or None).

    Returns:
        The assessment.
    """
    brand_raw, category_raw = _text(record, "brand_name"), _text(record, "category_name")
    fields = listing_fields(
        {
            "name": [""],
            "brand_name": [brand_raw],
            "category_name": [category_raw],
            "item_condition_id": [0],
            "shipping": [0],
            "item_description": [""],
        }
    )
    brand, category = fields.brand[0], fields.category[0]
    words = _description_words(_text(record, "item_description"))
    missing: list[Field] = []
    if not brand:
        missing.append("brand_name")
    if not category:
        missing.append("category_name")
    if words == 0:
        missing.append("item_description")
    unseen_brand = bool(brand) and vocabulary is not None and brand not in vocabulary.brands
    unseen_category = bool(category) and vocabulary is not None and category not in vocabulary.categories
    title_only = len(missing) == 3
    notes: list[str] = []
    if title_only:
        notes.append(TITLE_ONLY)
    else:
        if not category:
            notes.append(NO_CATEGORY)
        if not brand:
            notes.append(NO_BRAND)
        if words == 0:
            notes.append(NO_DESCRIPTION)
    if unseen_category:
        notes.append(UNSEEN_CATEGORY.format(_shown(category_raw)))
    if unseen_brand:
        notes.append(UNSEEN_BRAND.format(_shown(brand_raw)))
    if 0 < words < MIN_DESCRIPTION_WORDS:
        notes.append(SHORT_DESCRIPTION)
    low = not category or unseen_category or unseen_brand or title_only
    return Assessment(level="low" if low else "normal", unfamiliar=tuple(notes), missing=tuple(missing))


def _money(price: float) -> str:
    return f"${price:,.0f}" if price >= 10 else f"${price:,.2f}"


def _change(change: float) -> str:
    return "no change" if abs(change) < 0.005 else f"{change:+.0%}"


def what_if(
    suggester: PriceSuggester,
    record: Mapping[str, Any],
    price: float,
    assessment: Assessment,
    match: Match | None,
) -> list[WhatIfPrice]:
    """Re-price the listing with each missing field its comparables suggest a value for (one model call).

    Args:
        suggester: The served model.
        record: The listing's raw fields.
        price: Its suggested price.
        assessment: Its assessment (which fields are missing).
        match: Its comparables and their kind (see ComparablesIndex.search); None without an index.

    Returns:
        One what-if per missing brand or category that could be guessed: the guessed category is the kind of
        its comparables, the guessed brand the most common brand among comparables of that kind. A missing
        description has nothing to guess and gets none.
    """
    if match is None:
        return []
    guesses: list[tuple[Field, str]] = []
    if "category_name" in assessment.missing and match.kind_guessed and match.kind:
        guesses.append(("category_name", match.kind))
    if "brand_name" in assessment.missing and match.brand:
        guesses.append(("brand_name", match.brand))
    if not guesses:
        return []
    variants = [{**record, field: value} for field, value in guesses]
    scored = suggester.suggest_records(variants)
    out = []
    for (field, value), (new_price, _, _) in zip(guesses, scored, strict=True):
        change = new_price / price - 1 if price > 0 else 0.0
        if field == "brand_name":
            condition = f"With the brand {_shown(value)}"
        else:
            path = " > ".join(part.strip() for part in value.split("/") if part.strip())
            condition = f"In the category {_shown(path)}"
        text = f"{condition} the suggestion would be about {_money(new_price)} ({_change(change)})"
        out.append(WhatIfPrice(field, value, round(new_price, 2), round(change, 4), text))
    return out
