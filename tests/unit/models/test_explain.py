"""Tests of the explainer: a tiny fitted main model and one listing in; one readable reason per word or detail out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pricewise.models import SparseTextEnsemble
from pricewise.models.explain import Explainer
from pricewise.models.suggester import clean_input
from tests.support.models import ridge_only_params

WORDS = np.array(["red", "blue", "bag", "leather", "shoes", "size", "small", "kors", "michael", "lamp"])
BRANDS = np.array(["Michael Kors", "Nike", ""])
CATEGORIES = np.array(["Women/Bags/Totes", "Men/Shoes/Athletic", "Home/Lamps"])


def listings(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    brand = rng.choice(BRANDS, n)
    shipping = rng.integers(0, 2, n)
    condition = rng.integers(1, 6, n)
    frame = pd.DataFrame(
        {
            "name": [
                f"{b} {' '.join(rng.choice(WORDS, 2))}".strip() for b in brand
            ],  # a brand is usually in the title too
            "brand_name": brand,
            "category_name": rng.choice(CATEGORIES, n),
            "item_condition_id": condition,
            "shipping": shipping,
            "item_description": [" ".join(rng.choice(WORDS, 5)) for _ in range(n)],
        }
    )
    log_price = 3.0 + 0.6 * (brand == "Michael Kors") - 0.25 * shipping - 0.08 * condition
    return frame, log_price + rng.normal(0, 0.05, n)


@pytest.fixture(scope="module")
def explainer() -> Explainer:
    frame, log_price = listings(400, seed=0)
    params = ridge_only_params(300)
    model = SparseTextEnsemble(params).fit(frame, log_price)
    found = Explainer.for_model(model)
    assert found is not None
    return found


LISTING = pd.DataFrame(
    [
        {
            "name": "Michael Kors leather bag",
            "brand_name": "Michael Kors",
            "category_name": "Women/Bags/Totes",
            "item_condition_id": 2,
            "shipping": 1,
            "item_description": "red leather bag, small",
        }
    ]
)


def every_reason(explainer: Explainer, listing: pd.DataFrame) -> list[tuple[str, float, str]]:
    reasons = explainer.explain(listing, top=1000)
    return [(r.feature, r.effect, r.text) for r in reasons.up + reasons.down]


def test_details_read_as_sentences_not_codes(explainer: Explainer) -> None:
    texts = {feature: text for feature, _, text in every_reason(explainer, LISTING)}
    assert texts["shipping: free"].startswith("Free shipping (paid by the seller) lowers the price by about ")
    assert texts["brand: michael kors"].startswith("The brand Michael Kors raises the price by about ")
    assert texts["category: women/bags/totes"].startswith("The category Women > Bags > Totes ")
    assert texts["condition: like new"].startswith("Condition 'Like new' ")
    assert texts["leather"].startswith("The word 'leather' ")
    assert all(text.endswith("%") for text in texts.values())
    assert not any(": 1" in text or "_" in text for text in texts.values())
    buyer_pays = every_reason(explainer, LISTING.assign(shipping=0))
    assert any(
        f == "shipping: buyer pays" and t.startswith("Shipping paid by the buyer ") for f, _, t in buyer_pays
    )


def test_the_brand_and_its_words_are_one_reason_and_the_category_one_more(explainer: Explainer) -> None:
    reasons = every_reason(explainer, LISTING)
    features = [feature for feature, _, _ in reasons]
    assert len(features) == len(set(features)), "no feature appears twice (so never both up and down)"
    assert not {"michael", "kors", "michael kors"} & set(features), "the brand's title words are the brand"
    assert not any(f.startswith("department") for f in features)
    assert [f for f in features if f.startswith("category")] == ["category: women/bags/totes"]
    assert not {"women", "totes", "bags totes"} & set(features), "the category path's words are the category"
    brand = next(effect for feature, effect, _ in reasons if feature == "brand: michael kors")
    assert brand > 0.3, "the brand's one-hot column and its words together carry the brand's premium"


def test_merged_effects_multiply_and_account_for_the_whole_linear_part(explainer: Explainer) -> None:
    """Every contribution lands in exactly one reason: the product of (1 + effect) over all reasons is the
    linear part's price relative to its intercept (all of this listing's fields are non-empty)."""
    reasons = every_reason(explainer, LISTING)
    row = sp.csr_matrix(explainer.builder.transform(clean_input(LISTING)))
    linear = float((row.data * explainer.coef[row.indices]).sum())
    assert float(np.sum(np.log1p([effect for _, effect, _ in reasons]))) == pytest.approx(linear, abs=1e-9)


def test_strongest_first_up_and_down(explainer: Explainer) -> None:
    reasons = explainer.explain(LISTING, top=3)
    assert 0 < len(reasons.up) <= 3
    assert 0 < len(reasons.down) <= 3
    assert [r.effect for r in reasons.up] == sorted((r.effect for r in reasons.up), reverse=True)
    assert [r.effect for r in reasons.down] == sorted(r.effect for r in reasons.down)
    assert all(r.effect > 0 and " raise" in r.text for r in reasons.up)
    assert all(r.effect < 0 and " lower" in r.text for r in reasons.down)


def test_a_listing_without_brand_or_category_has_no_empty_reasons(explainer: Explainer) -> None:
    bare = LISTING.assign(brand_name="", category_name="", name="leather bag")
    features = [feature for feature, _, _ in every_reason(explainer, bare)]
    assert not any(f.startswith(("brand", "category")) for f in features)
    assert "leather" in features
