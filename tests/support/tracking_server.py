"""A PostgreSQL cluster and a directory in; a real `mlflow server` with MLflow's basic-auth app out, started
through docker/tracking-server.sh on a free loopback port (backend and auth databases fresh in the cluster,
artifacts served from the directory), with a user for pricewise and the environment a client needs."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.postgres import PostgresCluster
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docker" / "tracking-server.sh"
ADMIN = "admin"
USER = "pricewise"
START_TIMEOUT_S = 120


def _driver_url(url: str) -> str:
    """The cluster's URL with the psycopg (3) driver SQLAlchemy must use (plain postgresql:// means psycopg2)."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@dataclass
class TrackingServer:
    """An `mlflow server --app-name basic-auth --serve-artifacts` process group on a free loopback port."""

    port: int
    root: Path
    backend_database: str
    auth_database: str
    postgres: PostgresCluster
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    user_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The tracking URI pricewise is given."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifacts_dir(self) -> Path:
        """Where the server keeps the artifacts it serves."""
        return self.root / "artifacts"

    @property
    def log_path(self) -> Path:
        """The server's stdout and stderr."""
        return self.root / "server.log"

    def client_env(self, password: str | None = None) -> dict[str, str]:
        """The environment of a pricewise process using this server as the pricewise user."""
        return {
            "PRICEWISE_MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": USER,
            "MLFLOW_TRACKING_PASSWORD": self.user_password if password is None else password,
        }

    def logs(self) -> str:
        """What the server wrote so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def launch(self) -> None:
        """Start the script in a new process group (the script execs `mlflow server`, which starts uvicorn)."""
        environment = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_BACKEND_STORE_URI": _driver_url(self.postgres.url(self.backend_database)),
            "MLFLOW_AUTH_DATABASE_URI": _driver_url(self.postgres.url(self.auth_database)),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),
            "MLFLOW_ARTIFACTS_DESTINATION": str(self.artifacts_dir),
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
        }
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            environment.pop(name, None)
        command = ["sh", str(SCRIPT), "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with self.log_path.open("ab") as sink:
            self.process = subprocess.Popen(
                command, env=environment, stdout=sink, stderr=sink, start_new_session=True
            )

    def wait_ready(self) -> None:
        """Wait until /health answers 200.

        Raises:
            AssertionError: The server exits or does not answer in time (its log is in the message).
        """
        assert self.process is not None, "the tracking server was not launched"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"tracking server exited with {self.process.returncode}:\n{self.logs()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"tracking server not healthy in {START_TIMEOUT_S} s:\n{self.logs()[-3000:]}")

    def create_user(self) -> None:
        """Create the pricewise user through MLflow's auth REST API, as the admin."""
        response = httpx.post(
            f"{self.url}/api/2.0/mlflow/users/create",
            json={"username": USER, "password": self.user_password},
            auth=(ADMIN, self.admin_password),
            timeout=60,
        )
        assert response.status_code == 200, response.text

    def stop(self) -> None:
        """SIGTERM to the whole process group (script, mlflow, uvicorn and its workers), SIGKILL if needed."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        # uvicorn's workers are in the same group and may outlive the master by a moment.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def crash(self) -> None:
        """SIGKILL the whole process group, as a crash or a lost host would end it."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def backend_rows(self, sql: str) -> list[tuple[object, ...]]:
        """Rows of a query on the server's backend database."""
        return self.postgres.execute(sql, database=self.backend_database)


def start_tracking_server(postgres: PostgresCluster, root: Path) -> TrackingServer:
    """Fresh backend and auth databases, the server started through the script, healthy, with the pricewise user.

    Raises:
        AssertionError: The server does not start or the user cannot be created.
    """
    root.mkdir(parents=True, exist_ok=True)
    backend = postgres.fresh_database().rsplit("/", 1)[1]
    auth = postgres.fresh_database().rsplit("/", 1)[1]
    server = TrackingServer(free_port(), root, backend, auth, postgres)
    server.launch()
    try:
        server.wait_ready()
        server.create_user()
    except BaseException:
        server.stop()
        raise
    return server
