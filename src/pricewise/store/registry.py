"""A registered model's name and alias in; the version the alias points at, or the loaded PriceSuggester, out.

The aliases are the one answer to "who is champion": ``champion`` is what serving and batch scoring use,
``challenger`` is what the promotion gate judges next.
"""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pricewise.errors import PricewiseError
from pricewise.models.suggester import PriceSuggester

CHAMPION = "champion"
CHALLENGER = "challenger"


def version_by_alias(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the alias (or the model) does not exist.

    Raises:
        PricewiseError: The registry answers with another error.
    """
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise PricewiseError(f"MLflow registry error for {name}@{alias}: {exc.message}") from exc


def load_suggester(uri: str) -> PriceSuggester:
    """Load a registered pricewise model and return its PriceSuggester.

    Raises:
        PricewiseError: The URI does not resolve to a loadable pricewise model.
    """
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        message = exc.message if isinstance(exc, MlflowException) else str(exc)
        raise PricewiseError(f"cannot load model {uri}: {message}") from exc
    model = loaded.unwrap_python_model()
    if not isinstance(model, PriceSuggester):
        raise PricewiseError(f"{uri} is not a pricewise model")
    return model
