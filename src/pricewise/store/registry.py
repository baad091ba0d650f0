"""A registered model's name and alias in; the version the alias points at, or the loaded PriceSuggester, out.

The aliases are the one answer to "who is champion": ``champion`` is what serving and batch scoring use,
``challenger`` is what the promotion gate judges next.
"""

from __future__ import annotations

import pickle
import sys

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pricewise.errors import PricewiseError
from pricewise.models.suggester import PriceSuggester
from pricewise.store.legacy_modules import old_module_names

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
    # MLflow puts the model's code directory first on sys.path. This process already imports pricewise from its
    # installation, and a child it spawns inherits sys.path: left there, the model's copy (models/ only) would
    # shadow the package in the child. It would also grow sys.path on every reload.
    search_path = list(sys.path)
    try:
        with old_module_names():
            loaded = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        message = exc.message if isinstance(exc, MlflowException) else str(exc)
        raise PricewiseError(f"cannot load model {uri}: {message}") from exc
    except (ImportError, AttributeError, pickle.UnpicklingError, EOFError) as exc:
        # A pickle naming code this version does not have, or a truncated file.
        raise PricewiseError(f"cannot load model {uri}: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path[:] = search_path
    model = loaded.unwrap_python_model()
    if not isinstance(model, PriceSuggester):
        raise PricewiseError(f"{uri} is not a pricewise model")
    return model
