"""Error texts and recorded messages in; the same texts without secrets or filesystem paths out."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricewise.serving.disclosure import public

CASES = [
    (
        "cannot open the decision tables at sqlite:////srv/pw/data/decisions.db: unable to open database file",
        "cannot open the decision tables at sqlite:///<path>: unable to open database file",
    ),
    (
        "cannot write monitoring reports to /srv/pw/data/reports/monitoring/r1: Permission denied",
        "cannot write monitoring reports to <path>: Permission denied",
    ),
    ("no cached model in data/serving/model-cache", "no cached model in <path>"),
    ("file missing: '~/pw/x.html'", "file missing: '<path>'"),
    (
        "the decision tables at postgresql://app:***@db/pw are unavailable (see https://sqlalche.me/e/20/e3q8)",
        "the decision tables at postgresql://app:***@db/pw are unavailable (see https://sqlalche.me/e/20/e3q8)",
    ),
    (
        "champion: cannot reach http://user:secret@h:5000 (refused)",
        "champion: cannot reach http://user:***@h:5000 (refused)",
    ),
    ("2 of 5 columns drifted; RMSLE 0.51", "2 of 5 columns drifted; RMSLE 0.51"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_public_texts_show_no_paths_and_no_secrets(text: str, expected: str) -> None:
    assert public(text, [Path("data")]) == expected


def test_none_stays_none() -> None:
    assert public(None) is None
