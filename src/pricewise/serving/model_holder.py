"""Settings and config in, the model a worker serves out: champion, else cached last good, else registered baseline.

The order: the registry's champion; the on-disk cache of the last champion that loaded and predicted; the
champion of the registered rules baseline; else nothing (the worker is not ready and /ready says why).

Everything served comes from the model's own files: the category and brand lists and the comparables index
travel inside the logged model (built at train time), so a load never reads the warehouse and is complete or
refused.

Only models pricewise registered are loaded: each load checks the model's files against the digest `train`
recorded for its version (the cache keeps that digest beside its copy), and a champion without one, or whose
files changed, is refused before it is unpickled.

A loaded model is an immutable `ServedModel`; a reload builds a complete new one (model, explainer, reference)
before it replaces the old reference, so requests in flight finish on the model they started with and a
champion that fails to load never replaces a working one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pricewise.config import Config
from pricewise.errors import PricewiseError
from pricewise.logs import redact
from pricewise.models.comparables import ComparablesIndex
from pricewise.models.explain import Explainer
from pricewise.models.suggester import PriceSuggester
from pricewise.settings import Settings
from pricewise.store import model_cache, registry, tracking

logger = logging.getLogger(__name__)

Source = Literal["registry", "cache", "baseline-registry"]


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
    brands: tuple[str, ...] = ()
    # Why this serves instead of the registry's champion (None when it is the champion), for /ready.
    note: str | None = None

    @property
    def fallback(self) -> bool:
        """True when a rules baseline answers instead of a trained main model."""
        return self.source.startswith("baseline")

    @property
    def prices_on_loop(self) -> bool:
        """True when pricing one listing takes well under a millisecond, short enough for the event loop; a model
        that runs the sentence encoder takes milliseconds and is priced in a thread instead."""
        return not getattr(self.suggester.model, "encodes_text", False)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def assemble(
    suggester: PriceSuggester, name: str, version: str | None, run_id: str | None, source: Source
) -> ServedModel:
    """Check a loaded model and wrap it with what serving shows beside its prices.

    Args:
        suggester: The loaded model.
        name: Its registered name.
        version: Its registered version.
        run_id: The run that logged it.
        source: Where it was loaded from.

    Returns:
        The served model, with the explainer built from the model and the category and brand lists and the
        comparables index taken from the reference the model carries (none for a model logged before it
        carried one).

    Raises:
        PricewiseError: The model fails its smoke listing.
    """
    explainer = Explainer.for_model(suggester.model)
    _smoke_test(suggester)
    reference = suggester.reference
    if reference is None:
        logger.warning(
            "%s v%s carries no serving reference (logged before the reference travelled with the model): "
            "no comparables and no category list until a newer version is served",
            name,
            version or "-",
        )
        return ServedModel(suggester, name, version, run_id, source, _now(), explainer, None, ())
    return ServedModel(
        suggester,
        name,
        version,
        run_id,
        source,
        _now(),
        explainer,
        reference.comparables,
        reference.categories,
        reference.brands,
    )


def _registered_champion(settings: Settings, name: str) -> tuple[str, str | None, str]:
    """The version, run id and registered digest of what the champion alias of `name` points at.

    Raises:
        PricewiseError: The registry is unreachable, has no champion of `name`, or the champion carries no
            digest (it was not registered by pricewise).
    """
    tracking.configure(settings)
    client = MlflowClient()
    version = registry.version_by_alias(client, name, registry.CHAMPION)
    if version is None:
        raise PricewiseError(f"{name} has no {registry.CHAMPION} yet")
    try:
        found = client.get_model_version(name, version)
    except MlflowException as exc:
        raise PricewiseError(f"cannot fetch {name} v{version}: {exc}") from exc
    return version, found.run_id, registry.registered_digest(found)


def load_champion(settings: Settings, config: Config) -> ServedModel:
    """Load the champion of the main model from the registry (and refresh the cache).

    Raises:
        PricewiseError: The registry is unreachable, has no champion, or the champion does not load.
    """
    name = config.train.registered_model
    version, run_id, digest = _registered_champion(settings, name)
    try:
        path = model_cache.download(settings, f"models:/{name}/{version}", name, version, digest)
    except (MlflowException, OSError) as exc:
        raise PricewiseError(f"cannot fetch {name} v{version}: {exc}") from exc
    suggester = registry.load_verified(path, digest, f"{name} v{version}")
    served = assemble(suggester, name, version, run_id, "registry")
    # Only a model that loaded and predicted becomes the "last good model" for registry outages.
    model_cache.remember(settings, path, name, version, run_id, digest)
    return served


def current_champion_version(settings: Settings, config: Config) -> str | None:
    """The version the champion alias points at now (None when there is none).

    Raises:
        PricewiseError: The registry is unreachable.
    """
    tracking.configure(settings)
    return registry.version_by_alias(MlflowClient(), config.train.registered_model, registry.CHAMPION)


def load_cached(settings: Settings) -> ServedModel:
    """Load the last good champion from the on-disk cache.

    Raises:
        PricewiseError: Nothing is cached, the pointer leads outside the cache or records no digest, the files
            do not match the digest, or the cached model does not load or predict.
    """
    cached = model_cache.read_cached(settings)
    if cached is None:
        raise PricewiseError(f"no cached model in {model_cache.cache_dir(settings)}")
    label = f"cached {cached.name} v{cached.version or '-'}"
    if cached.digest is None:
        raise registry.ModelRefusedError(
            f"refused the {label}: its pointer records no artifact digest to check it against"
        )
    suggester = registry.load_verified(cached.path, cached.digest, label)
    return assemble(suggester, cached.name, cached.version, cached.run_id, "cache")


def load_baseline(settings: Settings, config: Config) -> ServedModel:
    """Load the champion of the registered rules baseline (train registers it and points champion at it).

    Raises:
        PricewiseError: The registry is unreachable, has no baseline champion, or it does not load.
    """
    name = config.train.baseline_registered_model
    version, run_id, _ = _registered_champion(settings, name)
    suggester = registry.load_suggester(f"models:/{name}/{version}")
    return assemble(suggester, name, version, run_id, "baseline-registry")


def load_best(settings: Settings, config: Config) -> ServedModel:
    """The best model available now: champion, else cached champion, else the registered rules baseline.

    Raises:
        PricewiseError: Nothing at all can be served; the message says why each source failed.
    """
    reasons = []
    try:
        return load_champion(settings, config)
    except Exception as exc:  # noqa: BLE001 - any failure of the registry path falls to the next source
        logger.warning("champion unavailable (%s); trying the cached model", exc)
        reasons.append(f"champion: {exc}")
        why = tracking.outage(exc) or "the registry's champion could not be loaded"
    try:
        served = load_cached(settings)
    except Exception as exc:  # noqa: BLE001 - a broken cache falls through to the baseline
        logger.warning("cached model unavailable (%s); trying the registered rules baseline", exc)
        reasons.append(f"cache: {exc}")
    else:
        logger.warning("serving the cached %s v%s", served.name, served.version)
        return replace(served, note=f"serving the cached {served.name} v{served.version or '-'}: {why}")
    try:
        served = load_baseline(settings, config)
    except Exception as exc:
        reasons.append(f"baseline: {exc}")
        raise PricewiseError("no model can be served (" + "; ".join(reasons) + ")") from exc
    logger.warning(
        "serving the rules baseline %s v%s: no trained main model available", served.name, served.version
    )
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
            settings: Where the registry and the model cache are.
            config: The registered model names (main model and rules baseline).
        """
        self.settings = settings
        self.config = config
        self.served: ServedModel | None = None
        self.error: str | None = None
        # Why the registry's champion is not the served model, while a refused champion waits (for /ready).
        self.refused: str | None = None
        self._lock = threading.Lock()

    def load_initial(self) -> None:
        """Load the best model available; on total failure stay empty (not ready) with the reason kept."""
        with self._lock:
            try:
                self.served = load_best(self.settings, self.config)
                self.error = None
                self.refused = self.served.note
            except Exception as exc:
                self.error = redact(str(exc))
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
                return ReloadOutcome(
                    False, False, f"registry unreachable, keeping the current model: {redact(str(exc))}"
                )
            if current is None:  # nothing serves yet: any source is better than none
                return self._load_any()
            if version is None:
                return ReloadOutcome(False, False, "no champion in the registry; keeping the current model")
            same = (
                current is not None and current.source in ("registry", "cache") and current.version == version
            )
            if same and not force:
                self.refused = None
                return ReloadOutcome(False, False, f"champion v{version} already serving")
            try:
                fresh = load_champion(self.settings, self.config)
            except Exception as exc:
                logger.exception("new champion v%s failed to load; the current model keeps serving", version)
                # /ready is public: it says what happened, the admin reply and the log say the details.
                what = (
                    "refused (its files are not the ones pricewise registered)"
                    if isinstance(exc, registry.ModelRefusedError)
                    else "failed to load"
                )
                self.refused = (
                    f"champion v{version} {what}; still serving {current.name} v{current.version or '-'}"
                )
                return ReloadOutcome(False, True, f"champion v{version} failed to load: {redact(str(exc))}")
            self.served = fresh
            self.error = None
            self.refused = None
            logger.info("now serving %s v%s (%s)", fresh.name, fresh.version, fresh.source)
            return ReloadOutcome(True, False, f"now serving {fresh.name} v{fresh.version}")

    def _load_any(self) -> ReloadOutcome:
        try:
            self.served = load_best(self.settings, self.config)
        except Exception as exc:  # noqa: BLE001 - reported in the outcome and on /ready
            self.error = redact(str(exc))
            return ReloadOutcome(False, True, f"still no model: {self.error}")
        self.error = None
        self.refused = self.served.note
        return ReloadOutcome(True, False, f"now serving {self.served.name} ({self.served.source})")
