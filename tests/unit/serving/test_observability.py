"""Log records in; one ECS JSON line each out."""

from __future__ import annotations

import json
import logging

from pricewise.serving.observability import EcsJsonFormatter


def test_ecs_formatter_emits_one_json_object_with_ecs_names() -> None:
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "WARNING", "msg": "slow %s", "args": ("call",), "trace.id": "t1"}
    )
    line = EcsJsonFormatter().format(record)
    document = json.loads(line)
    assert "\n" not in line
    assert document["message"] == "slow call"
    assert document["log.level"] == "warning"
    assert document["trace.id"] == "t1"
    assert document["@timestamp"].endswith("+00:00")
