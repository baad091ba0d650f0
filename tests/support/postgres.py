"""PostgreSQL server binaries in; a throwaway cluster on a free loopback port out (password login over TCP, its
own temporary directory, stopped and deleted at the end), with a fresh database per test and a restart for the
outage tests.

initdb refuses to run as root: as root the cluster runs as the unprivileged user ``postgres`` (created if it
does not exist), which owns the temporary directory.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_port

ROLE = "pricewise"
SERVICE_USER = "postgres"
START_TIMEOUT_S = 30


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first, then Debian's /usr/lib/postgresql/<version>/bin
    (newest version first); None when there is none."""
    found = shutil.which("initdb")
    if found is not None:
        directory = Path(os.path.realpath(found)).parent
        if (directory / "pg_ctl").is_file():
            return directory
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
        reverse=True,
    )
    return next((d for d in versions if (d / "initdb").is_file() and (d / "pg_ctl").is_file()), None)


def _service_user() -> str | None:
    """The user the cluster runs as: None (this one) unless this is root, which initdb refuses."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
            capture_output=True,
        )
    return SERVICE_USER


@dataclass
class PostgresCluster:
    """A running cluster: one superuser role with a password, TCP on 127.0.0.1 only."""

    bin_dir: Path
    root: Path
    port: int
    password: str
    run_as: str | None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.root / "server.log"

    @classmethod
    def create(cls) -> PostgresCluster:
        """initdb into a new temporary directory and start the server.

        Raises:
            RuntimeError: No binaries were found, or the server does not start (its log is in the message).
        """
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError(
                "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql"
            )
        run_as = _service_user()
        # Not under pytest's tmp directories: those are private to this user, and the socket path must be short.
        root = Path(tempfile.mkdtemp(prefix="pricewise-pg-", dir="/tmp"))
        cluster = cls(bin_dir, root, free_port(), secrets.token_urlsafe(16), run_as)
        password_file = root / "password"
        password_file.write_text(cluster.password + "\n", encoding="utf-8")
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            for path in (root, password_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        try:
            cluster._run(
                "initdb",
                "--pgdata",
                str(cluster.data_dir),
                "--username",
                ROLE,
                "--pwfile",
                str(password_file),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-sync",
            )
            password_file.unlink()
            cluster.start()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def _run(self, program: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def start(self) -> None:
        """Start the server on its port and wait until it accepts password logins over TCP.

        Raises:
            RuntimeError: It does not start in time (its log is in the message).
        """
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off"  # a throwaway cluster: an OS crash need not be survived
        )
        try:
            self._run(
                "pg_ctl", "start", "--wait", f"--timeout={START_TIMEOUT_S}", "--pgdata", str(self.data_dir),
                "--log", str(self.log_path), "--options", options, timeout=START_TIMEOUT_S + 10,
            )  # fmt: skip
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.server_log()[-3000:]}") from exc
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._accepts_logins():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no password login over TCP in {START_TIMEOUT_S} s:\n{self.server_log()[-3000:]}"
                )
            time.sleep(0.1)

    def _accepts_logins(self) -> bool:
        import psycopg  # the dev extras' driver: imported only once a cluster runs

        try:
            self.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def stop(self) -> None:
        """Stop the server now (fast shutdown: open sessions are ended, nothing committed is lost)."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "--wait", "--mode=fast", "--pgdata", str(self.data_dir))

    def restart(self) -> None:
        """Stop fast, then start again on the same port."""
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def server_log(self) -> str:
        """What the server wrote to its log so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def url(self, database: str = "postgres") -> str:
        """The URL the stores are given: postgresql://role:password@127.0.0.1:port/database."""
        return f"postgresql://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement outside a transaction (CREATE DATABASE needs that) and return its rows."""
        import psycopg  # the dev extras' driver: imported only once a cluster runs

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=ROLE,
            password=self.password,
            dbname=database,
            autocommit=True,
            connect_timeout=5,
        ) as connection:
            cursor = connection.execute(sql)
            return list(cursor.fetchall()) if cursor.description is not None else []

    def fresh_database(self) -> str:
        """Create an empty database test_<uuid> and return its URL."""
        name = f"test_{uuid.uuid4().hex}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
