"""A YAML file of stage parameters in, a strict, frozen, typed Config out (a typo fails loudly)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

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
    max_name_chars: int = Field(
        default=45,
        ge=1,
        description="The marketplace cuts names at 40 characters ('[rm]' for a removed price adds a few): a longer "
        "name is a description or other text moved into the name column.",
    )
    max_description_chars: int = Field(default=5000, ge=1)
    max_brand_chars: int = Field(default=100, ge=1)
    max_category_chars: int = Field(default=200, ge=1)
    category_levels: tuple[int, int] = Field(
        default=(3, 5),
        description="Fewest and most levels of a category path ('Women/Tops & Blouses/Blouse': 3).",
    )
    max_name_words: int = Field(
        default=12, ge=1, description="A name with more words than this is taken for a misplaced description."
    )
    max_brand_words: int = Field(
        default=6, ge=1, description="A brand with more words than this is taken for misplaced text."
    )
    known_from_rows: int = Field(
        default=2,
        ge=1,
        description="A category or brand is known once accepted in another batch or in this many of the batch's rows.",
    )
    listed_name_chars: int = Field(
        default=40,
        ge=5,
        description="Where the marketplace cuts names: a name within 4 characters of it may end in a cut word.",
    )
    vocabulary_rows: int = Field(
        default=10_000, ge=1, description="Rows of the batch whose words are counted for the cut-word rule."
    )
    common_word_rows: int = Field(
        default=10,
        ge=2,
        description="A word is common once in this many of those rows; a name or description ending in a word "
        "known from fewer than known_from_rows rows that begins a common one was cut short.",
    )
    min_cut_word_chars: int = Field(default=2, ge=1, description="Shortest cut word the rule looks for.")
    max_cut_space_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="A name or description ending in whitespace was cut after a word while at most this share "
        "of the batch's ends so; above it the batch is padded.",
    )

    @model_validator(mode="after")
    def _levels_ordered(self) -> RowRules:
        low, high = self.category_levels
        if not 1 <= low <= high:
            raise ValueError(f"category_levels must be 1 <= fewest <= most, got {list(self.category_levels)}")
        return self


class SegmentShift(StrictModel):
    """A shift of the price level in one top-level category that training may learn from (see validation)."""

    min_rows: int = Field(
        default=50, ge=10, description="Rows a segment needs, in the batch and the reference."
    )
    z: float = Field(
        default=4.0, gt=0, description="|median shift| / its standard error that counts as a shift."
    )
    max_factor: float = Field(
        default=2.0, gt=1.0, description="Largest price factor a market shift can have; beyond: implausible."
    )
    max_spread_ratio: float = Field(
        default=1.5,
        gt=1.0,
        description="A shifted segment's robust spread may differ by at most this factor.",
    )
    quantile_tolerance: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="The quartiles must move by the median's shift within this share of it: the whole "
        "distribution moved, not a part of its rows.",
    )
    half_z: float = Field(
        default=2.0, gt=0, description="Each half of the batch must show the shift, with this z at least."
    )


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
    segment_shift: SegmentShift = SegmentShift()


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


class BaselineConfig(StrictModel):
    """The rules baseline: median price by group, backing off to coarser groups below a minimum size."""

    min_group_size: int = Field(default=5, ge=1)


class RecencyConfig(StrictModel):
    """The newest trusted outcomes: a holdout the gate scores on, and the weight of the others in training."""

    holdout_share: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="Share of the newest outcomes held out of training."
    )
    holdout_max_rows: int = Field(default=2000, ge=1, description="Most outcomes held out.")
    min_outcomes: int = Field(
        default=100, ge=1, description="Fewer trusted outcomes in the warehouse than this: no holdout."
    )
    outcome_weight: int = Field(
        default=1,
        ge=1,
        le=20,
        description="Training weight of a trusted outcome ingested within `weight_days` (1: as any listing).",
    )
    weight_days: float = Field(default=30.0, gt=0, description="How long an outcome counts as recent.")


class TrainConfig(StrictModel):
    """Training: what is registered where, range coverage, and the main model's hyperparameters."""

    experiment: str = "pricewise"
    registered_model: str = "pricewise"
    baseline_registered_model: str = "pricewise-baseline"
    coverage: float = Field(default=0.8, gt=0.0, lt=1.0, description="Stated coverage of price ranges.")
    seed: int = 42
    min_rows_per_split: int = Field(default=20, ge=1)
    use_tuned_params: bool = Field(default=True, description="Overlay the best parameters `tune` saved.")
    baseline: BaselineConfig = BaselineConfig()
    recency: RecencyConfig = RecencyConfig()
    params: dict[str, Any] = Field(default_factory=dict, description="Main model hyperparameters.")


class SearchDimension(StrictModel):
    """One hyperparameter's search range for Hyperopt."""

    kind: Literal["uniform", "loguniform", "quniform", "choice"]
    low: float | None = None
    high: float | None = None
    q: float | None = None
    options: list[Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> SearchDimension:
        if self.kind == "choice" and not self.options:
            raise ValueError("a choice needs options")
        if self.kind != "choice" and (self.low is None or self.high is None or self.high <= self.low):
            raise ValueError(f"{self.kind} needs low < high")
        if self.kind == "quniform" and not self.q:
            raise ValueError("quniform needs q")
        return self


class TuneConfig(StrictModel):
    """Hyperopt TPE search over the main model's hyperparameters."""

    max_evals: int = Field(default=12, ge=1)
    seed: int = 7
    space: dict[str, SearchDimension] = Field(default_factory=dict)


class BehaviourConfig(StrictModel):
    """Behaviour checks a challenger must pass before promotion."""

    sample_size: int = Field(default=300, ge=10)
    invariance_tolerance: float = Field(default=0.01, ge=0.0, description="Max |change| of log price.")
    condition_tolerance: float = Field(
        default=0.0, ge=0.0, description="Largest slope of mean log price over condition 1..5 allowed."
    )


class PromoteConfig(StrictModel):
    """The promotion gate."""

    margin: float = Field(
        default=0.0, ge=0.0, description="RMSLE the challenger must gain over the champion."
    )
    behaviour: BehaviourConfig = BehaviourConfig()
    recency_min_rows: int = Field(
        default=100, ge=1, description="Recent outcomes the holdout needs before the gate weighs it."
    )
    shift_margin: float = Field(
        default=0.02,
        ge=0.0,
        description="The market moved when the champion's RMSLE on the recent holdout exceeds its test RMSLE by "
        "more than this; then the recent holdout decides alone.",
    )


class PredictConfig(StrictModel):
    """Batch scoring."""

    chunk_rows: int = Field(default=50_000, ge=1000)
    workers: int = Field(default=2, ge=1, description="Scoring processes for inputs of more than two chunks.")


class ServeConfig(StrictModel):
    """The suggestion API and seller page (serving/ owns how these are used)."""

    # The ceilings are the request models' hard limits (serving/schemas.py): a limit above them could never apply.
    max_batch: int = Field(default=100, ge=1, le=1_000, description="Most listings in one batch request.")
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_header_bytes: int = Field(
        default=32_768, ge=1024, description="Largest request head (request line and headers); more gets 431."
    )
    keep_alive_seconds: float = Field(
        default=5.0, gt=0, description="An open connection without a request is closed after this long."
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A request head must arrive within this long of its first byte (else 408).",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request body must arrive within this long of its headers (else 408).",
    )
    max_name_chars: int = Field(default=200, ge=1, le=1_000)
    max_description_chars: int = Field(default=5000, ge=1, le=100_000)
    reload_poll_seconds: float = Field(
        default=30.0, ge=0.0, description="0 turns polling for a new champion off."
    )
    comparables: int = Field(default=5, ge=0, le=50, description="Similar sold listings returned on request.")
    feedback_per_minute: int = Field(
        default=30, ge=1, description="Seller feedback requests per client address per minute; more get 429."
    )
    max_outcomes: int = Field(default=1000, ge=1, description="Most outcomes in one /v1/outcomes request.")
    log_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="NORMAL",
        description="SQLite prediction log: NORMAL (WAL) survives a killed server, FULL also a power loss.",
    )
    log_min_free_mib: int = Field(
        default=8,
        ge=0,
        description="SQLite prediction log: /ready answers 503 while its disk has less free space than this "
        "(a commit and the checkpoint after it need room); 0 turns the check off.",
    )
    admin_failures_per_minute: int = Field(
        default=5,
        ge=1,
        description="Wrong admin tokens per client address per minute; past this every admin request of that "
        "client gets 429 until the minute is over, a correct token included.",
    )
    expose_docs: bool = Field(
        default=False,
        description="Serve the API's interactive docs and schema (/docs, /redoc, /openapi.json); off: 404.",
    )
    expose_metrics: bool = Field(default=True, description="Serve Prometheus metrics at /metrics; off: 404.")


class MonitorConfig(StrictModel):
    """Monitoring: what is compared with the champion's training data, and how much of it."""

    window_hours: float = Field(default=24.0, gt=0, description="Default window of the prediction log.")
    min_rows: int = Field(
        default=30, ge=1, description="A window with fewer suggestions than this has nothing to compare."
    )
    max_rows: int = Field(
        default=100_000,
        ge=1000,
        description="Rows per side handed to Evidently; larger sides are sampled uniformly at random (seeded).",
    )
    min_feedback_rows: int = Field(
        default=30, ge=1, description="Sold prices needed before accuracy and target drift are judged."
    )
    vocabulary_min_count: int = Field(
        default=2, ge=1, description="A word belongs to the reference vocabulary from this many listings on."
    )
    seed: int = 0


class RetrainConfig(StrictModel):
    """When `pricewise retrain --if-needed` retrains: any rule that triggers is enough."""

    drift_share: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Retrain when this share of input columns drifted, or more."
    )
    rmsle_margin: float = Field(
        default=0.05,
        ge=0.0,
        description="Retrain when feedback RMSLE exceeds the champion's offline RMSLE by this.",
    )
    max_age_days: float = Field(
        default=30.0, gt=0, description="Retrain when the champion is older than this."
    )
    on_target_drift: bool = Field(
        default=True, description="Retrain when sold prices drifted from the training prices."
    )
    harvest_feedback: bool = Field(
        default=True,
        description="Ingest listings with sold prices from the prediction log before retraining.",
    )


class Config(StrictModel):
    """All stage parameters, one section per stage."""

    ingest: IngestConfig = IngestConfig()
    validate_: ValidateConfig = Field(default=ValidateConfig(), alias="validate")
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    tune: TuneConfig = TuneConfig()
    promote: PromoteConfig = PromoteConfig()
    predict: PredictConfig = PredictConfig()
    serve: ServeConfig = ServeConfig()
    monitor: MonitorConfig = MonitorConfig()
    retrain: RetrainConfig = RetrainConfig()


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
