"""Hyperparameters from config: dotted keys reach nested fields; unknown keys are named."""

from __future__ import annotations

import pytest

from pricewise.models.hyperparams import main_model_params


def test_flat_and_dotted_keys_set_the_typed_params() -> None:
    params = main_model_params({"ridge_alpha": 3.5, "mlp.hidden": 64, "features.ngram_max": 1}, seed=9)
    assert params.ridge_alpha == 3.5
    assert params.mlp.hidden == 64
    assert params.features.ngram_max == 1
    assert params.seed == 9


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"ridge_alpfa": 1.0}, "unknown hyperparameter ridge_alpfa"),
        ({"mlp.hiden": 1}, "unknown hyperparameter mlp.hiden"),
        ({"ridge_alpha.x": 1}, "ridge_alpha takes a value"),
    ],
)
def test_unknown_keys_are_named(values: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=r"hyperparameter|takes a value") as info:
        main_model_params(values, seed=0)
    assert fragment in str(info.value)


def test_embedding_texts_come_as_a_list_and_unknown_ones_are_named() -> None:
    params = main_model_params(
        {"embedding.enabled": True, "embedding.texts": ["brand_category_name", "name_description"]}, seed=0
    )
    assert params.embedding.enabled
    assert params.embedding.texts == ("brand_category_name", "name_description")
    with pytest.raises(
        ValueError, match=r"embedding.texts must name some of .*'name_description'.*got \['title'\]"
    ):
        main_model_params({"embedding.texts": ["title"]}, seed=0)


def test_texts_embedded_by_the_static_table_are_named_and_must_be_embedded_texts() -> None:
    assert main_model_params({}, seed=0).embedding.static_texts == ()
    params = main_model_params({"embedding.static_texts": ["name_description"]}, seed=0)
    assert params.embedding.static_texts == ("name_description",)
    with pytest.raises(
        ValueError,
        match=r"embedding.static_texts must name some of embedding.texts \['brand_category_name'\], "
        r"got \['name_description'\]",
    ):
        main_model_params(
            {"embedding.texts": ["brand_category_name"], "embedding.static_texts": ["name_description"]},
            seed=0,
        )
