"""Tests of the confidence checks: a tiny fitted model's vocabulary and one listing in; what is missing or
unfamiliar, the level, and what-if prices out."""

from __future__ import annotations

import pickle
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pricewise.models import ConformalPriceRanges, RulesBaseline, SparseTextEnsemble
from pricewise.models.comparables import ComparablesIndex, Match
from pricewise.models.confidence import (
    NO_BRAND,
    NO_CATEGORY,
    NO_DESCRIPTION,
    SHORT_DESCRIPTION,
    TITLE_ONLY,
    assess,
    vocabulary_of,
    what_if,
)
from pricewise.models.suggester import PriceSuggester
from tests.support.models import ridge_only_params

PHONES = "Electronics/Cell Phones & Accessories/Cell Phones & Smartphones"
CASES = "Electronics/Cell Phones & Accessories/Cases, Covers & Skins"


def training_listings(n: int = 240) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    phone = rng.random(n) < 0.5
    brand = np.where(phone, rng.choice(["Apple", "Samsung", ""], n), rng.choice(["OtterBox", ""], n))
    frame = pd.DataFrame(
        {
            "name": np.where(phone, "iphone x 256gb unlocked", "iphone x case clear"),
            "brand_name": brand,
            "category_name": np.where(phone, PHONES, CASES),
            "item_condition_id": rng.integers(1, 6, n),
            "shipping": rng.integers(0, 2, n),
            "item_description": np.where(phone, "works great no scratches", "fits the phone"),
        }
    )
    log_price = np.where(phone, 5.5, 2.3) + 0.4 * (brand == "Apple") + rng.normal(0, 0.05, n)
    return frame, log_price


@pytest.fixture(scope="module")
def suggester() -> PriceSuggester:
    frame, log_price = training_listings()
    params = ridge_only_params(200)
    model = SparseTextEnsemble(params).fit(frame[:200], log_price[:200])
    ranges = ConformalPriceRanges(0.8).calibrate(model.predict(frame[200:]), log_price[200:])
    return PriceSuggester(model, ranges, "SparseTextEnsemble")


def listing(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "iPhone X 256GB",
        "brand_name": "Apple",
        "category_name": PHONES,
        "item_condition_id": 2,
        "shipping": 0,
        "item_description": "works great, no scratches at all",
    }
    return {**base, **fields}


def test_the_vocabulary_is_the_models_brands_and_categories_built_once(suggester: PriceSuggester) -> None:
    vocabulary = vocabulary_of(suggester.model)
    assert vocabulary is not None
    assert vocabulary.brands == {"apple", "samsung", "otterbox"}
    assert vocabulary.categories == {PHONES.lower(), CASES.lower()}
    assert vocabulary_of(suggester.model) is vocabulary, "cached on the model"
    copy = pickle.loads(pickle.dumps(suggester.model))
    assert vocabulary_of(copy) == vocabulary
    assert vocabulary_of(copy) is not vocabulary, "another model object has its own entry"


def test_a_complete_familiar_listing_is_normal_with_nothing_to_say(suggester: PriceSuggester) -> None:
    vocabulary = vocabulary_of(suggester.model)
    assessment = assess(vocabulary, listing())
    assert (assessment.level, assessment.unfamiliar, assessment.missing) == ("normal", (), ())
    spelled = assess(
        vocabulary, listing(brand_name="  APPLE ", category_name=PHONES.upper().replace("/", " / "))
    )
    assert spelled.level == "normal", "matched as the model reads them: case and spacing do not count"


def test_a_title_alone_is_low_with_one_sentence_saying_what_to_add(suggester: PriceSuggester) -> None:
    bare = {"name": "iPhone X 256GB", "item_condition_id": 2, "shipping": 0}
    assessment = assess(vocabulary_of(suggester.model), bare)
    assert assessment.level == "low"
    assert assessment.unfamiliar == (TITLE_ONLY,)
    assert assessment.missing == ("brand_name", "category_name", "item_description")
    nones = assess(vocabulary_of(suggester.model), {**bare, "brand_name": None, "category_name": None})
    assert nones == assessment


@pytest.mark.parametrize(
    ("fields", "level", "notes"),
    [
        ({"brand_name": None}, "normal", [NO_BRAND]),
        ({"brand_name": "   "}, "normal", [NO_BRAND]),
        ({"category_name": ""}, "low", [NO_CATEGORY]),
        ({"item_description": None}, "normal", [NO_DESCRIPTION]),
        ({"item_description": "No description yet"}, "normal", [NO_DESCRIPTION]),
        ({"item_description": "mint"}, "normal", [SHORT_DESCRIPTION]),
        (
            {"category_name": "Foo/Bar"},
            "low",
            ["The category 'Foo/Bar' is not one the model has seen; pick one from the list."],
        ),
        (
            {"brand_name": "Zorblax"},
            "low",
            ["The brand 'Zorblax' is not one the model has seen, so the price leans on the other details."],
        ),
    ],
)
def test_each_missing_or_unseen_field_is_said_and_sets_the_level(
    suggester: PriceSuggester, fields: dict[str, Any], level: str, notes: list[str]
) -> None:
    assessment = assess(vocabulary_of(suggester.model), listing(**fields))
    assert assessment.level == level
    assert list(assessment.unfamiliar) == notes


@pytest.mark.parametrize(
    "value",
    ["", " ", "<script>alert(1)</script>", "É/ü/日本語/🙂", "a/" * 99, "x" * 10_000, "'\"\\%{}", "\t\n"],
)
def test_odd_long_and_empty_values_never_break_the_checks(suggester: PriceSuggester, value: str) -> None:
    vocabulary = vocabulary_of(suggester.model)
    assessment = assess(vocabulary, listing(brand_name=value, category_name=value, item_description=value))
    assert assessment.level == "low"
    assert all(len(note) < 200 for note in assessment.unfamiliar), "long values are cut in the sentences"
    if not value.strip():
        assert assessment.unfamiliar == (TITLE_ONLY,)


def test_the_rules_baseline_has_no_vocabulary_and_only_missing_fields_are_said() -> None:
    frame, log_price = training_listings(60)
    baseline = RulesBaseline(min_group_size=2).fit(frame, log_price)
    assert vocabulary_of(baseline) is None
    assert assess(None, listing(brand_name="Zorblax", category_name="Foo/Bar")).level == "normal"
    assert assess(None, listing(category_name=None)).unfamiliar == (NO_CATEGORY,)


def test_the_checks_cost_microseconds(suggester: PriceSuggester) -> None:
    vocabulary = vocabulary_of(suggester.model)
    record = listing(item_description="word " * 20_000)
    started = time.perf_counter()
    for _ in range(1000):
        assess(vocabulary_of(suggester.model), record)
    per_call = (time.perf_counter() - started) / 1000
    assert vocabulary is not None
    assert per_call < 500e-6, f"{per_call * 1e6:.0f} µs per listing"


def test_what_if_reprices_each_guessable_missing_field_in_one_call(suggester: PriceSuggester) -> None:
    bare = listing(brand_name=None, category_name=None, item_description=None)
    (price, _, _) = suggester.suggest_records([bare])[0]
    assessment = assess(vocabulary_of(suggester.model), bare)
    match = Match(neighbours=[], kind=PHONES, kind_guessed=True, brand="Apple")
    calls: list[int] = []
    original = suggester.suggest_records

    def counted(records: Any) -> list[tuple[float, float, float]]:
        calls.append(len(records))
        return original(records)

    suggester.suggest_records = counted  # type: ignore[method-assign]
    try:
        found = what_if(suggester, bare, price, assessment, match)
    finally:
        del suggester.suggest_records
    assert calls == [2]
    assert [(w.field, w.value) for w in found] == [("category_name", PHONES), ("brand_name", "Apple")]
    expected = original([{**bare, "category_name": PHONES}, {**bare, "brand_name": "Apple"}])
    for w, (new_price, _, _) in zip(found, expected, strict=True):
        assert w.price == pytest.approx(new_price)
        assert w.change == pytest.approx(new_price / price - 1, abs=1e-4)
        assert f"${new_price:,.0f}" in w.text or f"${new_price:,.2f}" in w.text
    assert found[1].text.startswith("With the brand Apple the suggestion would be about $")
    assert found[0].text.startswith("In the category Electronics > Cell Phones & Accessories > Cell Phones")
    assert found[1].change > 0, "the Apple brand raises the price in this model"


def test_what_if_has_nothing_to_guess_without_comparables_or_missing_fields(
    suggester: PriceSuggester,
) -> None:
    vocabulary = vocabulary_of(suggester.model)
    bare = listing(brand_name=None, item_description=None)
    assert what_if(suggester, bare, 100.0, assess(vocabulary, bare), None) == []
    complete = listing()
    match = Match(neighbours=[], kind=PHONES, kind_guessed=False, brand="Apple")
    assert what_if(suggester, complete, 100.0, assess(vocabulary, complete), match) == []
    given = Match(neighbours=[], kind=PHONES, kind_guessed=False, brand=None)
    no_brand = assess(vocabulary, bare)
    assert what_if(suggester, bare, 100.0, no_brand, given) == [], "no description is ever guessed"


def test_what_if_from_a_real_comparables_search(suggester: PriceSuggester) -> None:
    frame, log_price = training_listings()
    builder = suggester.model.builder_  # type: ignore[attr-defined]
    # Every word is in half the listings here: all of them searched.
    index = ComparablesIndex.from_frame(builder, frame, np.expm1(log_price), max_df_share=1.0)
    title_only = {"name": "iPhone X 256GB unlocked", "item_condition_id": 2, "shipping": 0}
    match = index.search(pd.DataFrame([title_only]), k=5)
    assert match.kind == PHONES
    assert match.kind_guessed
    (price, _, _) = suggester.suggest_records([title_only])[0]
    found = what_if(suggester, title_only, price, assess(vocabulary_of(suggester.model), title_only), match)
    assert [w.field for w in found] == ["category_name", "brand_name"]
    assert found[1].value in {"Apple", "Samsung"}
