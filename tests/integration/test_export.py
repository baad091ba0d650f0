"""A registered champion in; `pricewise export --format onnx` out: the sentence encoder as an ONNX graph with its
tokenizer and a manifest, whose vectors are the champion's own, or a clear refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import yaml
from tokenizers import Tokenizer

from pricewise.store import tracking
from pricewise.store.registry import load_suggester
from tests.support.workspaces import Workspace, light_config_text, tiny_workspace

pytestmark = pytest.mark.integration

TEXTS = ["Nike | Men/Shoes/Athletic | Air Max 90", "", "robe d'été 🔥 très bon état " * 10]


def test_the_champions_encoder_exports_to_onnx_and_gives_the_champions_vectors(
    serving_workspace: Workspace, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result = serving_workspace.cli("export", "--format", "onnx", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["encoder.onnx", "export.json", "tokenizer.json"]
    manifest = json.loads((out / "export.json").read_text(encoding="utf-8"))
    assert manifest["model_version"] == "1"
    assert manifest["model_uri"] == "models:/pricewise@champion"
    assert 0 <= manifest["max_abs_diff"] <= manifest["tolerance"] == 1e-4
    assert "(v1): the sentence encoder" in result.output

    # The files alone (no pricewise) reproduce what the champion computes for each text it embeds.
    tracking.configure(serving_workspace.settings)
    champion = load_suggester("models:/pricewise@champion")
    encoders = champion.model.components_["embedding"].encoders  # type: ignore[attr-defined]
    assert set(manifest["texts"]) == set(encoders)
    session = onnxruntime.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    for name, encoder in encoders.items():
        tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=manifest["texts"][name])
        tokenizer.no_padding()
        for text in TEXTS:
            ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
            (vector,) = session.run(["vectors"], {"ids": ids, "mask": np.ones_like(ids)})
            np.testing.assert_allclose(vector[0], encoder.encode([text])[0], atol=1e-4)


def test_a_second_export_replaces_the_files_and_leaves_others(
    serving_workspace: Workspace, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "encoder.onnx").write_bytes(b"stale")
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    result = serving_workspace.cli("export", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "encoder.onnx").stat().st_size > 1_000_000
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert not [p for p in out.iterdir() if p.name.startswith(".export-")], "staging left behind"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--format", "tflite"], "unknown export format 'tflite': choose one of onnx"),
        (["--model", "models:/pricewise@nobody"], "pricewise has no alias nobody"),
        (["--model", "models:/pricewise/7"], "cannot load model models:/pricewise/7"),
    ],
)
def test_bad_export_requests_fail_clearly_and_write_nothing(
    serving_workspace: Workspace, tmp_path: Path, args: list[str], said: str
) -> None:
    out = tmp_path / "export"
    result = serving_workspace.cli("export", "--output", str(out), *args)
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_an_output_that_is_a_file_is_refused(serving_workspace: Workspace, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("x", encoding="utf-8")
    result = serving_workspace.cli("export", "--output", str(taken))
    assert result.exit_code == 2
    assert "it is a file, not a directory" in result.output
    assert taken.read_text(encoding="utf-8") == "x"


def test_a_model_without_an_embedding_component_has_nothing_to_export(
    tiny_trained_workspace: Workspace, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result = tiny_trained_workspace.cli(
        "export", "--model", "models:/pricewise@challenger", "--output", str(out)
    )
    assert result.exit_code == 2, result.output
    assert "has no embedding component: none of its parts converts to ONNX" in result.output
    assert not out.exists()


def test_a_model_embedding_only_with_the_static_table_has_nothing_to_export(tmp_path: Path) -> None:
    config = yaml.safe_load(light_config_text(embedding=True))
    config["train"]["params"]["embedding.static_texts"] = ["brand_category_name"]
    ws = tiny_workspace(tmp_path / "ws", config_text=yaml.safe_dump(config))
    assert ws.cli("train").exit_code == 0
    out = tmp_path / "export"
    result = ws.cli("export", "--model", "models:/pricewise@challenger", "--output", str(out))
    assert result.exit_code == 2, result.output
    assert "embeds every text with the static word-piece table" in result.output
    assert "nothing of it converts to ONNX" in result.output
    assert not out.exists()
