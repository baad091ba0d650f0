"""Settings and config in, the model a worker serves out: champion, else cached last good, else rules baseline.

The order: the registry's champion; the on-disk cache of the last champion that loaded and predicted; the
registered rules baseline; a rules baseline fitted from the warehouse.

A loaded model is an immutable `ServedModel`; a reload builds a complete new one (model, explainer,
comparables index) before it replaces the old reference, so requests in flight finish on the model they started
with and a champion that fails to load never replaces a working one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.models.baseline import RulesBaseline
from pricewise.models.comparables import ComparablesIndex
from pricewise.models.explain import Explainer
from pricewise.models.ranges import ConformalPriceRanges
from pricewise.models.suggester import PriceSuggester
from pricewise.settings import Settings
from pricewise.store import registry, tracking, training_data

logger = logging.getLogger(__name__)

MAX_CATEGORIES = 300

Source = Literal["registry", "cache", "baseline-registry", "baseline-fitted"]


@dataclass(frozen=True)
class ServedModel:
    """A loaded model and what the API says about it."""

    suggester: PriceSuggester
    name: str
    version: str | None
    run_id: str | None
    source: Source
    loaded_at: str
    explainer: Explainer | None
    comparables: ComparablesIndex | None
    categories: tuple[str, ...]

    @property
    def fallback(self) -> bool:
        """True when a rules baseline answers instead of a trained main model."""
        return self.source.startswith("baseline")

    @property
    def prices_on_loop(self) -> bool:
        """True when pricing one listing takes well under a millisecond, short enough for the event loop; a model
        that runs the sentence encoder takes milliseconds and is priced in a thread instead."""
        return not getattr(self.suggester.model, "encodes_text", False)


def cache_dir(settings: Settings) -> Path:
    """Where the last good champion is kept, for starts with the registry unreachable."""
    return settings.data_dir / "serving" / "model-cache"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _download(settings: Settings, uri: str, name: str, version: str) -> Path:
    """Copy a registered model's files into the cache directory (once per version; workers may race)."""
    root = cache_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-v{version}"
    if not (target / "MLmodel").is_file():
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-v{version}-", dir=root))
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging))
        try:
            staging.rename(target)
        except OSError:  # another worker got there first with the same files
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _remember(settings: Settings, path: Path, name: str, version: str, run_id: str | None) -> None:
    """Point `current.json` at a model that loaded and predicted; atomic, so a crash leaves the old pointer."""
    root = cache_dir(settings)
    fd, tmp = tempfile.mkstemp(prefix=".current-", dir=root)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"name": name, "version": version, "run_id": run_id, "path": path.name}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    Path(tmp).replace(root / "current.json")


def _read_cache(settings: Settings) -> tuple[Path, dict[str, str | None]] | None:
    pointer = cache_dir(settings) / "current.json"
    try:
        meta = json.loads(pointer.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    path = cache_dir(settings) / str(meta.get("path", ""))
    return (path, meta) if (path / "MLmodel").is_file() else None


def _reference(settings: Settings) -> training_data.TrainingData | None:
    try:
        return training_data.load(settings, 1)
    except PricewiseError as exc:
        logger.warning("no training listings for comparables or a fitted baseline: %s", exc)
        return None
    except Exception:  # a locked or damaged warehouse must not stop the API from serving prices
        logger.warning("cannot read the warehouse", exc_info=True)
        return None


SMOKE_LISTING = {
    "name": ["smoke test"],
    "brand_name": [""],
    "category_name": [""],
    "item_condition_id": [3],
    "shipping": [0],
    "item_description": [""],
}


def _smoke_test(suggester: PriceSuggester) -> None:
    """A model that loads but cannot predict a finite price is as broken as one that does not load."""
    try:
        prices = suggester.suggest(pd.DataFrame(SMOKE_LISTING))
    except Exception as exc:
        raise PricewiseError(f"the model fails on a smoke listing: {type(exc).__name__}: {exc}") from exc
    if not np.isfinite(prices.to_numpy(dtype=float)).all():
        raise PricewiseError("the model returns non-finite prices on a smoke listing")


def _assemble(
    suggester: PriceSuggester,
    name: str,
    version: str | None,
    run_id: str | None,
    source: Source,
    reference: training_data.TrainingData | None,
) -> ServedModel:
    explainer = Explainer.for_model(suggester.model)
    comparables = None
    if reference is not None:
        comparables = ComparablesIndex.build(suggester.model, reference)
    _smoke_test(suggester)
    categories: tuple[str, ...] = ()
    if reference is not None:
        counts = reference.train.frame["category_name"].dropna().astype(str).value_counts()
        categories = tuple(sorted(c for c in counts.index[:MAX_CATEGORIES] if c))
    return ServedModel(suggester, name, version, run_id, source, _now(), explainer, comparables, categories)


def load_champion(settings: Settings, config: Config) -> ServedModel:
    """Load the champion of the main model from the registry (and refresh the cache).

    Raises:
        PricewiseError: The registry is unreachable, has no champion, or the champion does not load.
    """
    name = config.train.registered_model
    tracking.configure(settings)
    client = MlflowClient()
    version = registry.version_by_alias(client, name, registry.CHAMPION)
    if version is None:
        raise PricewiseError(f"{name} has no {registry.CHAMPION} yet")
    try:
        run_id = client.get_model_version(name, version).run_id
        path = _download(settings, f"models:/{name}/{version}", name, version)
    except (MlflowException, OSError) as exc:
        raise PricewiseError(f"cannot fetch {name} v{version}: {exc}") from exc
    suggester = registry.load_suggester(str(path))
    served = _assemble(suggester, name, version, run_id, "registry", _reference(settings))
    # Only a model that loaded and predicted becomes the "last good model" for registry outages.
    _remember(settings, path, name, version, run_id)
    return served


def current_champion_version(settings: Settings, config: Config) -> str | None:
    """The version the champion alias points at now (None when there is none).

    Raises:
        PricewiseError: The registry is unreachable.
    """
    tracking.configure(settings)
    return registry.version_by_alias(MlflowClient(), config.train.registered_model, registry.CHAMPION)


def _load_cached(settings: Settings, config: Config) -> ServedModel:
    cached = _read_cache(settings)
    if cached is None:
        raise PricewiseError("no cached model")
    path, meta = cached
    suggester = registry.load_suggester(str(path))
    return _assemble(
        suggester,
        str(meta["name"]),
        meta.get("version"),
        meta.get("run_id"),
        "cache",
        _reference(settings),
    )


def _load_baseline(settings: Settings, config: Config) -> ServedModel:
    name = config.train.baseline_registered_model
    reference = _reference(settings)
    try:
        tracking.configure(settings)
        client = MlflowClient()
        version = registry.version_by_alias(client, name, registry.CHAMPION)
        if version is not None:
            run_id = client.get_model_version(name, version).run_id
            suggester = registry.load_suggester(f"models:/{name}/{version}")
            return _assemble(suggester, name, version, run_id, "baseline-registry", reference)
    except (PricewiseError, MlflowException, OSError) as exc:
        logger.warning("registered baseline unavailable: %s", exc)
    if reference is None:
        raise PricewiseError(
            "no trained model, no cached model and no training listings to fit a baseline on"
        )
    baseline = RulesBaseline(config.train.baseline.min_group_size).fit(
        reference.train.frame, reference.train.log_price
    )
    ranges = ConformalPriceRanges(coverage=config.train.coverage).calibrate(
        baseline.predict(reference.valid.frame), reference.valid.log_price
    )
    suggester = PriceSuggester(model=baseline, ranges=ranges, kind=type(baseline).__name__)
    return _assemble(suggester, name, None, None, "baseline-fitted", reference)


def load_best(settings: Settings, config: Config) -> ServedModel:
    """The best model available now: champion, else cached champion, else a rules baseline.

    Raises:
        PricewiseError: Nothing at all can be served.
    """
    try:
        return load_champion(settings, config)
    except Exception as exc:  # noqa: BLE001 - any failure of the registry path falls to the next source
        logger.warning("champion unavailable (%s); trying the cached model", exc)
    try:
        served = _load_cached(settings, config)
    except Exception as exc:  # noqa: BLE001 - a broken cache falls through to the baseline
        logger.warning("cached model unavailable (%s); falling back to the rules baseline", exc)
    else:
        logger.warning("serving the cached %s v%s", served.name, served.version)
        return served
    served = _load_baseline(settings, config)
    logger.warning("serving the rules baseline (%s): no trained model available", served.source)
    return served


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did: whether the served model changed, and why."""

    changed: bool
    failed: bool
    detail: str


class ModelHolder:
    """The model one worker serves, swapped whole on reload (readers never see a half-loaded model)."""

    def __init__(self, settings: Settings, config: Config) -> None:
        """Start empty; call `load_initial`.

        Args:
            settings: Where the registry, cache and warehouse are.
            config: Registered model names and baseline parameters.
        """
        self.settings = settings
        self.config = config
        self.served: ServedModel | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def load_initial(self) -> None:
        """Load the best model available; on total failure stay empty (not ready) with the reason kept."""
        with self._lock:
            try:
                self.served = load_best(self.settings, self.config)
                self.error = None
            except Exception as exc:
                self.error = str(exc)
                logger.exception("no model can be served")

    def reload(self, force: bool = False) -> ReloadOutcome:
        """Switch to the registry's current champion if it differs from what is served.

        A champion that fails to load (or to predict) is refused and the current model keeps serving.

        Args:
            force: Load the champion even when its version is the one already served.

        Returns:
            The outcome; `failed` is True when a new champion was found but could not be served.
        """
        with self._lock:
            current = self.served
            try:
                version = current_champion_version(self.settings, self.config)
            except Exception as exc:  # noqa: BLE001 - an unreachable registry keeps the current model
                return ReloadOutcome(False, False, f"registry unreachable, keeping the current model: {exc}")
            if version is None:
                if current is None:
                    return self._load_any()
                return ReloadOutcome(False, False, "no champion in the registry; keeping the current model")
            same = (
                current is not None and current.source in ("registry", "cache") and current.version == version
            )
            if same and not force:
                return ReloadOutcome(False, False, f"champion v{version} already serving")
            try:
                fresh = load_champion(self.settings, self.config)
            except Exception as exc:
                logger.exception("new champion v%s failed to load; the current model keeps serving", version)
                return ReloadOutcome(False, True, f"champion v{version} failed to load: {exc}")
            self.served = fresh
            self.error = None
            logger.info("now serving %s v%s (%s)", fresh.name, fresh.version, fresh.source)
            return ReloadOutcome(True, False, f"now serving {fresh.name} v{fresh.version}")

    def _load_any(self) -> ReloadOutcome:
        try:
            self.served = load_best(self.settings, self.config)
        except Exception as exc:  # noqa: BLE001 - reported in the outcome and on /ready
            self.error = str(exc)
            return ReloadOutcome(False, True, f"still no model: {exc}")
        self.error = None
        return ReloadOutcome(True, False, f"now serving {self.served.name} ({self.served.source})")
