"""Environment settings (prefix PRICEWISE_) in, a typed Settings object out; nothing is created on import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where pricewise keeps its state; every field can be set as PRICEWISE_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="PRICEWISE_", env_file=".env", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("data"), description="Root of all local state.")
    warehouse_path: Path | None = Field(
        default=None, description="DuckDB file; defaults to <data_dir>/warehouse.duckdb."
    )
    config_path: Path = Field(default=Path("configs/pricewise.yaml"), description="Stage parameters (YAML).")
    reports_dir: Path | None = Field(default=None, description="Reports; defaults to <data_dir>/reports.")
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; defaults to a SQLite store under <data_dir>/mlflow."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for the server's admin endpoints; unset turns them off."
    )
    outcomes_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the outcomes endpoint (sold prices, the only labels the API takes); its own "
        "scope, separate from admin; unset turns the endpoint off.",
    )
    prediction_log_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the prediction log; defaults to SQLite (WAL) under <data_dir>/serving.",
    )
    decisions_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the decision tables (promotions, monitoring runs, retraining decisions); "
        "defaults to SQLite at <data_dir>/decisions.db.",
    )
    serve_host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    serve_port: int = Field(default=8000, ge=1, le=65535)
    serve_workers: int = Field(default=1, ge=1, description="uvicorn worker processes.")
    duckdb_memory_limit: str = Field(default="1GB", description="Memory cap for DuckDB queries.")
    duckdb_threads: int = Field(default=2, ge=1, description="Threads DuckDB may use.")
    spark_master: str = Field(
        default="local[2]",
        description="Spark master of the spark engine: local[N], spark://host:port, yarn or k8s://https://host:port.",
    )
    spark_master_timeout_seconds: float = Field(
        default=90.0, gt=0, description="How long the spark engine waits for the master and its first job."
    )

    @property
    def warehouse(self) -> Path:
        """The DuckDB warehouse file."""
        return self.warehouse_path or self.data_dir / "warehouse.duckdb"

    @property
    def reports(self) -> Path:
        """The directory that holds generated reports."""
        return self.reports_dir or self.data_dir / "reports"

    @property
    def scratch(self) -> Path:
        """Scratch space for archive extraction, on the same disk as the warehouse."""
        return self.data_dir / "tmp"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI; the embedded default is a SQLite store with artifacts beside it."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        """Where the embedded MLflow store keeps artifacts."""
        return (self.data_dir / "mlflow" / "artifacts").resolve()


def get_settings() -> Settings:
    """Read settings from the environment (and a .env file in the working directory, if any)."""
    return Settings()
