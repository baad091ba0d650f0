"""A registered model in; the parts of it that convert to ONNX out, each checked against the Python model.

What converts is the sentence encoder of the embedding component (MiniLM: token ids and mask in, unit-length
384-d sentence vectors out). The other components work on hashed sparse TF-IDF rows and stay Python. The output
directory gets:

- ``encoder.onnx``: the encoder's graph (inputs ``ids`` and ``mask``, int64 rows x tokens; output ``vectors``);
- ``tokenizer.json``: its word-piece tokenizer (the Hugging Face `tokenizers` format);
- ``export.json``: the model and version exported, the texts the component embeds with each one's token limit,
  and the largest difference between the graph's vectors and the Python encoder's on the check texts.

A graph whose vectors differ from the Python encoder's by more than `TOLERANCE` is not written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient

from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import tracking
from pricewise.store.registry import load_suggester, resolve_version

FORMATS = ("onnx",)
# Largest allowed difference of one vector coordinate (unit-length vectors); fp32 rounding gives about 2e-7.
TOLERANCE = 1e-4
# Texts of every kind the encoder meets: empty, one word, long (truncated), accents, emoji, digits and units.
CHECK_TEXTS = (
    "",
    "iphone",
    "Nike | Men/Shoes/Athletic | Air Max 90 size 10",
    "Apple | Electronics/Cell Phones & Accessories | iPhone 7 plus 128gb rose gold",
    "robe d'été à fleurs, taille M, très bon état",
    "🔥 bundle of 3 lip kits 💄 never swatched",
    "Lularoe leggings tc . brand new never worn " * 20,
    "x",
)


@dataclass(frozen=True)
class ExportResult:
    """What `run` wrote."""

    model_uri: str
    model_version: str
    directory: Path
    files: tuple[Path, ...]
    max_abs_diff: float


def run(
    config: Config, settings: Settings, output: Path, model_uri: str | None = None, fmt: str = "onnx"
) -> ExportResult:
    """Export the convertible parts of a registered model to `output` (created if missing).

    Args:
        config: Stage parameters (the registered model's name).
        settings: Where the registry is.
        output: A directory; files of an earlier export in it are replaced, nothing else is touched.
        model_uri: ``models:/<name>/<version>`` or ``models:/<name>@<alias>``; default the champion.
        fmt: The export format; ``onnx`` is the one there is.

    Raises:
        PricewiseError: Unknown format; no such model; the model has no part that converts; the output cannot
            be written; the graph disagrees with the Python encoder.
    """
    if fmt not in FORMATS:
        raise PricewiseError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if output.exists() and not output.is_dir():
        raise PricewiseError(f"cannot export to {output}: it is a file, not a directory")
    tracking.configure(settings)
    uri = model_uri or f"models:/{config.train.registered_model}@champion"
    name, version = resolve_version(MlflowClient(), uri)
    suggester = load_suggester(f"models:/{name}/{version}")
    component = getattr(suggester.model, "components_", {}).get("embedding")
    if component is None:
        raise PricewiseError(
            f"{uri} (v{version}) has no embedding component: none of its parts converts to ONNX "
            "(the sparse components stay Python)"
        )
    if not any(encoder.runs_transformer for encoder in component.encoders.values()):
        raise PricewiseError(
            f"{uri} (v{version}) embeds every text with the static word-piece table, a lookup with no graph to "
            "convert: nothing of it converts to ONNX (the sparse components stay Python)"
        )
    return _write(component, uri, version, output)


def _write(component: Any, uri: str, version: str, output: Path) -> ExportResult:
    from pricewise.models.features.embedding import SentenceEncoder  # noqa: PLC0415 - needs torch
    from pricewise.models.features.onnx_encoder import (  # noqa: PLC0415 - needs onnxruntime
        OnnxSentenceEncoder,
        export_onnx,
    )
    from pricewise.models.features.sentences import TEXTS, tokenizer_path  # noqa: PLC0415

    graph = export_onnx()
    texts = {name: TEXTS[name][1] for name, encoder in component.encoders.items() if encoder.runs_transformer}
    looked_up = sorted(name for name, encoder in component.encoders.items() if not encoder.runs_transformer)
    worst = 0.0
    for max_tokens in sorted(set(texts.values())):
        python = SentenceEncoder(max_tokens=max_tokens, cache=None).encode(list(CHECK_TEXTS))
        onnx = OnnxSentenceEncoder(max_tokens=max_tokens, cache=None, model=graph).encode(list(CHECK_TEXTS))
        worst = max(worst, float(np.max(np.abs(python - onnx))))
    if not worst <= TOLERANCE:
        raise PricewiseError(
            f"the exported encoder differs from the Python one by {worst:.2e} (allowed {TOLERANCE:.0e}): "
            "nothing written"
        )
    manifest = {
        "model_uri": uri,
        "model_version": version,
        "part": "embedding component's sentence encoder (all-MiniLM-L6-v2)",
        "inputs": {"ids": "int64 [rows, tokens]", "mask": "int64 [rows, tokens]"},
        "outputs": {"vectors": "float32 [rows, 384], unit length (mean-pooled, L2-normalised)"},
        "texts": texts,
        "check_texts": len(CHECK_TEXTS),
        "max_abs_diff": worst,
        "tolerance": TOLERANCE,
        "not_exported": "the sparse components (Ridge and MLPs on hashed TF-IDF rows), the kernel ridge on "
        "the vectors, the blend and the ranges: they stay Python"
        + (
            f"; the texts embedded by the static word-piece table: {', '.join(looked_up)}"
            if looked_up
            else ""
        ),
    }
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=output, prefix=".export-") as staging:
            staged = Path(staging)
            (staged / "encoder.onnx").write_bytes(graph)
            shutil.copyfile(tokenizer_path(), staged / "tokenizer.json")
            (staged / "export.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            files = tuple(output / name for name in ("encoder.onnx", "tokenizer.json", "export.json"))
            for file in files:  # each file appears whole: renamed into place from the same directory
                (staged / file.name).replace(file)
    except OSError as exc:
        raise PricewiseError(f"cannot export to {output}: {exc.strerror or exc}") from exc
    return ExportResult(uri, version, output, files, worst)
