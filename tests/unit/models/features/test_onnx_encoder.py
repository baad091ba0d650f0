"""The ONNX sentence encoder: the torch encoder's vectors to within float rounding (fp32), or a documented bound (int8).

Tolerances, measured with benchmarks/bench_encoder.py on real listing texts and on the texts of this module: fp32
differs from torch by at most 2e-7 in any coordinate (float32 rounding of another summation order), so 1e-5, the
bound the torch encoder itself is held to against sentence-transformers, leaves fifty-fold headroom. int8
(per-channel dynamic quantisation) differs by up to 0.037 per coordinate here, cosine down to 0.975 (the short
edge cases; 0.98 on real listings, median 0.993); its bound is 0.06 and 0.96.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip(
    "onnxruntime", reason="onnxruntime (a pinned dependency) is needed to run the ONNX encoder"
)

from pricewise.models.features.embedding import SHARED_CACHE, EmbeddingCache, SentenceEncoder
from pricewise.models.features.onnx_encoder import OnnxSentenceEncoder, export_onnx
from pricewise.models.features.sentences import EMBEDDING_DIM, brand_category_name, name_description
from pricewise.models.features.text import listing_fields

EDGE_TEXTS = [
    "",
    "shoes",
    " | women/tops & blouses/blouse | ava-viv blouse",
    "Apple | Electronics | IPHONE 7 PLUS 128GB ROSE GOLD",
    "café crème | beauty | 日本 lotion 💄",
    "    ",
    "!!!???",
    "lot of " + "very long words and sizes 10.5 " * 60,  # well over 128 word pieces
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def texts(train_sample: Path) -> list[str]:
    """About fifty texts: the edge cases above and both kinds of text of real listings."""
    fields = listing_fields(pd.read_csv(train_sample, sep="\t", nrows=400).sample(n=21, random_state=3))
    return EDGE_TEXTS + brand_category_name(fields) + name_description(fields)


@pytest.fixture(scope="module")
def torch_vectors(texts: list[str]) -> dict[int, np.ndarray]:
    """The torch encoder's vectors of the texts, by truncation length."""
    return {tokens: SentenceEncoder(max_tokens=tokens, cache=None).encode(texts) for tokens in (48, 128)}


@pytest.fixture(scope="module")
def fp32() -> bytes:
    return export_onnx()


@pytest.mark.parametrize("max_tokens", [48, 128])
def test_fp32_vectors_match_the_torch_encoder(
    fp32: bytes, texts: list[str], torch_vectors: dict[int, np.ndarray], max_tokens: int
) -> None:
    expected = torch_vectors[max_tokens]
    ours = OnnxSentenceEncoder(max_tokens=max_tokens, cache=None, model=fp32).encode(texts)
    assert ours.shape == (len(texts), EMBEDDING_DIM)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)
    assert cosines(ours, expected).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)


def test_int8_vectors_stay_within_their_looser_bound(
    texts: list[str], torch_vectors: dict[int, np.ndarray], tmp_path: Path, fp32: bytes
) -> None:
    path = tmp_path / "int8.onnx"
    int8 = export_onnx(path, int8=True)
    assert path.read_bytes() == int8
    assert len(int8) < len(fp32) / 3  # int8 weights: a quarter of the size, less the float embeddings
    expected = torch_vectors[128]
    ours = OnnxSentenceEncoder(max_tokens=128, cache=None, model=path, int8=True).encode(texts)
    assert np.abs(ours - expected).max() < 0.06
    assert cosines(ours, expected).min() >= 0.96
    # Close, yet not the torch vectors: which is why an int8 encoder keeps out of the shared cache.
    assert np.abs(ours - expected).max() > 1e-4
    with pytest.raises(ValueError, match="own cache"):
        OnnxSentenceEncoder(max_tokens=128, model=path, int8=True)


def test_rows_do_not_depend_on_their_batch(fp32: bytes, texts: list[str]) -> None:
    encoder = OnnxSentenceEncoder(max_tokens=128, cache=None, model=fp32)
    together = encoder.encode(texts)  # padded to the longest text of each batch
    alone = np.vstack([encoder.encode([text]) for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)
    shoe, blouse, sneakers = encoder.encode(["nike running shoes", "silk blouse", "nike sneakers"])
    assert float(shoe @ sneakers) > float(shoe @ blouse)


def test_uses_the_cache_as_the_torch_encoder_does(fp32: bytes) -> None:
    cache = EmbeddingCache(capacity=10)
    torch_vectors = SentenceEncoder(max_tokens=48, cache=cache).encode(EDGE_TEXTS[:3])
    encoder = OnnxSentenceEncoder(max_tokens=48, cache=cache, model=fp32)
    told: list[int] = []
    vectors = encoder.encode(EDGE_TEXTS[:5] + EDGE_TEXTS[:1], told.append)
    # Three texts come from the cache (the torch encoder's very vectors), two are encoded once.
    assert told == [4, 2]
    np.testing.assert_array_equal(vectors[:3], torch_vectors)
    np.testing.assert_array_equal(vectors[5], vectors[0])
    assert {(48, text) for text in EDGE_TEXTS[:5]} <= set(cache._vectors)
    fresh = OnnxSentenceEncoder(max_tokens=48, cache=None, model=fp32).encode(EDGE_TEXTS[3:5])
    np.testing.assert_array_equal(vectors[3:5], fresh)


def test_progress_counts_every_batch(fp32: bytes) -> None:
    texts = [f"listing {i} | shoes | size {i % 13}" for i in range(150)]
    told: list[int] = []
    encoder = OnnxSentenceEncoder(max_tokens=16, cache=None, model=fp32)
    watched = encoder.encode(texts, told.append)
    assert told == [64, 64, 22]
    np.testing.assert_array_equal(watched, encoder.encode(texts))
    assert encoder.encode([]).shape == (0, EMBEDDING_DIM)


def test_pickles_keep_the_graph_or_its_path_and_encode_after_loading(fp32: bytes, tmp_path: Path) -> None:
    in_memory = OnnxSentenceEncoder(max_tokens=48, cache=None, model=fp32, threads=2)
    before = in_memory.encode(EDGE_TEXTS)  # a live session is not pickled
    restored = pickle.loads(pickle.dumps(in_memory))
    assert (restored.model, restored.max_tokens, restored.threads) == (fp32, 48, 2)
    assert restored.cache is SHARED_CACHE
    restored.cache = None  # so that the vectors below come from the rebuilt session
    np.testing.assert_allclose(restored.encode(EDGE_TEXTS), before, atol=1e-6)

    path = tmp_path / "encoder.onnx"
    path.write_bytes(fp32)
    by_path = OnnxSentenceEncoder(max_tokens=48, cache=None, model=path)
    by_path.encode(EDGE_TEXTS[:1])
    data = pickle.dumps(by_path)
    assert len(data) < 1000  # the path, not the graph
    reloaded = pickle.loads(data)
    assert reloaded.model == path
    reloaded.cache = None
    np.testing.assert_allclose(reloaded.encode(EDGE_TEXTS), before, atol=1e-6)

    # Built from the installed weights: only the settings travel, the graph is exported again on first use.
    assert len(pickle.dumps(OnnxSentenceEncoder(max_tokens=48))) < 1000


def test_rejects_a_thread_count_below_one() -> None:
    with pytest.raises(ValueError, match="threads"):
        OnnxSentenceEncoder(threads=0)
