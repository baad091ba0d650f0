"""Tests of where a worker's model comes from, on a real MLflow SQLite store: the champion, else the cached last
good champion, else the registered rules baseline, else nothing (not ready, with the reasons kept)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from pricewise.config import Config, load_config
from pricewise.errors import PricewiseError
from pricewise.models import ConformalPriceRanges, RulesBaseline, SparseTextEnsemble
from pricewise.models.reference import ServingReference
from pricewise.models.suggester import PriceSuggester
from pricewise.serving.app import create_app
from pricewise.serving.model_holder import ModelHolder, load_best, load_cached, load_champion
from pricewise.settings import Settings
from pricewise.store import model_cache, tracking
from pricewise.train import log_model
from tests.support.models import ridge_only_params
from tests.support.servers import free_port
from tests.support.workspaces import SHIPPED_CONFIG, Workspace, clone_workspace

CATEGORIES = ("Electronics/Phones", "Men/Shoes", "Women/Bags")


def listings(n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    words = np.array(["nike", "shoes", "apple", "phone", "case", "coach", "bag", "size"])
    frame = pd.DataFrame(
        {
            "name": [" ".join(rng.choice(words, 3)) for _ in range(n)],
            "brand_name": rng.choice(["Nike", "Apple", ""], n),
            "category_name": rng.choice(list(CATEGORIES), n),
            "item_condition_id": rng.integers(1, 6, n).astype(np.int64),
            "shipping": rng.integers(0, 2, n).astype(np.int64),
            "item_description": [" ".join(rng.choice(words, 6)) for _ in range(n)],
        }
    )
    return frame, 2.0 + rng.normal(0, 0.3, n)


def packaged(
    model: SparseTextEnsemble | RulesBaseline, frame: pd.DataFrame, log_price: np.ndarray
) -> PriceSuggester:
    model.fit(frame[:120], log_price[:120])
    ranges = ConformalPriceRanges(0.8).calibrate(model.predict(frame[120:]), log_price[120:])
    reference = ServingReference.build(model, frame[:120], frame, np.expm1(log_price))
    return PriceSuggester(model, ranges, type(model).__name__, reference)


@pytest.fixture(scope="module")
def registry_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """An MLflow store with `pricewise` v1 (carrying its reference), v2 (logged the way models were before they
    carried one) and `pricewise-baseline` v1; no aliases. Tests clone it before they change anything."""
    root = tmp_path_factory.mktemp("registry")
    settings = Settings(data_dir=root / "data", config_path=SHIPPED_CONFIG)
    frame, log_price = listings(160)
    params = ridge_only_params(100)
    main = packaged(SparseTextEnsemble(params), frame, log_price)
    old = PriceSuggester(main.model, main.ranges, main.kind)
    del old.__dict__["reference"]  # what the pickle of a model logged before this change holds
    baseline = packaged(RulesBaseline(min_group_size=2), frame, log_price)
    tracking.configure(settings)
    with mlflow.start_run(experiment_id=tracking.experiment_id(settings, "pricewise")):
        assert log_model(main, frame.head(3), "pricewise") == "1"
        assert log_model(old, frame.head(3), "pricewise") == "2"
        assert log_model(baseline, frame.head(3), "pricewise-baseline") == "1"
    return Workspace(settings, SHIPPED_CONFIG)


@pytest.fixture
def ws(registry_workspace: Workspace, tmp_path: Path) -> Workspace:
    return clone_workspace(registry_workspace, tmp_path / "ws")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(SHIPPED_CONFIG)


def set_champion(ws: Workspace, name: str, version: str) -> None:
    tracking.configure(ws.settings)
    MlflowClient().set_registered_model_alias(name, "champion", version)


def test_the_champion_serves_with_the_reference_it_carries(ws: Workspace, config: Config) -> None:
    set_champion(ws, "pricewise", "1")
    set_champion(ws, "pricewise-baseline", "1")
    served = load_best(ws.settings, config)
    assert (served.source, served.name, served.version, served.fallback) == (
        "registry",
        "pricewise",
        "1",
        False,
    )
    assert served.categories == CATEGORIES
    assert served.comparables is not None
    assert len(served.comparables) == 160
    assert served.explainer is not None
    cached = model_cache.read_cached(ws.settings)
    assert cached is not None
    assert (cached.name, cached.version) == ("pricewise", "1"), (
        "a champion that loaded becomes the last good one"
    )
    assert not ws.settings.warehouse.exists(), "serving needs no warehouse"


def test_with_the_registry_down_the_cached_champion_serves_complete(ws: Workspace, config: Config) -> None:
    set_champion(ws, "pricewise", "1")
    load_best(ws.settings, config)
    down = Settings(
        data_dir=ws.settings.data_dir,
        config_path=ws.config_path,
        mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}",
    )
    served = load_best(down, config)
    assert (served.source, served.version, served.fallback) == ("cache", "1", False)
    assert served.categories == CATEGORIES
    assert served.comparables is not None


def test_without_a_main_champion_the_registered_baseline_serves(ws: Workspace, config: Config) -> None:
    set_champion(ws, "pricewise-baseline", "1")
    served = load_best(ws.settings, config)
    assert (served.source, served.name, served.version, served.fallback) == (
        "baseline-registry",
        "pricewise-baseline",
        "1",
        True,
    )
    assert served.categories == CATEGORIES, "the baseline carries the category list too"
    assert served.comparables is None
    assert served.explainer is None


def test_with_nothing_to_serve_the_holder_stays_empty_and_keeps_why(ws: Workspace, config: Config) -> None:
    holder = ModelHolder(ws.settings, config)  # models registered, but no alias points at any of them
    holder.load_initial()
    assert holder.served is None
    assert holder.error is not None
    for reason in (
        "champion: pricewise has no champion",
        "cache: no cached model",
        "baseline: pricewise-baseline",
    ):
        assert reason in holder.error
    outcome = holder.reload()
    assert outcome.failed
    assert not outcome.changed
    assert holder.served is None
    assert holder.error is not None
    assert "baseline: pricewise-baseline has no champion" in holder.error


def test_a_model_logged_without_a_reference_serves_prices_and_warns_once(
    ws: Workspace, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    set_champion(ws, "pricewise", "2")
    with caplog.at_level(logging.WARNING, logger="pricewise.serving.model_holder"):
        served = load_best(ws.settings, config)
    assert (served.source, served.version) == ("registry", "2")
    assert served.comparables is None
    assert served.categories == ()
    warnings = [r for r in caplog.records if "carries no serving reference" in r.getMessage()]
    assert len(warnings) == 1
    listing = pd.DataFrame([{"name": "nike shoes", "item_condition_id": 2, "shipping": 1}])
    assert served.suggester.suggest(listing)["price"].iloc[0] > 0


def test_a_reload_serves_the_new_champion_with_its_reference(ws: Workspace, config: Config) -> None:
    set_champion(ws, "pricewise", "2")
    holder = ModelHolder(ws.settings, config)
    holder.load_initial()
    assert holder.served is not None
    assert holder.served.comparables is None
    assert holder.reload().detail == "champion v2 already serving"
    set_champion(ws, "pricewise", "1")
    outcome = holder.reload()
    assert outcome.changed, outcome.detail
    assert holder.served.version == "1"
    assert holder.served.comparables is not None
    assert holder.served.categories == CATEGORIES


def test_with_nothing_to_serve_the_app_is_not_ready_and_says_why(tmp_path: Path, config: Config) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_path=SHIPPED_CONFIG)
    torch_threads = torch.get_num_threads()  # the lifespan sets one thread per worker process
    try:
        with TestClient(create_app(settings, config)) as client:
            ready = client.get("/ready")
            suggestion = client.post(
                "/v1/suggestions", json={"name": "Nike shoes", "item_condition_id": 2, "shipping": 1}
            )
    finally:
        torch.set_num_threads(torch_threads)
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert "no model can be served" in ready.json()["detail"]
    assert "baseline: pricewise-baseline has no champion" in ready.json()["detail"]
    assert suggestion.status_code == 503
    assert not settings.warehouse.exists(), (
        "a server with nothing to serve does not create a warehouse either"
    )


def register_by_hand(ws: Workspace, like: str = "1") -> str:
    """A version of `pricewise` made straight in the registry from v`like`'s files, without pricewise's digest."""
    tracking.configure(ws.settings)
    client = MlflowClient()
    source = client.get_model_version("pricewise", like)
    return str(client.create_model_version("pricewise", source=source.source, run_id=source.run_id).version)


def test_a_champion_registered_by_hand_is_refused_and_the_current_model_keeps_serving(
    ws: Workspace, config: Config
) -> None:
    set_champion(ws, "pricewise", "1")
    holder = ModelHolder(ws.settings, config)
    holder.load_initial()
    assert holder.served is not None
    assert holder.served.version == "1"
    by_hand = register_by_hand(ws)
    set_champion(ws, "pricewise", by_hand)

    outcome = holder.reload()

    assert outcome.failed
    assert not outcome.changed
    assert f"refused pricewise v{by_hand}: it carries no artifact digest" in outcome.detail
    assert holder.served.version == "1"
    assert holder.refused == (
        f"champion v{by_hand} refused (its files are not the ones pricewise registered); still serving pricewise v1"
    )
    set_champion(ws, "pricewise", "1")
    assert holder.reload().detail == "champion v1 already serving"
    assert holder.refused is None


def test_a_champion_whose_stored_files_changed_is_refused_before_it_is_unpickled(
    ws: Workspace, config: Config
) -> None:
    set_champion(ws, "pricewise", "1")
    tracking.configure(ws.settings)
    source = MlflowClient().get_model_version("pricewise", "1").source
    logged = mlflow.get_logged_model(source.removeprefix("models:/"))
    # The embedded artifact store is a directory under the data dir: change the stored pickle in place.
    pickle_file = Path(logged.artifact_location.removeprefix("file://")) / "python_model.pkl"
    pickle_file.write_bytes(pickle_file.read_bytes() + b"\n")

    with pytest.raises(
        PricewiseError, match="refused pricewise v1: the files the registry holds do not match"
    ):
        load_champion(ws.settings, config)
    assert not (model_cache.cache_dir(ws.settings) / "pricewise-v1").exists(), "nothing of it is cached"
    assert model_cache.read_cached(ws.settings) is None


def test_a_cache_pointer_without_a_digest_or_with_changed_files_is_refused(
    ws: Workspace, config: Config
) -> None:
    set_champion(ws, "pricewise", "1")
    load_best(ws.settings, config)
    cached = model_cache.read_cached(ws.settings)
    assert cached is not None
    assert load_cached(ws.settings).version == "1"
    (cached.path / "python_model.pkl").write_bytes((cached.path / "python_model.pkl").read_bytes() + b"\n")
    with pytest.raises(PricewiseError, match="refused cached pricewise v1: its files do not match"):
        load_cached(ws.settings)
    pointer = model_cache.cache_dir(ws.settings) / model_cache.POINTER
    meta = json.loads(pointer.read_text(encoding="utf-8"))
    del meta["digest"]
    pointer.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(PricewiseError, match="its pointer records no artifact digest"):
        load_cached(ws.settings)
