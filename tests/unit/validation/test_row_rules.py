"""Each row rule rejects what it should with its reason code and lets a clean row through; nothing is lost."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pricewise.columns import UNPRICED_COLUMNS
from pricewise.config import Config, RowRules, ValidateConfig
from pricewise.errors import PricewiseError
from pricewise.settings import Settings
from pricewise.store import warehouse
from pricewise.validation import row_rules
from tests.support.workspaces import listing_row

CLEAN = [listing_row(i) for i in range(6)]
BAD_ID = 50

# One field set to a value that breaks exactly one rule (default rules).
ONE_RULE_BROKEN = [
    ("id_not_integer", {"train_id": "abc"}),
    ("id_not_integer", {"train_id": "2.5"}),
    ("id_not_integer", {"train_id": "-3"}),
    ("name_empty", {"name": "   "}),
    ("name_too_long", {"name": "n" * 201}),
    ("name_too_long", {"name": "Box included, worn over 40 times, freshly cleaned"}),  # a description
    ("condition_invalid", {"item_condition_id": 0}),
    ("condition_invalid", {"item_condition_id": 6}),
    ("condition_invalid", {"item_condition_id": "good"}),
    ("shipping_invalid", {"shipping": 2}),
    ("shipping_invalid", {"shipping": ""}),
    ("category_too_long", {"category_name": "Women/Tops/" + "c" * 190}),
    ("brand_too_long", {"brand_name": "b" * 101}),
    ("description_too_long", {"item_description": "d" * 5001}),
    ("price_missing", {"price": ""}),
    ("price_not_number", {"price": "ten dollars"}),
    ("price_not_finite", {"price": "inf"}),
    ("price_not_finite", {"price": "nan"}),
    ("price_negative", {"price": -0.01}),
    ("price_above_max", {"price": 5000.01}),
    ("broken_encoding", {"name": "Caf\ufffd mug"}),
    ("broken_encoding", {"item_description": "control \x01 character"}),
    ("broken_encoding", {"brand_name": "SenseCosmeticsâ„¢"}),
    ("broken_encoding", {"category_name": "Women/CafÃ©/Mugs"}),
]


@pytest.mark.parametrize(("reason", "override"), ONE_RULE_BROKEN, ids=[r for r, _ in ONE_RULE_BROKEN])
def test_each_rule_rejects_its_row_and_passes_the_clean_ones(
    reason: str,
    override: dict[str, object],
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
) -> None:
    batch_id = ingest_rows([*CLEAN, listing_row(BAD_ID, **override)])

    verdict = judge(batch_id)

    bad_id = str(override.get("train_id", BAD_ID))
    assert rejected(batch_id) == {bad_id: [reason]}
    assert (verdict.read, verdict.accepted, verdict.rejected) == (len(CLEAN) + 1, len(CLEAN), 1)
    assert verdict.reasons == {reason: 1}


# Type-correct garbage: each value has the right type but not the look of its column. The clean rows make
# "Women/Tops & Blouses/T-Shirts", "Electronics/Video Games & Consoles/Games" and "Nike" known (3 rows each).
SEMANTIC_RULE_BROKEN = [
    ("category_malformed", {"category_name": "1"}),
    ("category_malformed", {"category_name": "/"}),
    ("category_malformed", {"category_name": "Women/Tops & Blouses"}),
    ("category_malformed", {"category_name": "Women/Tops & Blouses/"}),
    ("category_malformed", {"category_name": "Women/11/T-Shirts"}),
    ("category_malformed", {"category_name": "Women/ Tops/T-Shirts"}),
    ("category_malformed", {"category_name": "a/b/c/d/e/f"}),
    ("category_malformed", {"category_name": "Nike running shoes"}),
    ("category_truncated", {"category_name": "Women/Tops & Blouses/T-Sh"}),
    ("name_only_digits_or_punctuation", {"name": "11"}),
    ("name_only_digits_or_punctuation", {"name": "?!"}),
    ("name_is_category_path", {"name": "Electronics/Cameras/Lenses"}),
    ("name_is_placeholder", {"name": "No description yet"}),
    (
        "name_looks_like_description",
        {"name": "one two three four five six seven eight nine ten eleven twelve 13"},
    ),
    ("name_looks_like_description", {"name": "Great shape\nworn twice"}),
    ("name_is_brand", {"name": "nike", "brand_name": "Red running shoes"}),
    ("brand_only_digits_or_punctuation", {"brand_name": "1"}),
    ("brand_only_digits_or_punctuation", {"brand_name": "--"}),
    ("brand_is_category_path", {"brand_name": "Women/Tops & Blouses/T-Shirts"}),
    ("brand_is_category_path", {"brand_name": "Home/Kitchen/Mugs"}),
    ("brand_is_placeholder", {"brand_name": "No description yet"}),
    ("brand_looks_like_text", {"brand_name": "Worn twice and still in great shape overall"}),
    ("brand_truncated", {"brand_name": "Ni"}),
    ("description_only_digits_or_punctuation", {"item_description": "11"}),
    ("description_only_digits_or_punctuation", {"item_description": "1/2 ."}),
    ("description_is_category_path", {"item_description": "Women/Tops & Blouses/T-Shirts"}),
    ("description_is_brand", {"item_description": "Nike", "brand_name": "Blue knit scarf"}),
    # Cut short: "gre" and "ti" are in no other row but begin "great" and "times", in every row's description.
    ("name_truncated", {"name": "Blue knit scarf gre"}),
    ("name_truncated", {"name": "Navel ring Pierc", "item_description": "Piercing jewelry, surgical steel"}),
    ("name_truncated", {"name": "J"}),
    ("description_truncated", {"item_description": "Great condition, worn 2 ti"}),
    ("description_truncated", {"item_description": "No description y"}),
    ("description_truncated", {"item_description": "M"}),
    ("brand_is_description", {"brand_name": "Coach lanyard NWT", "item_description": ""}),
]


def test_each_semantic_rule_quarantines_its_garbage_with_its_reason(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
) -> None:
    # One batch for all cases keeps the test fast; each bad row breaks its rule alone among the clean rows.
    bad = {100 + i: (reason, override) for i, (reason, override) in enumerate(SEMANTIC_RULE_BROKEN)}
    batch_id = ingest_rows([*CLEAN, *(listing_row(i, **override) for i, (_, override) in bad.items())])

    verdict = judge(batch_id)

    reasons = rejected(batch_id)
    assert sorted(reasons) == sorted(str(i) for i in bad)
    missing = {
        i: (reason, reasons[str(i)]) for i, (reason, _) in bad.items() if reason not in reasons[str(i)]
    }
    assert missing == {}
    assert (verdict.accepted, verdict.rejected) == (len(CLEAN), len(bad))


# The same columns holding real values that resemble garbage: all accepted.
SEMANTIC_LOOKALIKES = [
    {"category_name": "Electronics/Computers & Tablets/iPad/Tablet/eBook Readers"},  # five levels
    {"category_name": "Women/Tops & Blouses/Tank, Cami"},  # unknown leaf under known levels
    {"category_name": ""},
    {"name": "iPhone 6/6s/7 tempered glass"},  # slashes, but no known top level
    {"name": "Nike"},  # a bare brand as the name, with the brand itself in its column
    {"name": "2 for 1 ❤"},
    {"brand_name": "A/X Armani Exchange"},
    {"brand_name": "7 For All Mankind"},
    {"brand_name": "Too Faced x Kat Von D"},
    {"brand_name": "Nike Golf"},  # begins with a known brand: a new brand, not a cut one
    {"brand_name": ""},
    {"item_description": "❤"},
    {"item_description": "No description yet"},
    {"item_description": "Size 9/10, fits 8/9. Women/girls"},
    {"item_description": "Nike"},  # the brand repeated, with the brand in its column
    {"item_description": ""},
    {"brand_name": "Nike", "item_description": ""},  # a known brand without a description
    {"name": "Hold for Tim", "item_description": "Reserved for Tim, thanks"},  # rare, but in its description
    {"name": "Hoop earring", "item_description": "Two hoop earrings"},  # singular of a word there
    {"name": "Kate Spade large leather tote bag in gre"},  # cut where the marketplace cuts names (40)
    {"name": "3T"},
]


def test_real_values_that_resemble_garbage_are_accepted(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
) -> None:
    rows = [listing_row(200 + i, **override) for i, override in enumerate(SEMANTIC_LOOKALIKES)]
    batch_id = ingest_rows([*CLEAN, *rows])

    verdict = judge(batch_id)

    assert rejected(batch_id) == {}
    assert (verdict.accepted, verdict.rejected) == (len(CLEAN) + len(rows), 0)


def test_categories_and_brands_accepted_in_an_earlier_batch_are_known_in_a_later_one(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
) -> None:
    first = [
        *CLEAN,
        listing_row(20, category_name="Home/Kitchen & Dining/Coffee & Tea Accessories"),
        listing_row(21, category_name="Home/Kitchen & Dining/Dinnerware"),
    ]
    assert judge(ingest_rows(first)).rejected == 0
    later = [
        listing_row(
            30, category_name="Home/Kitchen & Dining/Coffee"
        ),  # cut: the full path is known from before
        listing_row(31, category_name="Home/Kitchen & Dining/Coffee & Tea Accessories"),
        listing_row(32, category_name="Toys/Kitchen & Dining/Cups"),  # no top level like it before
    ]

    judge(second := ingest_rows(later))

    assert rejected(second) == {"30": ["category_truncated"], "32": ["category_unknown_top_level"]}


def test_semantic_limits_come_from_config(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
) -> None:
    batch_id = ingest_rows(
        [*CLEAN, listing_row(BAD_ID, name="a b c d e", brand_name="w x y", category_name="Women/Scarves")]
    )
    strict = Config(
        validate=ValidateConfig(rows=RowRules(max_name_words=4, max_brand_words=2, category_levels=(2, 3)))
    )

    judge(batch_id, strict)

    assert rejected(batch_id) == {str(BAD_ID): ["name_looks_like_description", "brand_looks_like_text"]}


def test_the_cut_word_rule_counts_words_as_configured(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
) -> None:
    rows = [listing_row(i) for i in range(12)]  # "great" and "times" in 12 rows
    batch_id = ingest_rows([*rows, listing_row(BAD_ID, item_description="Great condition, worn 2 ti")])

    judge(batch_id)
    assert rejected(batch_id) == {str(BAD_ID): ["description_truncated"]}
    judge(batch_id, Config(validate=ValidateConfig(rows=RowRules(common_word_rows=14))))
    assert rejected(batch_id) == {}
    judge(batch_id, Config(validate=ValidateConfig(rows=RowRules(vocabulary_rows=5))))
    assert rejected(batch_id) == {}


def test_a_lone_trailing_space_is_a_cut_but_a_padded_batch_is_not(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
) -> None:
    trimmed = [listing_row(i) for i in range(120)]
    cut = ingest_rows([*trimmed, listing_row(BAD_ID + 200, name="Blue knit ", item_description="Soft and ")])
    padded = ingest_rows([listing_row(1000 + i, name=f"Item number {i} ") for i in range(120)])

    judge(cut)
    verdict = judge(padded)

    assert rejected(cut) == {str(BAD_ID + 200): ["name_truncated", "description_truncated"]}
    assert (verdict.accepted, verdict.rejected) == (120, 0)


def test_category_levels_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="category_levels"):
        RowRules(category_levels=(4, 3))


def test_values_at_the_limits_are_accepted(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
) -> None:
    at_limits = [
        listing_row(10, name="n" * 45, price=5000),
        listing_row(
            11, category_name="Women/Tops/" + "c" * 189, brand_name="b" * 100, item_description="d" * 5000
        ),
        listing_row(
            12, item_condition_id=5, shipping=0, price=" 12.5 ", item_description="tabs\tand\nnewlines"
        ),
        listing_row(13, name="Crème brûlée ™ ®", brand_name="Ürban", item_description="café, naïve, 日本"),
        listing_row(14, brand_name="", category_name="", item_description=""),
    ]
    batch_id = ingest_rows(at_limits)

    verdict = judge(batch_id)

    assert rejected(batch_id) == {}
    assert (verdict.accepted, verdict.rejected, verdict.reasons) == (5, 0, {})


def test_a_row_breaking_several_rules_carries_every_reason(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
) -> None:
    batch_id = ingest_rows([*CLEAN, listing_row(BAD_ID, name="", item_condition_id=9, shipping=3, price=-1)])

    verdict = judge(batch_id)

    assert rejected(batch_id) == {
        str(BAD_ID): ["name_empty", "condition_invalid", "shipping_invalid", "price_negative"]
    }
    assert verdict.rejected == 1
    assert sum(verdict.reasons.values()) == 4


def test_a_missing_id_is_rejected(
    ingest_rows: Callable[..., str], judge: Callable[..., row_rules.RowVerdict], settings: Settings
) -> None:
    batch_id = ingest_rows([*CLEAN, listing_row(0, train_id="")])

    verdict = judge(batch_id)

    with warehouse.connect(settings, read_only=True) as con:
        reasons = con.execute("SELECT reasons FROM rejects WHERE source_id IS NULL").fetchall()
    assert [list(r[0]) for r in reasons] == [["id_missing"]]
    assert verdict.reasons == {"id_missing": 1}


def test_every_copy_of_an_id_repeated_in_a_batch_is_rejected(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    settings: Settings,
) -> None:
    batch_id = ingest_rows([*CLEAN, listing_row(3, name="Another item 3")])

    verdict = judge(batch_id)

    with warehouse.connect(settings, read_only=True) as con:
        copies = con.execute(
            "SELECT name, reasons FROM rejects WHERE source_id = '3' ORDER BY name"
        ).fetchall()
    assert [(name, list(r)) for name, r in copies] == [
        ("Another item 3", ["duplicate_id_in_batch"]),
        ("Item number 3", ["duplicate_id_in_batch"]),
    ]
    assert (verdict.accepted, verdict.rejected) == (len(CLEAN) - 1, 2)


def test_a_priced_id_accepted_in_an_earlier_batch_is_rejected_later(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
) -> None:
    first = ingest_rows(CLEAN)
    judge(first)
    second = ingest_rows([listing_row(i, name=f"Relisted {i}") for i in range(4, 9)])

    verdict = judge(second)

    assert rejected(second) == {"4": ["duplicate_id_across_batches"], "5": ["duplicate_id_across_batches"]}
    assert verdict.accepted == 3
    # Judging the first batch again does not reject it against itself.
    assert judge(first).rejected == 0


def test_unpriced_rows_skip_the_price_and_cross_batch_rules(
    ingest_rows: Callable[..., str],
    judge: Callable[..., row_rules.RowVerdict],
    rejected: Callable[[str], dict[str, list[str]]],
    settings: Settings,
) -> None:
    judge(ingest_rows(CLEAN))
    unpriced = [[row[0], *row[1:5], *row[6:]] for row in CLEAN[:3]]  # the priced rows without their price
    unpriced.append([70, "", 1, "Women/Tops & Blouses/T-Shirts", "", 0, "ok"])
    batch_id = ingest_rows(unpriced, header=UNPRICED_COLUMNS)

    verdict = judge(batch_id)

    assert rejected(batch_id) == {"70": ["name_empty"]}
    assert (verdict.accepted, verdict.unusable_for_training) == (3, 0)
    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute(
            "SELECT listing_id, price, split, usable_for_training FROM listings WHERE batch_id = ? "
            "ORDER BY listing_id",
            [batch_id],
        ).fetchall()
    assert rows == [(f"score-{batch_id}-{i}", None, None, False) for i in range(3)]


def test_accepted_priced_rows_are_typed_with_a_stable_id_and_a_split(
    ingest_rows: Callable[..., str], judge: Callable[..., row_rules.RowVerdict], settings: Settings
) -> None:
    batch_id = ingest_rows(
        [listing_row(1, name="  Padded name  ", brand_name="  ", price="0"), listing_row(2, price="19.5")]
    )

    verdict = judge(batch_id)

    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute(
            "SELECT listing_id, source_id, name, brand_name, price, item_condition_id, shipping, "
            "usable_for_training, split FROM listings ORDER BY listing_id"
        ).fetchall()
    assert [r[:8] for r in rows] == [
        ("train-1", 1, "Padded name", None, 0.0, 2, 1, False),
        ("train-2", 2, "Item number 2", "Nike", 19.5, 3, 0, True),
    ]
    assert all(r[8] in {"train", "valid", "test"} for r in rows)
    assert verdict.unusable_for_training == 1


def test_unparseable_records_count_as_rejects_so_accepted_plus_rejected_is_read(
    ingest_rows: Callable[..., str], judge: Callable[..., row_rules.RowVerdict], settings: Settings
) -> None:
    batch_id = ingest_rows([*CLEAN, [99, "too", "many", "fields", "in", "this", "row", "x", "y"]])

    verdict = judge(batch_id)

    assert verdict.read == len(CLEAN) + 1
    assert verdict.accepted + verdict.rejected == verdict.read
    assert verdict.reasons == {"parse_too_many_columns": 1}
    with warehouse.connect(settings, read_only=True) as con:
        [(line, raw)] = con.execute("SELECT source_line, raw_line FROM rejects").fetchall()
    assert line == len(CLEAN) + 2  # the header is line 1
    assert raw.startswith("99\ttoo\tmany")


def test_judging_again_replaces_the_verdict(
    ingest_rows: Callable[..., str], judge: Callable[..., row_rules.RowVerdict], settings: Settings
) -> None:
    batch_id = ingest_rows([*CLEAN, listing_row(BAD_ID, price=4000)])
    assert judge(batch_id).rejected == 0

    verdict = judge(batch_id, Config(validate=ValidateConfig(rows=RowRules(max_price=1000))))

    assert verdict.reasons == {"price_above_max": 1}
    with warehouse.connect(settings, read_only=True) as con:
        counts = con.execute(
            "SELECT (SELECT count(*) FROM listings), (SELECT count(*) FROM rejects)"
        ).fetchone()
    assert counts == (len(CLEAN), 1)


def test_a_count_that_does_not_add_up_raises_and_the_transaction_keeps_nothing(
    ingest_rows: Callable[..., str], settings: Settings
) -> None:
    batch_id = ingest_rows(CLEAN)

    with warehouse.connect(settings) as con:
        with (
            pytest.raises(PricewiseError, match=r"accepted 6 \+ rejected 0 != read 7"),
            warehouse.transaction(con),
        ):
            row_rules.apply(con, batch_id, "priced", len(CLEAN) + 1, Config())
        assert con.execute("SELECT count(*) FROM listings").fetchone() == (0,)


def test_sample_rejects_come_in_source_order_with_the_raw_line_cut(
    ingest_rows: Callable[..., str], judge: Callable[..., row_rules.RowVerdict], settings: Settings
) -> None:
    long_line = [98, "x" * 400, "1", "2", "3", "4", "5", "6", "7"]
    batch_id = ingest_rows([listing_row(2, price="bad"), listing_row(1, price="bad"), *CLEAN[3:], long_line])
    judge(batch_id)

    with warehouse.connect(settings, read_only=True) as con:
        samples = row_rules.sample_rejects(con, batch_id)
        first_two = row_rules.sample_rejects(con, batch_id, limit=2)

    assert [(s["line"], s["id"]) for s in samples] == [(7, None), (None, "1"), (None, "2")]
    assert len(samples[0]["raw"]) == 300
    assert samples[1] == {
        "line": None,
        "id": "1",
        "reasons": ["price_not_number"],
        "name": "Item number 1",
        "price": "bad",
        "raw": "",
    }
    assert first_two == samples[:2]


def test_the_sql_types_raw_text_and_lists_reasons_for_a_batch_only(
    ingest_rows: Callable[..., str], settings: Settings
) -> None:
    ingest_rows([listing_row(1, price="bad")])
    batch_id = ingest_rows([listing_row(2, item_condition_id=" 3 ", shipping="1.0")])
    sql = row_rules.checked_rows_sql("priced", ValidateConfig())

    with warehouse.connect(settings, read_only=True) as con:
        rows = con.execute(
            f"SELECT source_id, condition_num, shipping_num, price_num, reasons FROM ({sql})",
            {"batch": batch_id, "kind": "priced"},
        ).fetchall()

    assert rows == [("2", 3.0, 1.0, 12.0, [])]  # the other batch's row is not in the result


def test_rows_only_to_be_scored_are_not_refused_for_text_cut_short(
    ingest_rows: Callable[..., str], settings: Settings
) -> None:
    bad = {100 + i: (reason, override) for i, (reason, override) in enumerate(SEMANTIC_RULE_BROKEN)}
    batch_id = ingest_rows([*CLEAN, *(listing_row(i, **override) for i, (_, override) in bad.items())])

    def reasons(scoring: bool) -> dict[str, list[str]]:
        sql = row_rules.checked_rows_sql("priced", ValidateConfig(), scoring=scoring)
        with warehouse.connect(settings, read_only=True) as con:
            rows = con.execute(
                f"SELECT source_id, reasons FROM ({sql}) WHERE len(reasons) > 0",
                {"batch": batch_id, "kind": "priced"},
            ).fetchall()
        return {str(i): list(r) for i, r in rows}

    cut_text = ("name_truncated", "description_truncated")
    kept_out, scored = reasons(scoring=False), reasons(scoring=True)
    assert {i for i, (reason, _) in bad.items() if reason in cut_text} <= {int(i) for i in kept_out}
    # Scoring refuses the same rows for every other reason, and none for text cut short.
    expected = {i: [r for r in found if r not in cut_text] for i, found in kept_out.items()}
    assert scored == {i: found for i, found in expected.items() if found}


def test_rows_to_score_lose_broken_optional_text_with_a_flag_but_a_broken_name_is_refused(
    ingest_rows: Callable[..., str], settings: Settings
) -> None:
    broken = {
        10: {"brand_name": "SenseCosmeticsâ„¢"},
        11: {"item_description": "control \x01 character"},
        12: {"brand_name": "Caf\ufffd", "item_description": "Ã© broken too"},
        13: {"name": "Caf\ufffd mug"},
    }
    batch_id = ingest_rows([*CLEAN, *(listing_row(i, **override) for i, override in broken.items())])

    def checked(scoring: bool) -> dict[str, tuple[object, ...]]:
        sql = row_rules.checked_rows_sql("priced", ValidateConfig(), scoring=scoring)
        flags = "flags" if scoring else "NULL"
        with warehouse.connect(settings, read_only=True) as con:
            rows = con.execute(
                f"SELECT source_id, reasons, {flags}, brand_name, item_description FROM ({sql})",
                {"batch": batch_id, "kind": "priced"},
            ).fetchall()
        return {str(r[0]): tuple(r[1:]) for r in rows}

    kept_out, scored = checked(scoring=False), checked(scoring=True)

    assert {i for i, r in kept_out.items() if "broken_encoding" in r[0]} == {"10", "11", "12", "13"}
    assert scored["10"][:3] == ([], ["brand_blanked_broken_encoding"], None)
    assert scored["11"][0:2] == ([], ["description_blanked_broken_encoding"])
    assert scored["11"][3] is None
    assert scored["12"] == (
        [],
        ["brand_blanked_broken_encoding", "description_blanked_broken_encoding"],
        None,
        None,
    )
    assert "broken_encoding" in scored["13"][0]
    assert scored["13"][1] == []
    clean = {str(i) for i in range(6)}
    assert all(scored[i][:2] == ([], []) and scored[i][2] == kept_out[i][2] for i in clean)
