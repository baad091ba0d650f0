"""A batch's raw rows in; accepted listings and quarantined rejects with reason codes (all it breaks) out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from pricewise import split
from pricewise.columns import TEXT_COLUMNS
from pricewise.config import Config, RowRules, ValidateConfig
from pricewise.errors import PricewiseError

# Control characters other than tab and newlines, and U+FFFD (what a decoder leaves for bytes it could not read).
BROKEN_TEXT = r"[\x{00}-\x{08}\x{0B}\x{0C}\x{0E}-\x{1F}\x{7F}\x{FFFD}]"
# UTF-8 read as cp1252 ("mojibake"): 'Ã©' for 'é', 'Â®' for '®', 'â„¢' for '™'. A lead character followed by
# what cp1252 shows for a UTF-8 continuation byte (0x80-0xBF).
_CONTINUATION = r"[\x{80}-\x{BF}€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ]"
MOJIBAKE = rf"[ÂÃ]{_CONTINUATION}|â{_CONTINUATION}{_CONTINUATION}"
SAMPLE_REJECTS = 20
# Nothing but ASCII digits, spaces and punctuation ("1", "/", "3.5", "#1"): no word at all. An emoji or another
# symbol is not matched, so a description of a single heart stays.
NO_WORDS = r"^[[:digit:][:space:][:punct:]]+$"
# The placeholder Mercari writes for a listing without a description; in any other column it is misplaced.
DESCRIPTION_PLACEHOLDER = "No description yet"
# Optional text a listing to score may lose: broken there, it is blanked and flagged (the flag's code), not a reason
# to refuse the row. Broken text elsewhere still refuses it.
BLANKED_WHEN_BROKEN: dict[str, str] = {
    "brand_name": "brand_blanked_broken_encoding",
    "item_description": "description_blanked_broken_encoding",
}


def _path_form(column: str, levels: tuple[int, int]) -> str:
    """SQL: `column` is a path of `levels` parts, each with a letter and without surrounding spaces."""
    low, high = levels
    return (
        f"(regexp_matches({column}, '^[^/]+(/[^/]+){{{low - 1},{high - 1}}}$') AND "
        f"list_bool_and(list_transform(string_split({column}, '/'), "
        r"lambda p: regexp_matches(p, '\pL') AND p = trim(p))))"
    )


def _words(column: str) -> str:
    return f"len(regexp_split_to_array(trim({column}), '\\s+'))"


def _cut_short(text: str, tail: str, other: str, joined: str, space_end: str, rules: RowRules) -> str:
    """SQL: a name or description (`text`, last word `tail`) that was cut short. Any of:

    - its last word is rare in the batch and begins common words ("perfe" of "perfect") or a longer word of
      the row's other text (`other`: "Pierc" of "piercing"), but is no whole word there: a seller's rare word
      ("Randy", "MAG") tends to recur between name and description, a cut one does not; a plural there
      ("goggles" for "goggle") proves nothing;
    - it is one letter;
    - its raw text ends in whitespace while few of the batch's texts do: the marketplace trims what sellers
      type, so a lone trailing space is where a cut fell (many of them mean a padded batch).

    `joined` names the LEFT JOINs of the row's tail: `joined`c (a cut word) and `joined`k (a known word).
    """
    other_words = f"regexp_extract_all(lower({other}), '\\pL+')"
    begins_other = (
        f"list_bool_or(list_transform({other_words}, lambda w: starts_with(w, {tail}) AND w <> {tail} "
        f"AND w NOT IN ({tail} || 's', {tail} || 'es')))"
    )
    rare_tail = f"({joined}k.w IS NULL AND length({tail}) >= {rules.min_cut_word_chars})"
    return (
        f"(({joined}c.v IS NOT NULL OR ({rare_tail} AND {begins_other})) "
        f"AND NOT list_contains({other_words}, {tail})) "
        f"OR regexp_matches({text}, '^\\pL$') "
        f"OR (t.{space_end} AND {text} <> '' AND "
        f"(SELECT avg(CAST({space_end} AS DOUBLE)) FROM typed) <= {rules.max_cut_space_share})"
    )


def _semantic_rules(config: ValidateConfig, scoring: bool) -> str:
    """The rules for type-correct garbage: each value must look like what its column holds.

    They read the taxonomy CTEs of `checked_rows_sql`: known categories, their top levels and known brands.
    A name or description cut short is not judged when `scoring`: the rule keeps doubtful rows out of the
    warehouse, while a listing to score still has a price to suggest (a seller's "Bundle for Eve" reads like a
    cut name).
    """
    rules = config.rows
    levels = rules.category_levels
    cat_form = _path_form("t.cat", levels)
    cut_name = (
        ""
        if scoring
        else f"""CASE WHEN {_cut_short("t.nm", "t.nm_tail", "t.ds", "n", "nm_space_end", rules)}
                     THEN 'name_truncated' END,"""
    )
    cut_description = (
        ""
        if scoring
        else f""",
                CASE WHEN {_cut_short("t.ds", "t.ds_tail", "t.nm", "d", "ds_space_end", rules)}
                     OR (length(t.ds) >= 2 AND t.ds <> '{DESCRIPTION_PLACEHOLDER}'
                         AND starts_with('{DESCRIPTION_PLACEHOLDER}', t.ds))
                     THEN 'description_truncated' END"""
    )
    return f"""
                CASE WHEN t.cat <> '' AND NOT {cat_form} THEN 'category_malformed' END,
                CASE WHEN t.cat <> '' AND {cat_form} AND EXISTS (
                         SELECT 1 FROM listings WHERE batch_id <> $batch AND category_name IS NOT NULL)
                     AND split_part(t.cat, '/', 1) NOT IN (SELECT top FROM known_tops)
                     THEN 'category_unknown_top_level' END,
                CASE WHEN tc.v IS NOT NULL THEN 'category_truncated' END,
                CASE WHEN regexp_matches(t.nm, '{NO_WORDS}') THEN 'name_only_digits_or_punctuation' END,
                CASE WHEN t.nm <> '' AND {_path_form("t.nm", levels)}
                     AND split_part(t.nm, '/', 1) IN (SELECT top FROM known_tops) THEN 'name_is_category_path' END,
                CASE WHEN lower(t.nm) = lower('{DESCRIPTION_PLACEHOLDER}') THEN 'name_is_placeholder' END,
                CASE WHEN t.nm <> '' AND ({_words("t.nm")} > {rules.max_name_words}
                     OR contains(t.nm, chr(10)) OR contains(t.nm, chr(13))) THEN 'name_looks_like_description' END,
                {cut_name}
                CASE WHEN t.br <> '' AND lower(t.nm) IN (SELECT lv FROM known_brands)
                     AND lower(t.br) <> lower(t.nm) AND lower(t.br) NOT IN (SELECT lv FROM known_brands)
                     THEN 'name_is_brand' END,
                CASE WHEN regexp_matches(t.br, '{NO_WORDS}') THEN 'brand_only_digits_or_punctuation' END,
                CASE WHEN t.br <> '' AND ({_path_form("t.br", levels)} OR t.br IN (SELECT v FROM known_categories))
                     THEN 'brand_is_category_path' END,
                CASE WHEN lower(t.br) = lower('{DESCRIPTION_PLACEHOLDER}') THEN 'brand_is_placeholder' END,
                CASE WHEN t.br <> '' AND ({_words("t.br")} > {rules.max_brand_words}
                     OR contains(t.br, chr(10)) OR contains(t.br, chr(13))) THEN 'brand_looks_like_text' END,
                CASE WHEN tb.v IS NOT NULL THEN 'brand_truncated' END,
                -- The marketplace writes a placeholder for a missing description: an empty one next to an
                -- unknown brand is the description moved into the brand column.
                CASE WHEN t.br <> '' AND t.ds = '' AND lower(t.br) NOT IN (SELECT lv FROM known_brands)
                     THEN 'brand_is_description' END,
                CASE WHEN regexp_matches(t.ds, '{NO_WORDS}') THEN 'description_only_digits_or_punctuation' END,
                CASE WHEN t.br <> '' AND lower(t.ds) IN (SELECT lv FROM known_brands)
                     AND lower(t.br) <> lower(t.ds) AND lower(t.br) NOT IN (SELECT lv FROM known_brands)
                     THEN 'description_is_brand' END,
                CASE WHEN t.ds <> '' AND {_path_form("t.ds", levels)}
                     AND split_part(t.ds, '/', 1) IN (SELECT top FROM known_tops)
                     THEN 'description_is_category_path' END{cut_description}"""


@dataclass(frozen=True)
class RowVerdict:
    """How a batch's rows were judged: accepted + rejected = read."""

    read: int
    accepted: int
    rejected: int
    unusable_for_training: int  # accepted priced rows with price 0: kept, but not trained on
    reasons: dict[str, int]  # reason code -> rejected rows giving it, most frequent first


def checked_rows_sql(kind: str, config: ValidateConfig, scoring: bool = False) -> str:
    """SQL that types each raw row of batch $batch and lists the rules it breaks (an empty list means accepted).

    The query takes the parameters $batch (the batch id) and $kind ('priced' or 'unpriced').

    Args:
        kind: priced rows are also checked for a valid price; unpriced rows are not.
        config: The row rules.
        scoring: The rows are only to be scored (`pricewise predict`), not kept: names and descriptions cut
            short are not judged, and a brand or description with broken text (control characters, mojibake)
            is blanked (NULL) and flagged instead of refusing the row.

    Returns:
        A SELECT over ``raw_listings`` with the typed columns price_num, id_num, condition_num, shipping_num and
        the list ``reasons``; when `scoring`, also the list ``flags`` (codes of `BLANKED_WHEN_BROKEN`).
    """
    rules = config.rows

    def broken(col: str) -> str:
        return f"regexp_matches(coalesce({col}, ''), '{BROKEN_TEXT}|{MOJIBAKE}')"

    judged = [col for col in TEXT_COLUMNS if not (scoring and col in BLANKED_WHEN_BROKEN)]
    text_checks = " OR ".join(broken(col) for col in judged)
    rows = "raw_listings r WHERE r.batch_id = $batch"
    if scoring:
        blanked = ", ".join(
            f"CASE WHEN {broken(f'b.{col}')} THEN NULL ELSE b.{col} END AS {col}"
            for col in BLANKED_WHEN_BROKEN
        )
        flags = ", ".join(
            f"CASE WHEN {broken(f'b.{col}')} THEN '{code}' END" for col, code in BLANKED_WHEN_BROKEN.items()
        )
        rows = (
            f"(SELECT b.* REPLACE ({blanked}), list_filter([{flags}], lambda x: x IS NOT NULL) AS flags "
            "FROM raw_listings b WHERE b.batch_id = $batch) r"
        )
    price_rules = ""
    if kind == "priced":
        price_rules = f"""
            CASE WHEN price_text IS NULL THEN 'price_missing' END,
            CASE WHEN price_text IS NOT NULL AND price_num IS NULL THEN 'price_not_number' END,
            CASE WHEN price_num IS NOT NULL AND NOT isfinite(price_num) THEN 'price_not_finite' END,
            CASE WHEN isfinite(price_num) AND price_num < 0 THEN 'price_negative' END,
            CASE WHEN isfinite(price_num) AND price_num > {rules.max_price} THEN 'price_above_max' END,"""
    known = rules.known_from_rows
    return f"""
        WITH typed AS (
            SELECT
                r.*,
                coalesce(trim(r.name), '') AS nm,
                coalesce(trim(r.category_name), '') AS cat,
                coalesce(trim(r.brand_name), '') AS br,
                coalesce(trim(r.item_description), '') AS ds,
                -- The last words of name and description, for the cut-word rule. A name at (or within a word of)
                -- the marketplace's cut may end in a word the marketplace cut: it is not judged by it.
                CASE WHEN length(trim(r.name)) <= {rules.listed_name_chars - 4}
                     THEN lower(regexp_extract(trim(r.name), '(\\pL+)$', 1)) END AS nm_tail,
                lower(regexp_extract(right(trim(r.item_description), 60), '(\\pL+)$', 1)) AS ds_tail,
                regexp_matches(right(r.name, 1), '\\s') AS nm_space_end,
                regexp_matches(right(r.item_description, 1), '\\s') AS ds_space_end,
                trim(r.price) AS price_text,
                TRY_CAST(trim(r.price) AS DOUBLE) AS price_num,
                TRY_CAST(trim(r.source_id) AS DOUBLE) AS id_num,
                TRY_CAST(trim(r.item_condition_id) AS DOUBLE) AS condition_num,
                TRY_CAST(trim(r.shipping) AS DOUBLE) AS shipping_num,
                count(*) OVER (PARTITION BY trim(r.source_id)) AS id_copies
            FROM {rows}
        ),
        earlier AS (
            SELECT DISTINCT source_id FROM listings WHERE kind = 'priced' AND batch_id <> $batch
        ),
        -- The taxonomy: what other batches had accepted, and what recurs in this one (garbage rarely does).
        known_categories AS (
            SELECT DISTINCT category_name AS v FROM listings WHERE batch_id <> $batch AND category_name IS NOT NULL
            UNION
            SELECT cat FROM typed WHERE cat <> '' GROUP BY cat HAVING count(*) >= {known}
        ),
        known_tops AS (
            SELECT split_part(v, '/', 1) AS top FROM known_categories
            UNION
            SELECT split_part(cat, '/', 1) FROM typed WHERE cat <> '' GROUP BY 1 HAVING count(*) >= {known}
        ),
        known_brand_values AS (
            SELECT DISTINCT brand_name AS v FROM listings WHERE batch_id <> $batch AND brand_name IS NOT NULL
            UNION
            SELECT br FROM typed WHERE br <> '' GROUP BY br HAVING count(*) >= {known}
        ),
        known_brands AS (SELECT DISTINCT lower(v) AS lv FROM known_brand_values),
        -- A value that is not known but begins a known one was cut short. Only the batch's few unknown values
        -- are compared with the taxonomy, so the prefix search stays small.
        truncated_categories AS (
            SELECT u.cat AS v FROM (SELECT DISTINCT cat FROM typed WHERE cat <> '') u
            WHERE u.cat NOT IN (SELECT v FROM known_categories)
              AND EXISTS (SELECT 1 FROM known_categories k WHERE starts_with(k.v, u.cat))
        ),
        -- The batch's words: in how many of (up to) vocabulary_rows of its rows each occurs. A sample keeps the
        -- count cheap on a full-size batch and its meaning the same at any size.
        vocabulary AS (
            SELECT w, count(*) AS n FROM (
                SELECT unnest(list_distinct(regexp_extract_all(lower(nm || ' ' || ds), '\\pL+'))) AS w
                FROM (SELECT nm, ds FROM typed ORDER BY hash(source_id, nm, ds) LIMIT {rules.vocabulary_rows})
            ) GROUP BY w
        ),
        -- Every beginning of a common word ("perfe" of "perfect"); a rare word that only begins common ones
        -- and ends a text is a word cut short.
        common_word_starts AS (
            SELECT DISTINCT left(w, i) AS p
            FROM (SELECT w, unnest(range({rules.min_cut_word_chars}, length(w))) AS i
                  FROM vocabulary WHERE n >= {rules.common_word_rows})
        ),
        cut_words AS (
            SELECT p AS v FROM common_word_starts
            WHERE p NOT IN (SELECT w FROM vocabulary WHERE n >= {known})
        ),
        truncated_brands AS (
            SELECT u.br AS v FROM (SELECT DISTINCT br FROM typed WHERE br <> '') u
            WHERE u.br NOT IN (SELECT v FROM known_brand_values)
              -- Cut inside a word: "True Religion" begins "True Religion Brand Jeans" and is a brand itself.
              AND EXISTS (SELECT 1 FROM known_brand_values k WHERE starts_with(k.v, u.br)
                          AND regexp_matches(right(u.br, 1) || substr(k.v, length(u.br) + 1, 1), '^\\w\\w$'))
        )
        SELECT
            t.*,
            list_filter([
                CASE WHEN t.source_id IS NULL THEN 'id_missing' END,
                CASE WHEN t.source_id IS NOT NULL AND (t.id_num IS NULL OR t.id_num < 0
                     OR t.id_num <> floor(t.id_num)) THEN 'id_not_integer' END,
                CASE WHEN t.source_id IS NOT NULL AND t.id_copies > 1 THEN 'duplicate_id_in_batch' END,
                CASE WHEN e.source_id IS NOT NULL THEN 'duplicate_id_across_batches' END,
                CASE WHEN t.name IS NULL OR trim(t.name) = '' THEN 'name_empty' END,
                CASE WHEN length(t.name) > {rules.max_name_chars} THEN 'name_too_long' END,
                CASE WHEN t.condition_num IS NULL OR t.condition_num NOT IN (1, 2, 3, 4, 5)
                     THEN 'condition_invalid' END,
                CASE WHEN t.shipping_num IS NULL OR t.shipping_num NOT IN (0, 1) THEN 'shipping_invalid' END,
                CASE WHEN length(t.category_name) > {rules.max_category_chars} THEN 'category_too_long' END,
                CASE WHEN length(t.brand_name) > {rules.max_brand_chars} THEN 'brand_too_long' END,
                CASE WHEN length(t.item_description) > {rules.max_description_chars}
                     THEN 'description_too_long' END,{price_rules}
                CASE WHEN {text_checks} THEN 'broken_encoding' END,{_semantic_rules(config, scoring)}
            ], lambda x: x IS NOT NULL) AS reasons
        FROM typed t
        LEFT JOIN truncated_categories tc ON tc.v = t.cat
        LEFT JOIN truncated_brands tb ON tb.v = t.br
        LEFT JOIN cut_words nc ON nc.v = t.nm_tail
        LEFT JOIN vocabulary nk ON nk.w = t.nm_tail AND nk.n >= {known}
        LEFT JOIN cut_words dc ON dc.v = t.ds_tail
        LEFT JOIN vocabulary dk ON dk.w = t.ds_tail AND dk.n >= {known}
        LEFT JOIN earlier e
            ON $kind = 'priced' AND t.id_num IS NOT NULL AND t.id_num = floor(t.id_num)
            AND e.source_id = CAST(t.id_num AS BIGINT)
    """


def _write_verdict(con: duckdb.DuckDBPyConnection, batch_id: str, kind: str, config: Config) -> None:
    """Replace the batch's accepted and rejected rows with a fresh verdict (re-validation is allowed)."""
    for table in ("listings", "rejects"):
        con.execute(f"DELETE FROM {table} WHERE batch_id = ?", [batch_id])
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE checked AS {checked_rows_sql(kind, config.validate_)}",
        {"batch": batch_id, "kind": kind},
    )
    con.execute(
        """
        INSERT INTO rejects (batch_id, source_line, source_id, reasons, name, item_condition_id, category_name,
                             brand_name, price, shipping, item_description, raw_line)
        SELECT batch_id, NULL, source_id, reasons, name, item_condition_id, category_name, brand_name, price,
               shipping, item_description, NULL
        FROM checked WHERE len(reasons) > 0
        """
    )
    # Records the reader could not split are rejects too, so that accepted + rejected = read.
    con.execute(
        """
        INSERT INTO rejects (batch_id, source_line, source_id, reasons, raw_line)
        SELECT batch_id, source_line, NULL, ['parse_' || replace(lower(error_type), ' ', '_')], raw_line
        FROM parse_rejects WHERE batch_id = ?
        """,
        [batch_id],
    )
    # Priced ids are stable across batches (a training listing keeps its id); unpriced ids only within a batch.
    listing_id = (
        "'train-' || CAST(id_num AS BIGINT)"
        if kind == "priced"
        else "'score-' || batch_id || '-' || CAST(id_num AS BIGINT)"
    )
    split_expr = split.assign_sql(listing_id, config.split) if kind == "priced" else "NULL"
    con.execute(
        f"""
        INSERT INTO listings (listing_id, batch_id, kind, source_id, name, item_condition_id, category_name,
                              brand_name, price, shipping, item_description, usable_for_training, split)
        SELECT {listing_id}, batch_id, $kind, CAST(id_num AS BIGINT), trim(name), CAST(condition_num AS TINYINT),
               nullif(trim(category_name), ''), nullif(trim(brand_name), ''),
               CASE WHEN $kind = 'priced' THEN price_num END, CAST(shipping_num AS TINYINT),
               item_description, $kind = 'priced' AND price_num > 0, {split_expr}
        FROM checked WHERE len(reasons) = 0
        """,
        {"kind": kind},
    )
    con.execute("DROP TABLE checked")


def _count(con: duckdb.DuckDBPyConnection, sql: str, batch_id: str) -> int:
    row = con.execute(sql, [batch_id]).fetchone()
    return int(row[0]) if row else 0


def apply(
    con: duckdb.DuckDBPyConnection, batch_id: str, kind: str, rows_read: int, config: Config
) -> RowVerdict:
    """Judge every row of a batch and store the verdict: accepted rows in listings, the others in rejects.

    Earlier verdicts on the batch are replaced. Run it inside a transaction: on error nothing may be kept.

    Args:
        con: An open warehouse connection, inside a transaction.
        batch_id: The batch to judge.
        kind: 'priced' or 'unpriced', as ingested.
        rows_read: Rows the batch had when read (parsed + unparseable).
        config: Stage parameters (the validate and split sections are used).

    Returns:
        The counts of the verdict and the reasons rejects were given.

    Raises:
        PricewiseError: accepted + rejected differ from rows_read (a row would be lost).
    """
    _write_verdict(con, batch_id, kind, config)
    accepted = _count(con, "SELECT count(*) FROM listings WHERE batch_id = ?", batch_id)
    rejected = _count(con, "SELECT count(*) FROM rejects WHERE batch_id = ?", batch_id)
    if accepted + rejected != rows_read:
        raise PricewiseError(
            f"batch {batch_id}: accepted {accepted} + rejected {rejected} != read {rows_read}; nothing written"
        )
    unusable = _count(
        con,
        "SELECT count(*) FROM listings WHERE batch_id = ? AND kind = 'priced' AND NOT usable_for_training",
        batch_id,
    )
    reasons = dict(
        con.execute(
            "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM rejects WHERE batch_id = ?) "
            "GROUP BY r ORDER BY count(*) DESC, r",
            [batch_id],
        ).fetchall()
    )
    return RowVerdict(rows_read, accepted, rejected, unusable, reasons)


def sample_rejects(
    con: duckdb.DuckDBPyConnection, batch_id: str, limit: int = SAMPLE_REJECTS
) -> list[dict[str, Any]]:
    """The first rejects of a batch (by source line, then id), as a report shows them.

    Args:
        con: An open warehouse connection.
        batch_id: The judged batch.
        limit: Most rejects to return.

    Returns:
        Dicts with line, id, reasons, name, price and raw (the raw line, cut at 300 characters).
    """
    rows = con.execute(
        "SELECT source_line, source_id, reasons, name, price, coalesce(raw_line, '') FROM rejects "
        "WHERE batch_id = ? ORDER BY source_line NULLS LAST, source_id LIMIT ?",
        [batch_id, limit],
    ).fetchall()
    return [
        {"line": s[0], "id": s[1], "reasons": list(s[2]), "name": s[3], "price": s[4], "raw": s[5][:300]}
        for s in rows
    ]
