"""A YAML file of stage parameters in, a strict, frozen, typed Config out (a typo fails loudly)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pricewise.errors import PricewiseError


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors and values cannot change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Share = Annotated[float, Field(ge=0.0, le=1.0)]


class Threshold(StrictModel):
    """A batch check passes below `warn`, warns from `warn`, fails from `fail`."""

    warn: float = Field(ge=0.0)
    fail: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.fail < self.warn:
            raise ValueError(f"fail ({self.fail}) must be >= warn ({self.warn})")
        return self


class IngestConfig(StrictModel):
    """How raw files are read."""

    max_line_bytes: int = Field(default=2_000_000, ge=1024, description="Longest physical record accepted.")


class RowRules(StrictModel):
    """Rules every row must pass to be accepted."""

    max_price: float = Field(default=5000.0, gt=0)
    max_name_chars: int = Field(default=200, ge=1)
    max_description_chars: int = Field(default=5000, ge=1)
    max_brand_chars: int = Field(default=100, ge=1)
    max_category_chars: int = Field(default=200, ge=1)


class BatchChecks(StrictModel):
    """Thresholds of the checks of a whole batch against the reference profile."""

    min_accepted_rows: int = Field(default=1, ge=1, description="Fewer accepted rows than this fails.")
    reject_share: Threshold = Threshold(warn=0.01, fail=0.10)
    null_share_delta: Threshold = Threshold(warn=0.10, fail=0.25)
    mean_log_price_z: Threshold = Threshold(warn=3.0, fail=6.0)
    zscore_max_n: int = Field(
        default=1000,
        ge=2,
        description="Cap on n in the standard error of the mean, so huge batches are not failed by tiny shifts.",
    )
    unseen_category_share: Threshold = Threshold(warn=0.10, fail=0.30)
    unseen_brand_share: Threshold = Threshold(warn=0.15, fail=0.40)


class ValidateConfig(StrictModel):
    """Row rules, batch checks and the reference batch."""

    rows: RowRules = RowRules()
    batch: BatchChecks = BatchChecks()
    reference_batch: str | None = Field(
        default=None, description="Batch id of the reference profile; default: first accepted training batch."
    )


class SplitConfig(StrictModel):
    """Shares of the deterministic train/valid/test assignment."""

    train: Share = 0.8
    valid: Share = 0.1
    test: Share = 0.1

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"train + valid + test must be 1, got {total}")
        return self


class Config(StrictModel):
    """All stage parameters, one section per stage."""

    ingest: IngestConfig = IngestConfig()
    validate_: ValidateConfig = Field(default=ValidateConfig(), alias="validate")
    split: SplitConfig = SplitConfig()


def load_config(path: Path | None) -> Config:
    """Load and validate the stage parameters.

    Args:
        path: A YAML file; None or a missing default file gives the built-in defaults.

    Returns:
        The validated configuration.

    Raises:
        PricewiseError: The file is unreadable, not YAML, or does not match the schema.
    """
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PricewiseError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PricewiseError(f"config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PricewiseError(f"config {path} must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise PricewiseError(f"config {path} is invalid: {problems}") from exc
