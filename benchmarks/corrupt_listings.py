"""Clean listings in; a copy with about 1% of each text column's cells corrupted, and the list of what was done, out.

Four kinds of corruption, each drawn with equal chance for a chosen cell:

- ``garbage``: the value is replaced by type-correct junk without a word in it: digits ("1", "11", "250"),
  punctuation ("/", "-", "..."), or both ("1/2", "3.5", "#1", "$20").
- ``blank``: the value is emptied.
- ``swap``: the value trades places with another text column of the same row (both cells count as corrupted).
- ``truncation``: the value is cut at a random character (at least one kept, at least one dropped).

Only the text columns (name, brand_name, category_name, item_description) are corrupted: ids, condition,
shipping and price already have rules for their domains, and a wrong but valid code cannot be told from a real one.
A change that leaves the cell as it was (a blank brand blanked, two equal values swapped, a swap undone by a later
one) is not recorded, and a cell changed twice is recorded once, by its last kind.

Run as a script to write a corrupted copy of a sample file:

    python benchmarks/corrupt_listings.py IN.tsv.gz OUT.tsv --seed 0
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TEXT_COLUMNS = ("name", "brand_name", "category_name", "item_description")
OPTIONAL_COLUMNS = ("brand_name", "category_name", "item_description")
KINDS = ("garbage", "blank", "swap", "truncation")
GARBAGE = ("1", "11", "0", "250", "2017", "/", "-", ".", "...", "?", "1/2", "3.5", "#1", "$20", "//", "0.0")


@dataclass(frozen=True)
class Corruption:
    """One corrupted cell: the row's position in the frame, its id, the column, the kind, and the values."""

    row: int
    row_id: str
    column: str
    kind: str
    before: str
    after: str

    @property
    def legitimate_looking(self) -> bool:
        """A blanked optional field: an empty brand, category or description is real data, not an error."""
        return self.kind == "blank" and self.column in OPTIONAL_COLUMNS


def read_sample(path: Path) -> pd.DataFrame:
    """A Kaggle-format sample file as text, missing values as empty strings."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def corrupt(frame: pd.DataFrame, rate: float = 0.01, seed: int = 0) -> tuple[pd.DataFrame, list[Corruption]]:
    """Corrupt about `rate` of each text column's cells.

    Args:
        frame: Listings with the text columns as strings (missing as "").
        rate: Share of each column's cells chosen for corruption.
        seed: Seed of the random choices.

    Returns:
        The corrupted copy and one record per changed cell (a swap changes two).
    """
    rng = np.random.default_rng(seed)
    out = frame.copy()
    done: list[Corruption] = []
    id_column = "train_id" if "train_id" in out.columns else "test_id"
    n_cells = max(1, round(rate * len(out)))
    for column in TEXT_COLUMNS:
        for row in rng.choice(len(out), size=n_cells, replace=False):
            kind = str(rng.choice(KINDS))
            done.extend(_corrupt_cell(out, int(row), column, kind, rng, id_column))
    return out, _net_changes(frame, out, done)


def _net_changes(frame: pd.DataFrame, out: pd.DataFrame, done: list[Corruption]) -> list[Corruption]:
    """One record per cell that ends up changed: its last corruption, from the clean value to the final one.

    A cell hit twice (a swap undone by a second swap of the same pair, garbage later swapped away) is one cell;
    a cell the second change restored is not corrupted at all.
    """
    last = {(c.row, c.column): c for c in done}
    changes = []
    for (row, column), c in last.items():
        position = out.columns.get_loc(column)
        before, after = str(frame.iat[row, position]), str(out.iat[row, position])
        if before != after:
            changes.append(Corruption(row, c.row_id, column, c.kind, before, after))
    return changes


def _corrupt_cell(
    out: pd.DataFrame, row: int, column: str, kind: str, rng: np.random.Generator, id_column: str
) -> list[Corruption]:
    position = out.columns.get_loc(column)
    before = str(out.iat[row, position])
    row_id = str(out.iat[row, out.columns.get_loc(id_column)])
    if kind == "swap":
        partner = str(rng.choice([c for c in TEXT_COLUMNS if c != column]))
        other = out.columns.get_loc(partner)
        theirs = str(out.iat[row, other])
        if theirs == before:
            return []
        out.iat[row, position], out.iat[row, other] = theirs, before
        return [
            Corruption(row, row_id, column, kind, before, theirs),
            Corruption(row, row_id, partner, kind, theirs, before),
        ]
    if kind == "garbage":
        after = str(rng.choice(GARBAGE))
    elif kind == "blank":
        after = ""
    else:
        if len(before) < 2:
            return []
        after = before[: int(rng.integers(1, len(before)))]
    if after == before:
        return []
    out.iat[row, position] = after
    return [Corruption(row, row_id, column, kind, before, after)]


def main() -> None:
    """Write a corrupted copy of a sample file and print how many cells of each kind were changed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corrupted, done = corrupt(read_sample(args.source), args.rate, args.seed)
    corrupted.to_csv(args.target, sep="\t", index=False)
    counts = pd.Series([c.kind for c in done]).value_counts()
    print(
        f"wrote {args.target}: {len(done)} cells corrupted; "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


if __name__ == "__main__":
    main()
