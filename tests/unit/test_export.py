"""The export stage's writing step: a graph that disagrees with the Python encoder, or an output that cannot be
written, leaves nothing behind and says why."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pricewise import export
from pricewise.errors import PricewiseError
from pricewise.models.features import onnx_encoder

TRANSFORMER = SimpleNamespace(runs_transformer=True)
COMPONENT = SimpleNamespace(encoders={"brand_category_name": TRANSFORMER})


@pytest.fixture(scope="module")
def graph() -> bytes:
    return onnx_encoder.export_onnx()


def test_a_graph_off_by_more_than_the_tolerance_is_not_written(
    graph: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_encoder, "export_onnx", lambda: graph)
    real = onnx_encoder.OnnxSentenceEncoder.encode

    def off(self: onnx_encoder.OnnxSentenceEncoder, texts: list[str], *args: object) -> np.ndarray:
        return real(self, texts) + np.float32(1e-3)

    monkeypatch.setattr(onnx_encoder.OnnxSentenceEncoder, "encode", off)
    with pytest.raises(PricewiseError, match=r"differs from the Python one by 1\.0\de-03 .*nothing written"):
        export._write(COMPONENT, "models:/pricewise@champion", "3", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_output_under_a_file_fails_clearly(
    graph: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_encoder, "export_onnx", lambda: graph)
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(PricewiseError, match=r"cannot export to .*file/out: Not a directory"):
        export._write(COMPONENT, "models:/pricewise@champion", "3", tmp_path / "file" / "out")


def test_a_good_graph_is_written_whole_with_its_manifest(
    graph: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_encoder, "export_onnx", lambda: graph)
    result = export._write(COMPONENT, "models:/pricewise@champion", "3", tmp_path / "out")
    assert [f.name for f in result.files] == ["encoder.onnx", "tokenizer.json", "export.json"]
    assert (tmp_path / "out" / "encoder.onnx").read_bytes() == graph
    assert result.max_abs_diff < 1e-5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "encoder.onnx",
        "export.json",
        "tokenizer.json",
    ]


def test_texts_embedded_by_the_static_table_are_named_as_not_exported(
    graph: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_encoder, "export_onnx", lambda: graph)
    hybrid = SimpleNamespace(
        encoders={
            "brand_category_name": TRANSFORMER,
            "name_description": SimpleNamespace(runs_transformer=False),
        }
    )
    export._write(hybrid, "models:/pricewise@champion", "3", tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "export.json").read_text(encoding="utf-8"))
    assert manifest["texts"] == {"brand_category_name": 48}
    assert manifest["not_exported"].endswith(
        "the texts embedded by the static word-piece table: name_description"
    )
