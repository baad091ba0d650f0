"""A marketplace's mapping file (YAML) in; a checked mapping and the SQL that reads its exports as listings out.

A mapping says how another marketplace's export becomes listing columns: which of its columns is which listing
column, whether prices are in dollars or cents, which words stand for condition and shipping codes, and how its
category paths and other text are rewritten. Columns it does not name are ignored. The SQL streams: DuckDB
applies it row by row while it reads the file, so a mapped export costs what a Kaggle file does.

A value a mapping cannot translate (a condition word it does not list, a fractional price in cents) stops the
read with an error naming the value, the column and the mapping: the mapping is incomplete or wrong for that
export, and quarantining every row it cannot translate would hide that. Empty values stay empty and meet the row
rules like any missing value.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pricewise.columns import FIELD_COLUMNS, PRICE_COLUMN
from pricewise.errors import InputFileError, PricewiseError

# What a mapping maps to: the listing id and the listing columns.
ID_FIELD = "id"
LISTING_FIELDS: tuple[str, ...] = (ID_FIELD, *FIELD_COLUMNS, PRICE_COLUMN)


def _listing_field(value: str) -> str:
    if value not in LISTING_FIELDS:
        raise ValueError(f"{value!r} is not a listing column (one of {', '.join(LISTING_FIELDS)})")
    return value


ListingField = Annotated[str, AfterValidator(_listing_field)]
REQUIRED_FIELDS: tuple[str, ...] = (ID_FIELD, "name", "item_condition_id", "shipping")
MAPPING_SUFFIXES = (".yaml", ".yml")
# Marks a mapping's own error inside DuckDB's message, so the reader can report it as it is.
ERROR_MARK = "[pricewise mapping] "
MAX_VALUE_CHARS = 80


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rewrite(_Strict):
    """A regular expression replacement (RE2 syntax, every match), applied to a column's text."""

    pattern: str = Field(min_length=1)
    replacement: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return pattern


class CategoryRules(_Strict):
    """How the export writes category paths: its separator between levels (rewritten to '/', each level
    trimmed), then replacements on the rewritten path."""

    separator: str | None = Field(default=None, min_length=1)
    replace: tuple[Rewrite, ...] = ()


class SourceMapping(_Strict):
    """One marketplace's export, as listing columns.

    Attributes:
        columns: The export's column -> the listing column it holds (id, name, item_condition_id,
            category_name, brand_name, price, shipping, item_description). id, name, item_condition_id and
            shipping are required; a file without the price column is a file of listings to score.
        price_unit: dollars, or cents (whole numbers, divided by 100).
        values: Per listing column, the export's words -> the listing's value (matched trimmed, ignoring case).
        category: Separator and replacements for category paths.
        rewrites: Per listing column, replacements applied to the trimmed text before `values`.
    """

    description: str = ""
    columns: dict[str, ListingField] = Field(min_length=1)
    price_unit: Literal["dollars", "cents"] = "dollars"
    values: dict[ListingField, dict[str, int | str]] = {}
    category: CategoryRules = CategoryRules()
    rewrites: dict[ListingField, tuple[Rewrite, ...]] = {}

    @model_validator(mode="after")
    def _consistent(self) -> SourceMapping:
        targets = list(self.columns.values())
        doubled = sorted({t for t in targets if targets.count(t) > 1})
        if doubled:
            raise ValueError(f"columns: several columns map to {', '.join(doubled)}")
        missing = [f for f in REQUIRED_FIELDS if f not in targets]
        if missing:
            raise ValueError(f"columns: nothing maps to {', '.join(missing)}")
        for name, listed in (("values", list(self.values)), ("rewrites", list(self.rewrites))):
            unmapped = [f for f in listed if f not in targets]
            if unmapped:
                raise ValueError(f"{name}: {', '.join(unmapped)} is not a target of columns")
        if PRICE_COLUMN in self.values:
            raise ValueError("values: price is converted by price_unit, not by a table of values")
        for target, table in self.values.items():
            keys = [k.strip().lower() for k in table]
            same = sorted({k for k in keys if keys.count(k) > 1})
            if same:
                raise ValueError(f"values.{target}: {', '.join(same)} listed twice (case and spaces ignored)")
        uses_category = self.category.separator is not None or bool(self.category.replace)
        if uses_category and "category_name" not in targets:
            raise ValueError("category: nothing maps to category_name")
        return self


@dataclass(frozen=True)
class LoadedMapping:
    """A checked mapping with where it came from.

    Attributes:
        name: The file's stem (what `--mapping NAME` names).
        path: The mapping file.
        sha256: sha256 of the file's bytes, recorded in each batch's lineage.
        spec: The mapping.
    """

    name: str
    path: Path
    sha256: str
    spec: SourceMapping

    def _where(self) -> str:
        return f"mapping {self.name} ({self.path})"

    def source_column(self, target: str) -> str | None:
        """The export's column that holds a listing column, or None when the mapping has none."""
        return next((s for s, t in self.spec.columns.items() if t == target), None)

    def classify(self, columns: tuple[str, ...], name: str) -> tuple[Literal["priced", "unpriced"], str]:
        """Decide whether a file's header holds the mapping's columns, and whether it is priced.

        Args:
            columns: The header's column names.
            name: The file name, for messages.

        Returns:
            priced or unpriced (the price column is there or not) and the export's id column.

        Raises:
            InputFileError: A column the mapping names is missing, or a column is doubled; both name the mapping.
        """
        doubled = sorted({c for c in columns if columns.count(c) > 1})
        if doubled:
            raise InputFileError(f"{name}: duplicated column(s) {', '.join(doubled)}")
        present = set(columns)
        price = self.source_column(PRICE_COLUMN)
        missing = [s for s, t in self.spec.columns.items() if s not in present and t != PRICE_COLUMN]
        if missing:
            shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
            raise InputFileError(
                f"{name}: {self._where()} reads column(s) {', '.join(missing)}, which the file lacks "
                f"(its columns: {shown})"
            )
        id_column = self.source_column(ID_FIELD)
        assert id_column is not None  # the model requires one
        return ("priced" if price is not None and price in present else "unpriced"), id_column

    def _fail(self, what: str) -> str:
        return f"error({_literal(ERROR_MARK + self._where() + ': ')} || {what})"

    def _value_sql(self, source: str, target: str) -> str:
        """SQL for one listing column, as text, from the export's column `source`."""
        spec = self.spec
        text = f'CAST("{_identifier(source)}" AS VARCHAR)'
        category_rules = target == "category_name" and (spec.category.separator or spec.category.replace)
        cents = target == PRICE_COLUMN and spec.price_unit == "cents"
        if not (target in spec.rewrites or target in spec.values or category_rules or cents):
            return text  # kept as read, as from a Kaggle file
        value = f"trim({text})"
        if target == "category_name" and spec.category.separator is not None:
            value = (
                f"array_to_string(list_transform(string_split({value}, {_literal(spec.category.separator)}), "
                "lambda part: trim(part)), '/')"
            )
        rules = next((r for t, r in spec.rewrites.items() if t == target), ()) + (
            spec.category.replace if target == "category_name" else ()
        )
        for rule in rules:
            value = f"regexp_replace({value}, {_literal(rule.pattern)}, {_literal(rule.replacement)}, 'g')"
        if target in spec.values:
            table = spec.values[target]
            cases = " ".join(
                f"WHEN {_literal(k.strip().lower())} THEN {_literal(str(v))}" for k, v in table.items()
            )
            listed = ", ".join(table)
            return (
                f"CASE WHEN coalesce({value}, '') = '' THEN NULL ELSE CASE lower({value}) {cases} ELSE "
                + self._fail(
                    f"'column {_sql_text(source)} ({target}): value ' || chr(39) || left({value}, "
                    f"{MAX_VALUE_CHARS}) || chr(39) || ' is not one of the mapped values ({_sql_text(listed)})'"
                )
                + " END END"
            )
        if cents:
            return (
                f"CASE WHEN coalesce({value}, '') = '' THEN NULL "
                f"WHEN regexp_full_match({value}, '[+-]?[0-9]{{1,15}}') "
                f"THEN CAST(CAST({value} AS DOUBLE) / 100 AS VARCHAR) "
                f"WHEN TRY_CAST({value} AS DOUBLE) IS NOT NULL THEN "
                + self._fail(
                    f"'column {_sql_text(source)} (price in cents): value ' || chr(39) || left({value}, "
                    f"{MAX_VALUE_CHARS}) || chr(39) || ' is not a whole number of cents'"
                )
                + f" ELSE {value} END"
            )
        return value

    def select_sql(self, kind: str) -> str:
        """The SELECT list that reads the export as raw listing columns: source_id, the listing fields in
        `FIELD_COLUMNS` order, then price (NULL for an unpriced file), each as text."""
        parts = []
        for target in (ID_FIELD, *FIELD_COLUMNS, PRICE_COLUMN):
            source = self.source_column(target)
            if source is None or (target == PRICE_COLUMN and kind != "priced"):
                parts.append("CAST(NULL AS VARCHAR)")
            else:
                parts.append(self._value_sql(source, target))
        return ", ".join(parts)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_text(text: str) -> str:
    """Text to embed inside a SQL string literal that is already open."""
    return text.replace("'", "''")


def _identifier(name: str) -> str:
    return name.replace('"', '""')


def mapping_path(name_or_path: str, sources_dir: Path) -> Path:
    """Where a mapping named on the command line lives: a path to a YAML file, or a name in `sources_dir`.

    Raises:
        PricewiseError: No such file; the message lists the mappings in `sources_dir`.
    """
    given = Path(name_or_path)
    if given.suffix in MAPPING_SUFFIXES or len(given.parts) > 1:
        if not given.is_file():
            raise PricewiseError(f"mapping file {given} does not exist")
        return given
    for suffix in MAPPING_SUFFIXES:
        candidate = sources_dir / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in sources_dir.glob("*.y*ml")) if sources_dir.is_dir() else []
    listed = f"the mappings there: {', '.join(known)}" if known else "there are none"
    raise PricewiseError(
        f"mapping {name_or_path!r} not found: no {name_or_path}.yaml in {sources_dir} ({listed}); "
        "give a mapping's name or the path of its YAML file"
    )


def load_mapping(name_or_path: str, sources_dir: Path) -> LoadedMapping:
    """Find, read and check a mapping file.

    Args:
        name_or_path: A mapping's name (a file ``NAME.yaml`` in `sources_dir`) or the path of a YAML file.
        sources_dir: Where named mappings live (``configs/sources`` beside the stage config).

    Returns:
        The mapping with its name, path and sha256.

    Raises:
        PricewiseError: The mapping does not exist, is not YAML, or does not match the schema (the message names
            the file and each wrong field).
    """
    path = mapping_path(name_or_path, sources_dir)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise PricewiseError(f"cannot read mapping file {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(content.decode("utf-8")) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PricewiseError(f"mapping file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PricewiseError(
            f"mapping file {path} must be a YAML mapping of fields, got {type(raw).__name__}"
        )
    try:
        spec = SourceMapping.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise PricewiseError(f"mapping file {path} is invalid: {problems}") from exc
    return LoadedMapping(path.stem, path, hashlib.sha256(content).hexdigest(), spec)


def mapping_error(message: str) -> str | None:
    """The mapping's own message inside a DuckDB error, or None when the error is something else."""
    at = message.find(ERROR_MARK)
    return message[at + len(ERROR_MARK) :].strip() if at >= 0 else None
