"""The OpenAPI schema of a running server in, a bounded schemathesis fuzz run out: no request may cause a 5xx.

Hypothesis drives schemathesis' strategies directly (one bounded run per operation, positive and negative
cases) rather than through schemathesis' pytest plugin, which does not support this pytest version.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.support.servers import Server, start_server
from tests.support.workspaces import Workspace, clone_workspace

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def documented(serving_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on a clone of the promoted workspace with serve.expose_docs on: the schema is off by default."""
    root = tmp_path_factory.mktemp("fuzz")
    ws = clone_workspace(serving_workspace, root / "ws")
    raw = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    raw["serve"]["expose_docs"] = True
    config_path = root / "pricewise-docs.yaml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    running = start_server(ws, root, PRICEWISE_CONFIG_PATH=str(config_path))
    yield running
    running.stop()


def test_no_generated_request_causes_a_server_error(documented: Server) -> None:
    server = documented
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/v1/suggestions" for op in operations)
    calls: list[tuple[str, int]] = []
    for operation in operations:
        strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
            generation_mode=GenerationMode.NEGATIVE
        )

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(base_url=server.base_url, timeout=30)
            calls.append((case.operation.label, response.status_code))
            case.validate_response(response, checks=[not_a_server_error])

        fuzz()
    assert len(calls) >= len(operations) * 5, calls
    assert all(status < 500 for _, status in calls)
    assert any(status == 200 for label, status in calls if label == "POST /v1/suggestions")
