"""The retraining loop on a real warehouse, MLflow store and server: it learns a real market shift from trusted
outcomes, and refuses outcomes from anyone else.

The market is the real sample, split by listing id: the champion is trained on one part ("before"), a second part
is listed through the API after one top-level category became 40% dearer and its sold prices come back as
trusted outcomes ("stream"), and a third part is never seen by any model ("fresh"): the shifted prices the old
champion and the promoted challenger are both scored on.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from pricewise.config import SegmentShift
from pricewise.models import metrics
from pricewise.settings import Settings
from pricewise.store.registry import load_suggester
from tests.support.servers import ADMIN_TOKEN, Server, start_server
from tests.support.workspaces import (
    TRAIN_SAMPLE,
    Workspace,
    clone_workspace,
    light_config_text,
)

OUTCOMES_TOKEN = "test-outcomes-token"
FIELDS = ["name", "brand_name", "category_name", "item_condition_id", "shipping", "item_description"]
SHIFTED = "Women"
SHIFT = 1.4
TINY = "Sports & Outdoors"  # 1.6% of the sample: below validate.batch.segment_shift.min_rows in a stream


def _parts() -> dict[str, pd.DataFrame]:
    sample = pd.read_csv(TRAIN_SAMPLE, sep="\t")
    part = sample["train_id"] % 4  # the sample's ids are in random order of listing
    return {
        "before": sample[part.isin([0, 1])],
        "stream": sample[part == 2],
        "fresh": sample[part == 3],
    }


def _config_text() -> str:
    raw = yaml.safe_load(light_config_text())
    # Recent trusted outcomes count four times in training: they say what the market is now.
    raw["train"]["recency"] = {"outcome_weight": 4}
    # A harvested sale's listing id comes from its random request id, so which of the stream's sales land in the
    # test split changes from run to run, and with it the test RMSLE of both models (the challenger's gain there
    # ranged -0.002 to 0.022 over six runs). Once the champion does worse on the newest outcomes than on the
    # test split at all, the market counts as moved and the newest outcomes decide.
    raw.setdefault("promote", {})["shift_margin"] = 0.0
    return str(yaml.safe_dump(raw))


@pytest.fixture(scope="module")
def market() -> dict[str, pd.DataFrame]:
    return _parts()


@pytest.fixture(scope="module")
def champion_before(market: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Half of the sample ingested, validated, trained (light config) and promoted: champion v1. Read-only."""
    root = tmp_path_factory.mktemp("champion-before")
    config_path = root / "pricewise.yaml"
    config_path.write_text(_config_text(), encoding="utf-8")
    ws = Workspace(Settings(data_dir=root / "data", config_path=config_path), config_path)
    source = root / "before.tsv"
    market["before"].to_csv(source, sep="\t", index=False)
    for command in (("ingest", str(source)), ("validate",), ("train",), ("promote",)):
        result = ws.cli(*command)
        assert result.exit_code == 0, result.output
    return ws


@pytest.fixture
def live(champion_before: Workspace, tmp_path: Path) -> Iterator[tuple[Workspace, Server]]:
    """A copy of the champion's workspace with a server of its own (outcomes and admin tokens set)."""
    ws = clone_workspace(champion_before, tmp_path / "live")
    server = start_server(ws, tmp_path, PRICEWISE_OUTCOMES_TOKEN=OUTCOMES_TOKEN)
    yield ws, server
    server.stop()


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    listings = frame[FIELDS]
    return listings.astype(object).where(listings.notna(), None).to_dict(orient="records")  # type: ignore[return-value]


def _suggest(server: Server, frame: pd.DataFrame) -> list[tuple[str, float]]:
    """Suggest prices for the listings through the API; their request ids and prices in order."""
    ids: list[tuple[str, float]] = []
    rows = _records(frame)
    with server.client() as client:
        for start in range(0, len(rows), 100):
            response = client.post("/v1/suggestions/batch", json={"listings": rows[start : start + 100]})
            assert response.status_code == 200, response.text
            ids.extend((s["request_id"], s["price"]) for s in response.json()["suggestions"])
    return ids


def _shifted_prices(frame: pd.DataFrame, category: str, factor: float) -> np.ndarray:
    top = frame["category_name"].fillna("").str.split("/").str[0]
    return np.round(frame["price"].to_numpy(float) * np.where(top == category, factor, 1.0), 2)


def _send_outcomes(server: Server, ids: list[str], prices: np.ndarray) -> None:
    headers = {"Authorization": f"Bearer {OUTCOMES_TOKEN}"}
    with server.client() as client:
        for start in range(0, len(ids), 500):
            body = {
                "outcomes": [
                    {"request_id": r, "sold_price": float(p)}
                    for r, p in zip(ids[start : start + 500], prices[start : start + 500], strict=True)
                    if p > 0  # the sample has unpriced (price 0) listings: nothing sold
                ]
            }
            response = client.post("/v1/outcomes", json=body, headers=headers)
            assert response.status_code == 200, response.text


def _json(result: object) -> dict[str, object]:
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))  # type: ignore[attr-defined]


def _champion(ws: Workspace) -> str:
    client = MlflowClient(tracking_uri=ws.settings.tracking_uri, registry_uri=ws.settings.tracking_uri)
    return str(client.get_model_version_by_alias("pricewise", "champion").version)


def _training_rows(ws: Workspace) -> int:
    con = duckdb.connect(str(ws.settings.warehouse), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM training_listings").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _fresh_rmsle(ws: Workspace, version: str, fresh: pd.DataFrame, truth: np.ndarray) -> float:
    from pricewise.store import tracking

    tracking.configure(ws.settings)
    suggester = load_suggester(f"models:/pricewise/{version}")
    priced = truth > 0
    scored = suggester.suggest(fresh[FIELDS][priced].reset_index(drop=True))
    return metrics.rmsle(truth[priced], scored["price"].to_numpy())


def test_one_cycle_after_a_market_shift_promotes_a_challenger_that_prices_the_new_market(
    live: tuple[Workspace, Server], market: dict[str, pd.DataFrame]
) -> None:
    started = time.perf_counter()
    ws, server = live
    stream = market["stream"]
    ids = [r for r, _ in _suggest(server, stream)]
    _send_outcomes(server, ids, _shifted_prices(stream, SHIFTED, SHIFT))

    monitored = ws.cli("monitor", "--last-hours", "1", "--json")
    assert monitored.exit_code == 0, monitored.output
    retrained = ws.cli("retrain", "--if-needed", "--json")
    assert retrained.exit_code == 0, retrained.output
    outcome = _json(retrained)
    figures = outcome["figures"]
    assert outcome["action"] == "trained", outcome["message"]
    # The shift reached training, flagged as a market shift with its figures, from the trusted source only.
    assert figures["harvested_batch_status"] == "warn", figures  # type: ignore[index]
    shift = figures["harvested_segment_shift"]  # type: ignore[index]
    assert shift["status"] == "warn", shift
    found = re.search(rf"{SHIFTED}: prices x(\d+\.\d+)", shift["detail"])
    assert found is not None, shift
    assert 1.3 <= float(found.group(1)) <= 1.5, shift
    assert figures["harvested_sources"] == {"api": int((stream["price"] > 0).sum())}  # type: ignore[index]
    assert outcome["promotion_action"] == "promote", outcome["promotion_reason"]
    gate = figures["gate"]  # type: ignore[index]
    assert gate["recent_rows"] >= 100, gate  # the gate looked at now, too
    assert gate["recent_gain"] > 0, gate
    print("gate:", json.dumps(gate))

    fresh = market["fresh"]
    truth = _shifted_prices(fresh, SHIFTED, SHIFT)
    old = _fresh_rmsle(ws, "1", fresh, truth)
    new = _fresh_rmsle(ws, str(outcome["challenger_version"]), fresh, truth)
    print(f"fresh shifted outcomes: old champion RMSLE {old:.4f}, promoted challenger {new:.4f}")
    assert _champion(ws) == str(outcome["challenger_version"])
    assert old - new >= 0.02, (old, new)
    print(f"recovery cycle: {time.perf_counter() - started:.1f} s")


def test_poisoning_of_the_same_size_changes_no_training_data_and_triggers_nothing(
    live: tuple[Workspace, Server], market: dict[str, pd.DataFrame]
) -> None:
    ws, server = live
    rows_before = _training_rows(ws)
    stream = market["stream"]
    suggestions = _suggest(server, stream)
    suggested = server.prediction_log()
    try:
        prices = suggested.sold_suggestions()  # no trusted sold price yet
        assert prices.empty
    finally:
        suggested.close()
    statuses: dict[int, int] = {}
    with server.client() as client:
        for request_id, price in suggestions:
            # The attack: anonymous feedback claiming a sold price 1.8x the suggestion.
            claim = {"request_id": request_id, "chosen_price": price, "sold_price": round(1.8 * price, 2)}
            answer = client.post("/v1/feedback", json=claim)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        for token in (None, ADMIN_TOKEN, "guessed"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            forged = client.post(
                "/v1/outcomes",
                json={"outcomes": [{"request_id": suggestions[0][0], "sold_price": 500.0}]},
                headers=headers,
            )
            assert forged.status_code == (401 if token is None else 403), forged.text
    assert set(statuses) <= {422, 429}, statuses

    assert ws.cli("monitor", "--last-hours", "1").exit_code == 0
    checked = ws.cli("retrain", "--check", "--json")
    assert checked.exit_code == 0, checked.output
    decision = _json(checked)
    assert decision["due"] is False, decision["message"]
    harvested = ws.cli("data", "harvest-feedback")
    assert "no new sold prices" in harvested.output
    assert ws.cli("retrain", "--if-needed").exit_code == 0
    assert _training_rows(ws) == rows_before
    assert _champion(ws) == "1"


def test_a_shift_confined_to_one_tiny_category_triggers_no_retraining(
    live: tuple[Workspace, Server], market: dict[str, pd.DataFrame]
) -> None:
    started = time.perf_counter()
    ws, server = live
    rows_before = _training_rows(ws)
    stream = market["stream"]
    top = stream["category_name"].fillna("").str.split("/").str[0]
    tiny_sold = int(((top == TINY) & (stream["price"] > 0)).sum())
    assert 0 < tiny_sold < SegmentShift().min_rows, tiny_sold
    ids = [r for r, _ in _suggest(server, stream)]
    _send_outcomes(server, ids, _shifted_prices(stream, TINY, SHIFT))

    assert ws.cli("monitor", "--last-hours", "1").exit_code == 0
    checked = ws.cli("retrain", "--check", "--json")
    assert checked.exit_code == 0, checked.output
    decision = _json(checked)
    assert decision["due"] is False, decision["message"]
    retrained = ws.cli("retrain", "--if-needed", "--json")
    assert retrained.exit_code == 0, retrained.output
    assert _json(retrained)["action"] == "none", retrained.output
    assert _training_rows(ws) == rows_before
    assert _champion(ws) == "1"
    # Harvested and validated anyway, the tiny category is too small to be judged: nothing is flagged.
    harvested = ws.cli("data", "harvest-feedback")
    assert harvested.exit_code == 0, harvested.output
    validated = ws.cli("validate")
    assert validated.exit_code == 0, validated.output
    assert "segment_shift" not in validated.output, validated.output
    assert "mean_log_price_z" not in validated.output, validated.output
    print(f"tiny-category shift: {time.perf_counter() - started:.1f} s")
