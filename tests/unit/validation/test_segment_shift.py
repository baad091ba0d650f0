"""Shift versus corruption: generated batches in a real DuckDB warehouse, each compared with a reference batch of
the same market; a consistent market shift of one top-level category is flagged with its figures, corruption that
moves a segment's median (cents, part of the rows, a wider spread, one half of the batch) fails the batch."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import duckdb
import numpy as np
import pytest

from pricewise.config import SegmentShift, ValidateConfig
from pricewise.settings import Settings
from pricewise.store import warehouse
from pricewise.validation import batch_checks, row_rules
from pricewise.validation.batch_checks import BatchCheck, ReferenceProfile, SegmentVerdict
from tests.support.workspaces import PRICED_HEADER, listing_row

# top-level category -> full category, rows per batch, median price, sd of log price
SEGMENTS = {
    "Women": ("Women/Tops & Blouses/T-Shirts", 1000, 8.0, 0.45),
    "Electronics": ("Electronics/Video Games & Consoles/Games", 400, 20.0, 0.5),
    "Sports & Outdoors": ("Sports & Outdoors/Exercise/Yoga & Pilates", 30, 15.0, 0.5),  # below min_rows
}
REFERENCE_IDS, BATCH_IDS = 0, 10_000
# price, standard normal draw and batch half (of the listing id, as segment_stats splits them) -> new price
Change = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
Compare = Callable[..., tuple[list[SegmentVerdict], dict[str, BatchCheck]]]


def halves(ids: np.ndarray) -> np.ndarray:
    """The half of the batch each priced listing id falls in (hash of its warehouse listing id, mod 2)."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT hash('train-' || CAST(i AS BIGINT)) % 2 FROM unnest(?::BIGINT[]) AS t(i)", [ids.tolist()]
        ).fetchall()
    finally:
        con.close()
    return np.array([int(r[0]) for r in rows])


def market(seed: int, first_id: int, changes: dict[str, Change]) -> list[list[object]]:
    """Listings of every segment with log-normal prices (seeded), each segment's prices changed as given."""
    assert set(changes) <= set(SEGMENTS), changes
    rng = np.random.default_rng(seed)
    rows: list[list[object]] = []
    next_id = first_id
    for top, (category, n, median, sd) in SEGMENTS.items():
        ids = np.arange(next_id, next_id + n)
        next_id += n
        z = rng.standard_normal(n)
        prices = median * np.exp(sd * z)
        if top in changes:
            prices = changes[top](prices, z, halves(ids))
        rows.extend(
            listing_row(int(i), category_name=category, price=round(float(p), 2))
            for i, p in zip(ids, prices, strict=True)
        )
    return rows


def dearer(factor: float) -> Change:
    return lambda prices, z, half: prices * factor


@pytest.fixture
def compare(
    ingest_rows: Callable[..., str], judge: Callable[..., row_rules.RowVerdict], settings: Settings
) -> Compare:
    """Ingest a reference batch and a changed batch, and run the batch checks of the changed one against it."""

    def compare_(changes: dict[str, Change]) -> tuple[list[SegmentVerdict], dict[str, BatchCheck]]:
        ref_id = ingest_rows(market(1, REFERENCE_IDS, {}))
        judge(ref_id)
        batch_id = ingest_rows(market(2, BATCH_IDS, changes))
        verdict = judge(batch_id)
        config = ValidateConfig()
        with warehouse.connect(settings, read_only=True) as con:
            ref = ReferenceProfile(ref_id, batch_checks.profile(con, ref_id))
            own = batch_checks.profile(con, batch_id)
            verdicts = batch_checks.judge_segments(
                batch_checks.segment_stats(con, batch_id), ref.profile.segments, config.batch.segment_shift
            )
            checks = batch_checks.check(con, batch_id, verdict, own, ref, config)
        return verdicts, {c.name: c for c in checks}

    return compare_


def figure(detail: str, name: str) -> float:
    found = re.search(rf"{name} x(\d+\.\d+)", detail)
    assert found is not None, detail
    return float(found.group(1))


def test_segment_stats_are_the_robust_log_price_figures_of_each_top_level_category(
    ingest_rows: Callable[..., str], judge: Callable[..., row_rules.RowVerdict], settings: Settings
) -> None:
    rows = market(3, BATCH_IDS, {})
    batch_id = ingest_rows(rows)
    judge(batch_id)
    with warehouse.connect(settings, read_only=True) as con:
        stats = batch_checks.segment_stats(con, batch_id)

    assert set(stats) == set(SEGMENTS)
    at = {c: PRICED_HEADER.index(c) for c in ("train_id", "category_name", "price")}
    for top, (category, n, _, _) in SEGMENTS.items():
        mine = [r for r in rows if r[at["category_name"]] == category]
        lp = np.log1p([float(r[at["price"]]) for r in mine])  # type: ignore[arg-type]
        ids = np.array([int(r[at["train_id"]]) for r in mine])  # type: ignore[call-overload]
        half = halves(ids)
        got = stats[top]
        assert got["n"] == n
        assert got["mean"] == pytest.approx(lp.mean())
        assert got["median"] == pytest.approx(np.median(lp))
        assert got["q25"] == pytest.approx(np.quantile(lp, 0.25))
        assert got["q75"] == pytest.approx(np.quantile(lp, 0.75))
        assert got["mad"] == pytest.approx(np.median(np.abs(lp - np.median(lp))))
        assert got["half0_n"] + got["half1_n"] == n
        assert 0 < got["half0_n"] < n
        for h in (0, 1):
            assert got[f"half{h}_n"] == (half == h).sum()
            assert got[f"half{h}_median"] == pytest.approx(np.median(lp[half == h]))


def test_a_consistent_40_percent_shift_of_one_category_is_a_market_shift_with_its_figures(
    compare: Compare,
) -> None:
    verdicts, checks = compare({"Women": dearer(1.4)})

    assert [v.segment for v in verdicts] == ["Women"]
    women = verdicts[0]
    assert women.market_shift, women.problems
    assert women.problems == ()
    assert women.rows == SEGMENTS["Women"][1]
    assert women.z >= SegmentShift().z
    # log1p(1.4 p) - log1p(p) is a little under log(1.4) for prices around 8
    assert math.log(1.25) <= women.shift <= math.log(1.4)
    assert 1.25 <= figure(women.detail, "Women: prices") <= 1.4
    assert re.search(r"halves x1\.\d\d/x1\.\d\d", women.detail), women.detail
    shift = checks["segment_shift"]
    assert (shift.status, shift.value) == ("warn", 1)
    assert shift.detail.startswith("market shift (drift): Women: prices x1.")
    # The rest of the batch did not move: the mean-log-price check, judged outside Women, passes.
    mean = checks["mean_log_price_z"]
    assert mean.status == "pass", mean.detail
    assert "outside the market shift in Women" in mean.detail


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (dearer(100.0), r"implausible size x\d+\.\d\d \(at most x2\.0\)"),
        (
            lambda p, z, h: np.where(z > -0.5, p * 1.8, p),  # the dearer two thirds of the rows only
            r"only part of the rows moved \(quartiles x1\.0\d, x1\.\d\d\)",
        ),
        (lambda p, z, h: p * 1.4 * np.exp(0.45 * 0.8 * z), r"spread changed x1\.[6-9]\d"),
        (
            lambda p, z, h: np.where(h == 0, p * 1.5, p),
            r"not in both halves of the batch \(x(0\.9|1\.0)\d in one\)",
        ),
    ],
    ids=["cents", "part-of-the-rows", "wider-spread", "one-half"],
)
def test_a_shift_that_does_not_look_like_a_market_fails_the_batch_with_its_reason(
    compare: Compare, change: Change, problem: str
) -> None:
    verdicts, checks = compare({"Women": change})

    assert [v.segment for v in verdicts] == ["Women"]
    women = verdicts[0]
    assert not women.market_shift
    assert any(re.fullmatch(problem, p) for p in women.problems), women.problems
    shift = checks["segment_shift"]
    assert (shift.status, shift.value) == ("fail", 1)
    assert shift.detail.startswith("not a market shift: Women: prices x")
    assert re.search(problem, shift.detail), shift.detail


def test_a_shift_confined_to_a_category_below_min_rows_is_not_judged(compare: Compare) -> None:
    assert SEGMENTS["Sports & Outdoors"][1] < SegmentShift().min_rows
    verdicts, checks = compare({"Sports & Outdoors": dearer(1.4)})

    assert verdicts == []
    shift = checks["segment_shift"]
    assert (shift.status, shift.value) == ("pass", 0)
    assert shift.detail == "no top-level category's price level moved (3 compared)"
    assert checks["mean_log_price_z"].status == "pass", checks["mean_log_price_z"].detail


def test_the_same_shift_in_a_category_with_enough_rows_is_judged(compare: Compare) -> None:
    """The control of the test above: Electronics (400 rows) shifted the same way is flagged."""
    verdicts, checks = compare({"Electronics": dearer(1.4)})

    assert [(v.segment, v.market_shift) for v in verdicts] == [("Electronics", True)]
    assert checks["segment_shift"].status == "warn"


def test_no_shift_passes(compare: Compare) -> None:
    verdicts, checks = compare({})

    assert verdicts == []
    assert checks["segment_shift"].status == "pass"
    assert checks["mean_log_price_z"].status == "pass", checks["mean_log_price_z"].detail


def stats(
    median: float, n: float = 500, mad: float = 0.3, half: tuple[float, float] | None = None
) -> dict[str, float]:
    """Segment statistics of a symmetric log-price distribution around `median` (halves at `half`)."""
    quartile = mad  # for a symmetric distribution the quartiles are one MAD from the median
    h0, h1 = half or (median, median)
    return {
        "n": n, "mean": median, "median": median, "q25": median - quartile, "q75": median + quartile, "mad": mad,
        "half0_n": n / 2, "half0_median": h0, "half0_mad": mad,
        "half1_n": n / 2, "half1_median": h1, "half1_mad": mad,
    }  # fmt: skip


def test_judge_segments_skips_segments_the_reference_lacks_or_that_are_too_small() -> None:
    cfg = SegmentShift()
    few = cfg.min_rows - 1
    up = 2.0 + math.log(1.4)
    ref = {"A": stats(2.0, mad=0.1), "B": stats(2.0, n=few, mad=0.1), "C": stats(2.0, mad=0.1)}
    own = {
        "A": stats(up, mad=0.1),
        "B": stats(up, mad=0.1),  # the reference has too few rows
        "C": stats(up, n=few, mad=0.1),  # the batch has too few rows
        "D": stats(up, mad=0.1),  # not in the reference
    }

    verdicts = batch_checks.judge_segments(own, ref, cfg)

    assert [(v.segment, v.market_shift) for v in verdicts] == [("A", True)]
    assert verdicts[0].shift == pytest.approx(math.log(1.4))
    assert figure(verdicts[0].detail, "A: prices") == 1.4
    assert "halves x1.40/x1.40" in verdicts[0].detail
    # Only their size kept B and C out: with a lower min_rows they are judged (and are market shifts).
    fewer = cfg.model_copy(update={"min_rows": few})
    judged = batch_checks.judge_segments(own, ref, fewer)
    assert [(v.segment, v.market_shift) for v in judged] == [("A", True), ("B", True), ("C", True)]


def test_a_cheaper_market_is_a_market_shift_too_and_its_halves_must_agree_in_sign() -> None:
    cfg = SegmentShift()
    down = math.log(0.7)
    verdicts = batch_checks.judge_segments({"A": stats(2.0 + down)}, {"A": stats(2.0)}, cfg)
    assert [(v.market_shift, round(v.shift, 6)) for v in verdicts] == [(True, round(down, 6))]

    split = stats(2.0 + down, half=(2.0 + 2 * down, 2.0 + 0.2))  # one half much cheaper, the other dearer
    (verdict,) = batch_checks.judge_segments({"A": split}, {"A": stats(2.0)}, cfg)
    assert not verdict.market_shift
    assert verdict.problems == ("not in both halves of the batch (x1.22 in one)",)


def test_segment_check_fails_on_any_corrupt_segment_warns_on_market_shifts_and_passes_on_none() -> None:
    market_shift = SegmentVerdict("A", 500, 0.33, 9.0, True, (), "A: prices x1.40")
    corrupt = SegmentVerdict(
        "B", 500, 4.6, 90.0, False, ("implausible size x100.00 (at most x2.0)",), "B: x100"
    )

    failed = batch_checks._segment_check([market_shift, corrupt], 3)
    assert (failed.status, failed.value, failed.warn, failed.fail) == ("fail", 1, None, 1)
    assert failed.detail == "not a market shift: B: x100: implausible size x100.00 (at most x2.0)"

    warned = batch_checks._segment_check([market_shift], 3)
    assert (warned.status, warned.value, warned.warn, warned.fail) == ("warn", 1, 1, None)
    assert warned.detail == "market shift (drift): A: prices x1.40"

    passed = batch_checks._segment_check([], 3)
    assert (passed.status, passed.value) == ("pass", 0)
    assert passed.detail == "no top-level category's price level moved (3 compared)"
