"""The logged model and the serving code in fresh interpreters: neither imports DuckDB, and the model loads and
predicts from its own files with the project's source tree out of reach."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pricewise.models import ConformalPriceRanges, SparseTextEnsemble
from pricewise.models.reference import ServingReference
from pricewise.models.suggester import PriceSuggester
from pricewise.settings import Settings
from pricewise.store import tracking
from pricewise.train import RUNTIME_PACKAGES, log_model
from tests.support.models import ridge_only_params
from tests.support.workspaces import REPO, SHIPPED_CONFIG

pytestmark = pytest.mark.integration
SRC = REPO / "src"

# Runs in the child: drop src/ from the path, refuse duckdb, load the model from its directory and predict.
LOAD_AND_PREDICT = """
import importlib.abc, json, sys
from pathlib import Path

src, model_dir, listings = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3]
sys.path = [p for p in sys.path if not p or Path(p).resolve() != src]


class RefuseDuckDB(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "duckdb":
            raise ImportError("duckdb is refused in this process")
        return None


sys.meta_path.insert(0, RefuseDuckDB())
import mlflow.pyfunc
import pandas as pd

model = mlflow.pyfunc.load_model(model_dir)
scored = model.predict(pd.read_json(listings, orient="records"))
suggester = model.unwrap_python_model()
import pricewise

print(json.dumps({
    "package": pricewise.__file__,
    "prices": scored.to_dict("list"),
    "categories": list(suggester.reference.categories),
    "comparables": [n.name for n in suggester.reference.comparables.nearest(pd.read_json(listings).head(1), 3)],
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("pricewise", "duckdb")),
}))
"""


def listings(n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(5)
    words = np.array(["nike", "shoes", "apple", "phone", "case", "coach", "bag", "size"])
    frame = pd.DataFrame(
        {
            "name": [" ".join(rng.choice(words, 3)) for _ in range(n)],
            "brand_name": rng.choice(["Nike", "Apple", ""], n),
            "category_name": rng.choice(["Men/Shoes", "Electronics/Phones", "Women/Bags"], n),
            "item_condition_id": rng.integers(1, 6, n).astype(np.int64),
            "shipping": rng.integers(0, 2, n).astype(np.int64),
            "item_description": [" ".join(rng.choice(words, 6)) for _ in range(n)],
        }
    )
    return frame, 2.0 + rng.normal(0, 0.3, n)


def child(code: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_the_model_and_the_serving_code_import_without_duckdb(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import pricewise.models.suggester, pricewise.models.reference, pricewise.serving.model_holder\n"
        "before_app = sorted(m for m in sys.modules if m.split('.')[0] == 'duckdb')\n"
        "import pricewise.serving.app\n"
        "after_app = sorted(m for m in sys.modules if m.split('.')[0] == 'duckdb')\n"
        "print(before_app, after_app)\n"
    )
    assert child(code, cwd=tmp_path).split() == ["[]", "[]"], "duckdb is imported by the serving side"


def test_a_logged_model_loads_and_predicts_from_its_own_code_without_duckdb(tmp_path: Path) -> None:
    frame, log_price = listings(160)
    params = ridge_only_params(100)
    model = SparseTextEnsemble(params).fit(frame[:120], log_price[:120])
    ranges = ConformalPriceRanges(0.8).calibrate(model.predict(frame[120:]), log_price[120:])
    reference = ServingReference.build(model, frame[:120], frame, np.expm1(log_price))
    suggester = PriceSuggester(model, ranges, "SparseTextEnsemble", reference)
    settings = Settings(data_dir=tmp_path / "data", config_path=SHIPPED_CONFIG)
    tracking.configure(settings)
    with mlflow.start_run(experiment_id=tracking.experiment_id(settings, "pricewise")):
        version = log_model(suggester, frame.head(3), "pricewise")
    model_dir = Path(
        mlflow.artifacts.download_artifacts(f"models:/pricewise/{version}", dst_path=str(tmp_path / "m"))
    )

    shipped = sorted(
        str(p.relative_to(model_dir / "code")) for p in (model_dir / "code").rglob("*") if p.is_file()
    )
    assert "pricewise/columns.py" in shipped
    assert "pricewise/models/suggester.py" in shipped
    assert "pricewise/models/features/sparse.py" in shipped
    assert all(p.endswith(".py") for p in shipped), shipped
    assert not [p for p in shipped if p.split("/")[1] in ("store", "serving", "config.py", "settings.py")], (
        shipped
    )
    requirements = (model_dir / "requirements.txt").read_text(encoding="utf-8")
    assert "duckdb" not in requirements
    assert "duckdb" not in RUNTIME_PACKAGES

    query = frame.sample(20, random_state=0).reset_index(drop=True)
    listings_path = tmp_path / "listings.json"
    query.to_json(listings_path, orient="records")
    out = json.loads(child(LOAD_AND_PREDICT, str(SRC), str(model_dir), str(listings_path), cwd=tmp_path))

    assert Path(out["package"]).resolve().is_relative_to((model_dir / "code").resolve()), out["package"]
    assert [m for m in out["modules"] if m.split(".")[0] == "duckdb"] == []
    outside_models = [m for m in out["modules"] if m not in ("pricewise", "pricewise.columns")]
    assert all(m.startswith("pricewise.models") for m in outside_models), out["modules"]
    expected = suggester.suggest(pd.read_json(listings_path, orient="records"))
    assert out["prices"] == expected.to_dict("list"), "the child prices bit-identically"
    assert out["categories"] == list(reference.categories)
    assert out["comparables"] == [n.name for n in reference.comparables.nearest(query.head(1), 3)]
