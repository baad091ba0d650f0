"""Real listing texts in -> the sentence encoder's speed and agreement, torch vs onnxruntime fp32 vs int8 vs the
static word-piece table, out.

For each encoder: single-text latency p50/p99 (one `encode` call per text, as one suggestion pays per embedded
text), batch throughput (one `encode` call over many texts, batches of 64 inside), and the agreement of its
vectors with the torch encoder's (largest absolute difference of any coordinate, smallest cosine similarity of
any vector; the static table is a different encoder, so its figures say how far from MiniLM it is, not rounding). The texts are the two the shipped config embeds ("name . description", 128 word pieces, and
"brand | category | name", 48), built from the shared 8k sample; no cache is used. Example:

    python benchmarks/bench_encoder.py --single 200 --batch 1000 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pricewise.models.features.embedding import SentenceEncoder
from pricewise.models.features.onnx_encoder import OnnxSentenceEncoder, export_onnx
from pricewise.models.features.sentences import TEXTS, Encoder
from pricewise.models.features.static_embedding import StaticSentenceEncoder, distil_table
from pricewise.models.features.text import listing_fields

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "mercari" / "mercari_train_8k.tsv.gz"


def texts_of(path: Path, rows: int, seed: int) -> dict[str, list[str]]:
    frame = pd.read_csv(path, sep="\t").sample(n=rows, random_state=seed)
    fields = listing_fields(frame)
    return {name: build(fields) for name, (build, _) in TEXTS.items()}


def single_ms(encoders: list[Encoder], texts: list[str]) -> list[tuple[float, float]]:
    """p50 and p99 of one-text calls per encoder; the encoders take turns text by text, so that the load of
    a shared machine falls on all of them alike."""
    for encoder in encoders:
        encoder.encode(texts[:5])  # first use loads the weights / builds the session
    times = np.zeros((len(encoders), len(texts)))
    for column, text in enumerate(texts):
        for row, encoder in enumerate(encoders):
            start = time.perf_counter()
            encoder.encode([text])
            times[row, column] = (time.perf_counter() - start) * 1000
    return [(float(np.percentile(t, 50)), float(np.percentile(t, 99))) for t in times]


def throughput(encoder: Encoder, texts: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = encoder.encode(texts)
    return len(texts) / (time.perf_counter() - start), vectors


def agreement(vectors: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    cosine = np.sum(vectors * reference, axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
    )
    return float(np.abs(vectors - reference).max()), float(cosine.min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SAMPLE)
    parser.add_argument("--single", type=int, default=200, help="texts timed one at a time, per text kind")
    parser.add_argument("--batch", type=int, default=1000, help="texts in the throughput run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="onnxruntime intra-op threads")
    parser.add_argument("--torch-threads", type=int, help="torch intra-op threads (default: torch's own)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 encoder")
    parser.add_argument("--no-static", action="store_true", help="skip the static word-piece table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    texts = texts_of(args.data, max(args.single, args.batch), args.seed)
    start = time.perf_counter()
    fp32 = export_onnx()
    export_s = time.perf_counter() - start
    start = time.perf_counter()
    int8 = None if args.no_int8 else export_onnx(int8=True)
    quantize_s = time.perf_counter() - start
    start = time.perf_counter()
    if not args.no_static:
        distil_table()
    distil_s = time.perf_counter() - start
    print(
        f"texts: {args.single} single per kind, {args.batch} batch (name_description); "
        f"torch threads {torch.get_num_threads()}; export {export_s:.1f} s ({len(fp32) / 1e6:.0f} MB)"
        + ("" if int8 is None else f", int8 quantisation {quantize_s:.1f} s ({len(int8) / 1e6:.0f} MB)")
        + ("" if args.no_static else f", static table distilled in {distil_s:.1f} s")
    )

    variants: list[tuple[str, int, bytes | None]] = [("torch", torch.get_num_threads(), None)]
    for threads in args.threads:
        variants.append(("onnx fp32", threads, fp32))
        if int8 is not None:
            variants.append(("onnx int8", threads, int8))
    if not args.no_static:
        variants.append(("static", 1, b""))

    def make(max_tokens: int, threads: int, model: bytes | None) -> Encoder:
        if model is None:
            return SentenceEncoder(max_tokens=max_tokens, cache=None)
        if not model:
            return StaticSentenceEncoder(max_tokens=max_tokens)
        return OnnxSentenceEncoder(
            max_tokens=max_tokens, cache=None, model=model, int8=model is int8, threads=threads
        )

    results: list[dict[str, Any]] = []
    header = f"{'encoder':<10} {'thr':>3} {'text':<20} {'p50 ms':>7} {'p99 ms':>7} {'texts/s':>8} "
    print(header + f"{'max |diff|':>10} {'min cos':>9}")
    for kind, (_, max_tokens) in TEXTS.items():
        encoders = [make(max_tokens, threads, model) for _, threads, model in variants]
        latencies = single_ms(encoders, texts[kind][: args.single])
        # Throughput on the longer texts only (to keep the run short); agreement on both kinds.
        batch = texts[kind][: args.batch] if kind == "name_description" else texts[kind][: args.single]
        reference: np.ndarray | None = None
        for (label, threads, _), encoder, (p50, p99) in zip(variants, encoders, latencies, strict=True):
            rate, vectors = throughput(encoder, batch)
            reference = vectors if reference is None else reference
            diff, cosine = agreement(vectors, reference)
            results.append(
                {
                    "encoder": label,
                    "threads": threads,
                    "text": kind,
                    "p50_ms": p50,
                    "p99_ms": p99,
                    "texts_per_s": rate if kind == "name_description" else None,
                    "max_abs_diff": diff,
                    "min_cosine": cosine,
                }
            )
            shown_rate = f"{rate:8.0f}" if kind == "name_description" else f"{'-':>8}"
            print(
                f"{label:<10} {threads:>3} {kind:<20} {p50:7.2f} {p99:7.2f} {shown_rate} "
                f"{diff:10.2e} {cosine:9.6f}",
                flush=True,
            )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
