"""A real SQLite prediction log in; the latest sold price per suggestion, the sold suggestions and a window out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from pricewise.settings import Settings
from pricewise.store.prediction_log import PredictionLog, default_url
from tests.support.logged import log_suggestions


def test_trusted_sold_prices_count_once_and_chosen_prices_do_not(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_path=tmp_path / "none.yaml")
    log_suggestions(settings, [1, 2, 3, 4], sold={1: [50.0, 20.0], 2: [30.0]})
    log = PredictionLog(default_url(settings))
    try:
        assert log.record_feedback("req-3", chosen_price=11.0)
        assert not log.record_feedback("req-unknown", 5.0)
        sold = log.latest_sold_prices()
        with log.engine.connect() as connection:
            latest = dict(connection.execute(select(sold.c.request_id, sold.c.sold_price)).all())
        frame = log.sold_suggestions()
        lean = log.sold_suggestions(with_inputs=False)
        window = log.suggestions_between(datetime.now(UTC) - timedelta(hours=1), None)
        before = log.suggestions_between(None, datetime(2000, 1, 1, tzinfo=UTC))
    finally:
        log.close()

    assert latest == {"req-1": 20.0, "req-2": 30.0}
    assert frame["request_id"].tolist() == ["req-1", "req-2"]
    assert frame["sold_price"].tolist() == [20.0, 30.0]
    assert frame["label_source"].tolist() == ["test", "test"]
    assert frame["inputs"].iloc[0]["name"] == "Item number 1"
    assert frame["created_at"].dt.tz is not None
    assert frame[["price", "low", "high", "stated_coverage"]].iloc[0].tolist() == [12.0, 8.0, 18.0, 0.8]
    assert "inputs" not in lean.columns
    assert len(window) == 4
    assert window.set_index("request_id")["sold_price"].dropna().to_dict() == {"req-1": 20.0, "req-2": 30.0}
    assert before.empty
