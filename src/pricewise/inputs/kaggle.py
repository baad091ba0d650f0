"""Kaggle credentials in, the competition's train.tsv.7z in the data directory out."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pricewise.errors import PricewiseError
from pricewise.settings import Settings

logger = logging.getLogger(__name__)

COMPETITION = "mercari-price-suggestion-challenge"
FILES = ("train.tsv.7z",)


def _has_credentials() -> bool:
    kaggle_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    has_env = bool(os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"))
    return has_env or (kaggle_dir / "kaggle.json").is_file()


def run(settings: Settings, files: tuple[str, ...] = FILES) -> list[Path]:
    """Download competition files with the `kaggle` package.

    Args:
        settings: The data directory receives the files under raw/.
        files: Competition file names.

    Returns:
        The downloaded files.

    Raises:
        PricewiseError: The package or credentials are missing, or the download fails.
    """
    if not _has_credentials():
        raise PricewiseError(
            "no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json in ~/.kaggle "
            f"(and accept the rules of https://www.kaggle.com/c/{COMPETITION}); or download train.tsv.7z "
            "by hand and run `pricewise ingest PATH`"
        )
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise PricewiseError("the kaggle package is not installed: pip install 'pricewise[kaggle]'") from exc
    target = settings.data_dir / "raw"
    target.mkdir(parents=True, exist_ok=True)
    api = KaggleApi()
    out: list[Path] = []
    try:
        api.authenticate()
        for name in files:
            logger.info("downloading %s from Kaggle", name)
            api.competition_download_file(COMPETITION, name, path=str(target), quiet=True)
            out.append(target / name)
    except Exception as exc:  # the kaggle client raises HTTP, IO and auth errors of many types
        raise PricewiseError(f"Kaggle download failed: {exc}") from exc
    return out
