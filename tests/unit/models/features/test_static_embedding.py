"""The distilled word-piece table: each row is MiniLM's embedding of its piece alone, a text's vector is the
normalised mean of its pieces' rows, and a fitted encoder encodes without PyTorch."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from pricewise.models.features.embedding import SentenceEncoder
from pricewise.models.features.sentences import EMBEDDING_DIM, make_encoder, tokenizer_path
from pricewise.models.features.static_embedding import StaticSentenceEncoder, distil_table
from pricewise.models.kernel import EmbeddingKernelRidge, EmbeddingParams


@pytest.fixture(scope="module")
def encoder() -> StaticSentenceEncoder:
    return StaticSentenceEncoder(max_tokens=48)


def test_a_one_piece_text_gets_the_transformers_vector(encoder: StaticSentenceEncoder) -> None:
    words = ["shoes", "nike", "iphone", "dress", "lego"]  # each one word piece of the vocabulary
    static = encoder.encode(words)
    transformer = SentenceEncoder(max_tokens=48, cache=None).encode(words)
    # The table is float16: about three significant digits of the float32 vectors.
    np.testing.assert_allclose(static, transformer, atol=2e-3)


def test_a_text_is_the_normalised_mean_of_its_pieces(encoder: StaticSentenceEncoder) -> None:
    table = distil_table().astype(np.float32)
    vocabulary = Tokenizer.from_file(str(tokenizer_path())).get_vocab()
    red, shoes = vocabulary["red"], vocabulary["shoes"]
    expected = table[red] + table[shoes]
    np.testing.assert_allclose(
        encoder.encode(["red shoes"])[0], expected / np.linalg.norm(expected), atol=1e-6
    )


def test_vectors_are_unit_length_and_an_empty_text_gets_unk(encoder: StaticSentenceEncoder) -> None:
    texts = ["", "   ", "iphone 7 plus 128gb rose gold", "x" * 5000, "枕 ☃ émoji 🎉"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (len(texts), EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[1])
    assert encoder.encode([]).shape == (0, EMBEDDING_DIM)


def test_texts_are_cut_to_max_tokens_pieces() -> None:
    short = StaticSentenceEncoder(max_tokens=4)  # [CLS], two pieces, [SEP]
    np.testing.assert_allclose(short.encode(["red shoes and a hat"]), short.encode(["red shoes"]), atol=1e-7)
    assert not np.allclose(
        StaticSentenceEncoder(max_tokens=48).encode(["red shoes and a hat"]), short.encode(["red shoes"])
    )


def test_similar_listings_are_closer_than_unrelated_ones(encoder: StaticSentenceEncoder) -> None:
    phone, cover, dress = encoder.encode(["iphone 7 case", "apple phone cover", "floral summer dress"])
    assert phone @ cover > phone @ dress + 0.1


def test_progress_is_told_once_with_the_count(encoder: StaticSentenceEncoder) -> None:
    told: list[int] = []
    encoder.encode(["a", "b", "c"], told.append)
    assert told == [3]


def test_the_table_is_distilled_once_per_process_and_read_only() -> None:
    assert distil_table() is distil_table()
    assert StaticSentenceEncoder().table is distil_table()
    with pytest.raises(ValueError, match="read-only"):
        distil_table()[0, 0] = 1.0


def test_a_pickled_encoder_encodes_the_same_without_pytorch(
    encoder: StaticSentenceEncoder, tmp_path: Path
) -> None:
    texts = ["red shoes", "", "iphone 7 case"]
    path = tmp_path / "encoder.pkl"
    path.write_bytes(pickle.dumps(encoder))
    vectors = tmp_path / "vectors.npy"
    script = (
        "import pickle, sys, numpy as np\n"
        f"encoder = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"np.save({str(vectors)!r}, encoder.encode({texts!r}))\n"
        "assert 'torch' not in sys.modules, 'unpickling or encoding imported torch'\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.load(vectors), encoder.encode(texts))


def test_encoders_are_made_by_name() -> None:
    assert isinstance(make_encoder("static", 16), StaticSentenceEncoder)
    assert make_encoder("static", 16).max_tokens == 16
    assert isinstance(make_encoder("minilm", 16), SentenceEncoder)
    assert not StaticSentenceEncoder.runs_transformer
    assert SentenceEncoder.runs_transformer
    with pytest.raises(ValueError, match="unknown sentence encoder 'bert': choose one of minilm, static"):
        make_encoder("bert", 16)


def test_the_kernel_embeds_its_static_texts_with_the_table_and_the_others_with_minilm() -> None:
    params = EmbeddingParams(enabled=True, static_texts=("name_description",))
    encoders = EmbeddingKernelRidge(params).encoders
    assert isinstance(encoders["name_description"], StaticSentenceEncoder)
    assert encoders["name_description"].max_tokens == 128
    assert isinstance(encoders["brand_category_name"], SentenceEncoder)
