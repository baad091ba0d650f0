"""A workspace in; a real `pricewise serve` process on a free loopback port out, with the listing, token and
Chromium the serving tests use."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pricewise.settings import Settings
from pricewise.store.prediction_log import PredictionLog, default_url
from tests.support.workspaces import Workspace

ADMIN_TOKEN = "test-admin-token"
LISTING = {
    "name": "Nike Air Max 90 size 10",
    "brand_name": "Nike",
    "category_name": "Men/Shoes/Athletic",
    "item_condition_id": 2,
    "shipping": 1,
    "item_description": "Worn twice, no box.",
}
PRICEWISE = Path(sys.executable).parent / "pricewise"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A `pricewise serve` process on a free loopback port."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    settings: Settings
    env: dict[str, str] = field(default_factory=dict)

    def client(self, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client bound to this server."""
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def prediction_log(self) -> PredictionLog:
        """The server's prediction log, opened from this (test) process."""
        return PredictionLog(default_url(self.settings))

    def logs(self) -> str:
        """What the server wrote to stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(
    ws: Workspace, log_dir: Path, workers: int = 1, admin_token: str | None = ADMIN_TOKEN, **env: str
) -> Server:
    """Start `pricewise serve` on a workspace and wait until /ready answers 200.

    Raises:
        AssertionError: The server exits or is not ready within 90 s (its log is in the message).
    """
    port = free_port()
    environment = {
        **os.environ,
        "PRICEWISE_DATA_DIR": str(ws.settings.data_dir),
        "PRICEWISE_CONFIG_PATH": str(ws.config_path),
        "PRICEWISE_SERVE_PORT": str(port),
        "PRICEWISE_SERVE_WORKERS": str(workers),
        **env,
    }
    environment.pop("PRICEWISE_ADMIN_TOKEN", None)
    if admin_token is not None:
        environment["PRICEWISE_ADMIN_TOKEN"] = admin_token
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as sink:
        process = subprocess.Popen([str(PRICEWISE), "serve"], env=environment, stdout=sink, stderr=sink)
    server = Server(process, f"http://127.0.0.1:{port}", log_path, ws.settings, environment)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{server.logs()[-3000:]}")
        try:
            if httpx.get(f"{server.base_url}/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"server not ready in 90 s:\n{server.logs()[-3000:]}")
