"""Flat hyperparameter mappings from config or tuning in ("mlp.hidden": 256), the main model's typed params out."""

from __future__ import annotations

import dataclasses
from typing import Any

from pricewise.models.ensemble import SparseTextEnsemble, SparseTextEnsembleParams


def _build(cls: type[Any], values: dict[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if head not in fields:
            known = ", ".join(sorted(prefix + name for name in fields))
            raise ValueError(f"unknown hyperparameter {prefix}{head!s} (known: {known})")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[head] = tuple(value) if isinstance(value, list) else value
    for head, sub in nested.items():
        sub_cls = type(getattr(cls(), head))
        if not dataclasses.is_dataclass(sub_cls):
            raise ValueError(f"{prefix}{head} takes a value, not {', '.join(sub)}")
        flat[head] = _build(sub_cls, sub, f"{prefix}{head}.")
    return cls(**flat)


def main_model_params(values: dict[str, Any], seed: int) -> SparseTextEnsembleParams:
    """Typed hyperparameters of the main model.

    Args:
        values: Overrides of the defaults; nested fields use dotted keys such as "mlp.hidden".
        seed: Seeds every component.

    Returns:
        The parameters.

    Raises:
        ValueError: A key names no hyperparameter (the known ones are listed).
    """
    params: SparseTextEnsembleParams = _build(SparseTextEnsembleParams, {**values, "seed": seed}, "")
    return params


def build_model(values: dict[str, Any], seed: int) -> SparseTextEnsemble:
    """An unfitted main model with the given hyperparameters."""
    return SparseTextEnsemble(main_model_params(values, seed))
