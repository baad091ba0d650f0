"""The shared sample in; the row rules' detection rate on corrupted copies and false-reject rate on the clean files out.

Each figure comes from real `pricewise ingest` + `pricewise validate` runs on throwaway warehouses:

- clean: the train file, then the test file, validated as they are; every rejected row is a false reject.
- corrupted train: a corrupted copy of the train file validated in an empty warehouse (no taxonomy from earlier
  batches: only values recurring in the batch itself are known).
- corrupted test: the clean train file accepted first (its categories and brands are the known taxonomy), then a
  corrupted copy of the test file.

A corrupted cell is caught when its row is quarantined. The detection rate is taken over every corrupted cell
but the blanked brands, categories and descriptions: an empty optional field is real data (42% of the sample's
brands are empty), so those cells are undetectable by construction; they are listed on their own line. Truncated
names and descriptions are counted, though a cut at a word's end ("Navy Blue Shorts" -> "Navy") reads as real
text; the rate without them is printed too.

    python -m benchmarks.bench_row_rules [--rows N] [--rate 0.01] [--seed 0] [--misses]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmarks.corrupt_listings import KINDS, TEXT_COLUMNS, Corruption, corrupt, read_sample
from pricewise import ingest, validate
from pricewise.config import Config
from pricewise.settings import Settings
from pricewise.store import warehouse

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mercari"
TRAIN = SAMPLE / "mercari_train_8k.tsv.gz"
TEST = SAMPLE / "mercari_test_head2k_unpriced.tsv.gz"
GOAL_DETECTION = 0.90
GOAL_FALSE_REJECT = 0.005


@dataclass
class Figures:
    """Detection of corrupted cells and rejects of clean rows."""

    corruptions: list[tuple[Corruption, bool, list[str]]] = field(
        default_factory=list
    )  # cell, caught, reasons
    clean_rows: int = 0
    clean_rejected: int = 0
    clean_reasons: Counter[str] = field(default_factory=Counter)
    clean_examples: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def counted(self) -> list[tuple[Corruption, bool, list[str]]]:
        """The corrupted cells the rate is taken over (blanked optional fields left out)."""
        return [c for c in self.corruptions if not c[0].legitimate_looking]

    @property
    def detection_rate(self) -> float:
        """Share of counted corrupted cells whose row was quarantined."""
        counted = self.counted
        return sum(caught for _, caught, _ in counted) / len(counted) if counted else 0.0

    @property
    def detection_rate_without_cut_text(self) -> float:
        """As `detection_rate`, leaving out truncated names and descriptions too.

        A cut name or description reads as real text: the clean sample itself holds names cut at the marketplace's
        40-character limit ("CHANEL Well Loved Brush Bundle! Authenti"), so no row rule can tell them apart.
        """
        counted = [c for c in self.counted if not _cut_text(c[0])]
        return sum(caught for _, caught, _ in counted) / len(counted) if counted else 0.0

    @property
    def false_reject_rate(self) -> float:
        """Share of clean rows quarantined."""
        return self.clean_rejected / self.clean_rows if self.clean_rows else 0.0


def _cut_text(cell: Corruption) -> bool:
    return cell.kind == "truncation" and cell.column in ("name", "item_description")


def _workspace(root: Path) -> tuple[Config, Settings]:
    root.mkdir(parents=True)
    return Config(), Settings(data_dir=root, config_path=root / "absent.yaml")


def _load(config: Config, settings: Settings, path: Path) -> dict[str, list[str]]:
    """Ingest and validate a file; the reasons of its rejected rows by raw id."""
    batch_id = ingest.run(config, settings, [path]).batches[0].batch_id
    validate.run(config, settings, batch_id)
    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute(
            "SELECT coalesce(source_id, '?line ' || source_line), reasons FROM rejects WHERE batch_id = ?",
            [batch_id],
        ).fetchall()
    return {str(i): list(r) for i, r in rows}


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, sep="\t", index=False)
    return path


def measure(work: Path, rows: int | None = None, rate: float = 0.01, seed: int = 0) -> Figures:
    """Run the three scenarios in `work` (an empty directory) and collect the figures.

    Args:
        work: Scratch directory for the warehouses and files.
        rows: Use the first `rows` rows of each sample file (None: all).
        rate: Share of each text column's cells corrupted.
        seed: Seed of the corruption.
    """
    train = read_sample(TRAIN).head(rows) if rows else read_sample(TRAIN)
    test = read_sample(TEST).head(rows) if rows else read_sample(TEST)
    figures = Figures()
    clean_train, clean_test = _write(train, work / "train.tsv"), _write(test, work / "test.tsv")

    config, settings = _workspace(work / "clean")
    for path, frame in ((clean_train, train), (clean_test, test)):
        rejects = _load(config, settings, path)
        figures.clean_rows += len(frame)
        figures.clean_rejected += len(rejects)
        for row_id, reasons in rejects.items():
            figures.clean_reasons.update(reasons)
            figures.clean_examples.append((row_id, reasons))

    corrupted_train, done_train = corrupt(train, rate, seed)
    config, settings = _workspace(work / "corrupted-train")
    rejects = _load(config, settings, _write(corrupted_train, work / "corrupted-train.tsv"))
    figures.corruptions += [(c, c.row_id in rejects, rejects.get(c.row_id, [])) for c in done_train]

    corrupted_test, done_test = corrupt(test, rate, seed + 1)
    config, settings = _workspace(work / "corrupted-test")
    _load(config, settings, clean_train)
    rejects = _load(config, settings, _write(corrupted_test, work / "corrupted-test.tsv"))
    figures.corruptions += [(c, c.row_id in rejects, rejects.get(c.row_id, [])) for c in done_test]
    return figures


def table(figures: Figures) -> str:
    """The detection table: caught / corrupted per kind and column, then totals."""
    lines = [f"{'kind':<12}" + "".join(f"{c:>18}" for c in (*TEXT_COLUMNS, "all"))]
    for kind in KINDS:
        cells = []
        for column in (*TEXT_COLUMNS, "all"):
            chosen = [x for x in figures.corruptions if x[0].kind == kind and column in ("all", x[0].column)]
            caught = sum(x[1] for x in chosen)
            cells.append(f"{caught}/{len(chosen)} ({caught / len(chosen):.0%})" if chosen else "-")
        lines.append(f"{kind:<12}" + "".join(f"{c:>18}" for c in cells))
    legit = [x for x in figures.corruptions if x[0].legitimate_looking]
    counted = figures.counted
    lines.append(
        f"blanked optional fields (undetectable by construction: real data has them; not counted): {len(legit)} "
        f"cells, {sum(x[1] for x in legit)} quarantined (by another corruption of the same row)"
    )
    lines.append(
        f"detection: {sum(x[1] for x in counted)}/{len(counted)} = {figures.detection_rate:.1%} of the other "
        f"corrupted cells caught (goal >= {GOAL_DETECTION:.0%})"
    )
    lines.append(
        f"detection without truncated names and descriptions: {figures.detection_rate_without_cut_text:.1%}"
    )
    lines.append(
        f"false rejects: {figures.clean_rejected}/{figures.clean_rows} = {figures.false_reject_rate:.2%} of "
        f"clean rows (goal <= {GOAL_FALSE_REJECT:.1%}); reasons {dict(figures.clean_reasons)}"
    )
    return "\n".join(lines)


def main() -> int:
    """Print the detection table and the false-reject rate; exit 1 when a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="first N rows of each file (default: all)")
    parser.add_argument("--rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--misses", action="store_true", help="also list the corrupted cells that passed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pricewise-row-rules-") as work:
        figures = measure(Path(work), args.rows, args.rate, args.seed)
    print(table(figures))
    if args.misses:
        for c, caught, _ in figures.counted:
            if not caught:
                print(f"missed {c.kind:<10} {c.column:<16} {c.before[:50]!r} -> {c.after[:50]!r}")
        for row_id, reasons in figures.clean_examples:
            print(f"clean reject {row_id}: {reasons}")
    met = figures.detection_rate >= GOAL_DETECTION and figures.false_reject_rate <= GOAL_FALSE_REJECT
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
