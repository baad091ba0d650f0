"""A fitted main model and priced reference listings in, the most similar priced listings of the same kind out.

Similarity is the cosine of the model's own TF-IDF text features (name + brand and full text), so "similar"
means what the model sees. The index is the reference matrix in column-major form: a query touches only the
posting lists of its own words, and words carried by more than `max_df_share` of listings are left out of the
search (they say little about similarity and would make every query scan most rows).

Text alone finds an iPhone case for an iPhone, so comparables are also of the same kind of item: the listing's
category when it has one, else the category most common among its closest text neighbours. Listings of that
category come first; the same department and subcategory (the top two levels), then anything, only fill up to
k. Each reference row's category is stored as an integer code, so this filter is one array lookup per
candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from pricewise.models.features.sparse import SparseFeatureBuilder
from pricewise.models.features.text import listing_fields, text_values
from pricewise.models.suggester import LogPriceModel, clean_input

DISPLAY_COLUMNS = ("name", "brand_name", "category_name", "item_condition_id")
TRANSFORM_CHUNK = 100_000
# The words of item_condition_id 1..5, as sellers read them.
CONDITION_NAMES: dict[int, str] = {1: "New", 2: "Like new", 3: "Good", 4: "Fair", 5: "Poor"}
# How many of the closest text neighbours vote on the kind of a listing that names no category, and how many
# branded ones of that kind vote on its brand (a listing without a brand is closer in text to unbranded ones,
# so the brand is voted among the branded).
KIND_VOTERS = 20
BRAND_VOTERS = 20
NO_CATEGORY = -1


@dataclass(frozen=True)
class Neighbour:
    """A reference listing, its price and its similarity to the query (0..1)."""

    name: str
    brand_name: str
    category_name: str
    item_condition_id: int
    condition: str
    price: float
    similarity: float


@dataclass(frozen=True)
class Match:
    """The comparables of one listing and the kind of item they were chosen as.

    Attributes:
        neighbours: The comparables, most similar first.
        kind: The category the comparables were chosen for (as the reference listings spell it): the listing's
            own when given, else the one guessed from its text neighbours; None when neither is known.
        kind_guessed: True when the listing named no category and `kind` comes from its neighbours.
        brand: The most common brand among the most similar branded reference listings of that kind, None
            when the kind is unknown or none of them has a brand.
    """

    neighbours: list[Neighbour]
    kind: str | None
    kind_guessed: bool
    brand: str | None


def category_key(value: str) -> str:
    """The normalised form categories are matched on (lower-case, single-spaced, 'A / B' read as 'A/B')."""
    return listing_fields(
        {
            "name": [""],
            "brand_name": [""],
            "category_name": [value],
            "item_condition_id": [0],
            "shipping": [0],
            "item_description": [""],
        }
    ).category[0]


def _top_two(key: str) -> str:
    return "/".join(key.split("/")[:2])


class ComparablesIndex:
    """Nearest training listings by cosine similarity of TF-IDF features, of the same kind of item first."""

    # Class defaults, so an index pickled before categories were coded unpickles (its codes are then built
    # from its listings on first use).
    category_codes: np.ndarray | None = None
    top_two_of: np.ndarray | None = None
    category_keys: dict[str, int] | None = None
    top_two_keys: dict[str, int] | None = None
    category_labels: tuple[str, ...] | None = None
    brand_codes: np.ndarray | None = None
    brand_labels: tuple[str, ...] | None = None

    def __init__(
        self, builder: SparseFeatureBuilder, matrix: sp.csc_matrix, listings: pd.DataFrame, price: np.ndarray
    ) -> None:
        """Hold a built index (use `build` or `from_frame`).

        Args:
            builder: The model's fitted feature builder.
            matrix: Reference rows x text-feature columns, rows L2-normalised, common columns zeroed, CSC.
            listings: Display fields of the reference rows.
            price: Their prices.
        """
        self.builder = builder
        self.matrix = matrix
        self.listings = listings
        self.price = price
        self.n_text_columns = matrix.shape[1]
        self.searchable = np.diff(matrix.indptr) > 0
        self._code_categories()

    def _code_categories(self) -> None:
        """Code each reference row's category (and its top two levels) and brand; a label per code for display."""
        raw = text_values(self.listings["category_name"])
        keys = listing_fields(
            {
                "name": [""] * len(raw),
                "brand_name": [""] * len(raw),
                "category_name": raw,
                "item_condition_id": [0] * len(raw),
                "shipping": [0] * len(raw),
                "item_description": [""] * len(raw),
            }
        ).category
        codes, uniques = pd.factorize(pd.Series(keys, dtype=object), sort=False)
        key_list = [str(u) for u in uniques]
        codes = np.asarray(codes, dtype=np.int32)
        empty = key_list.index("") if "" in key_list else None
        if empty is not None:
            codes[codes == empty] = NO_CATEGORY
        top_codes, top_uniques = pd.factorize(pd.Series([_top_two(k) for k in key_list], dtype=object))
        # The label of a category: its most common spelling among the reference rows.
        spellings = pd.DataFrame({"code": codes, "raw": raw})
        counts = spellings[spellings["code"] >= 0].value_counts(sort=True)
        labels = [""] * len(key_list)
        for code, label in (
            counts.reset_index().drop_duplicates("code")[["code", "raw"]].itertuples(index=False)
        ):
            labels[int(code)] = str(label)
        brands = [value.strip() for value in text_values(self.listings["brand_name"])]
        brand_codes, brand_uniques = pd.factorize(pd.Series(brands, dtype=object), sort=False)
        brand_list = [str(u) for u in brand_uniques]
        brand_codes = np.asarray(brand_codes, dtype=np.int32)
        if "" in brand_list:
            brand_codes[brand_codes == brand_list.index("")] = NO_CATEGORY
        self.top_two_of = np.asarray(top_codes, dtype=np.int32)
        self.category_keys = {k: i for i, k in enumerate(key_list) if k}
        self.top_two_keys = {str(k): i for i, k in enumerate(top_uniques) if k}
        self.category_labels = tuple(labels)
        self.brand_codes = brand_codes
        self.brand_labels = tuple(brand_list)
        # Last: a search in another thread takes a set category_codes as "all coded".
        self.category_codes = codes

    @classmethod
    def from_frame(
        cls, builder: SparseFeatureBuilder, frame: pd.DataFrame, price: np.ndarray, max_df_share: float = 0.05
    ) -> ComparablesIndex:
        """Index reference listings with a fitted builder.

        Args:
            builder: The model's fitted feature builder.
            frame: Raw listing fields of the reference listings.
            price: Their prices.
            max_df_share: Columns present in more than this share of rows are not searched.

        Returns:
            The index.
        """
        clean = clean_input(frame)
        n_text = int(builder.name_tfidf_.columns_.size + builder.text_tfidf_.columns_.size)
        blocks = [
            sp.csr_matrix(builder.transform(clean.iloc[start : start + TRANSFORM_CHUNK]))[:, :n_text]
            for start in range(0, len(clean), TRANSFORM_CHUNK)
        ]
        matrix = sp.csr_matrix(normalize(sp.vstack(blocks, format="csr"), norm="l2"), dtype=np.float32)
        matrix = sp.csc_matrix(matrix)
        doc_freq = np.diff(matrix.indptr)
        too_common = np.flatnonzero(doc_freq > max(1, int(max_df_share * matrix.shape[0])))
        if too_common.size:
            keep = np.ones(matrix.shape[1], dtype=np.float32)
            keep[too_common] = 0.0
            matrix = sp.csc_matrix(matrix @ sp.diags(keep))
            matrix.eliminate_zeros()
        listings = clean[list(DISPLAY_COLUMNS)].reset_index(drop=True)
        return cls(builder, matrix, listings, np.asarray(price, dtype=np.float64))

    @classmethod
    def build(cls, model: LogPriceModel, frame: pd.DataFrame, price: np.ndarray) -> ComparablesIndex | None:
        """Index reference listings with the model's own builder.

        Args:
            model: A fitted price model.
            frame: Raw listing fields of the reference listings.
            price: Their prices.

        Returns:
            The index, or None for a model without a sparse feature builder (its features say nothing about
            text similarity).
        """
        builder = getattr(model, "builder_", None)
        if not isinstance(builder, SparseFeatureBuilder):
            return None
        return cls.from_frame(builder, frame, price)

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def nearest(self, listing: pd.DataFrame, k: int) -> list[Neighbour]:
        """The k most similar reference listings of the same kind as the first listing of a frame (see `search`)."""
        return self.search(listing, k).neighbours

    def search(self, listing: pd.DataFrame, k: int) -> Match:
        """The comparables of the first listing of a frame and the kind of item they were chosen as.

        Args:
            listing: A frame of raw listing fields; only its first row is searched.
            k: How many comparables at most.

        Returns:
            Up to k reference listings that share words with the listing, most similar first: those of the
            listing's kind when there are k of them, else filled up with the same top two category levels,
            then with any. The cost is that of the query's posting lists plus one pass over the scores.
        """
        none = Match(neighbours=[], kind=None, kind_guessed=False, brand=None)
        if k <= 0 or len(self) == 0:
            return none
        if self.category_codes is None:  # an index pickled before categories were coded
            self._code_categories()
        assert self.category_codes is not None
        assert self.top_two_of is not None
        assert self.category_keys is not None
        assert self.top_two_keys is not None
        assert self.category_labels is not None
        assert self.brand_codes is not None
        assert self.brand_labels is not None
        clean = clean_input(listing.head(1))
        query = sp.csr_matrix(self.builder.transform(clean))[:, : self.n_text_columns]
        columns = query.indices[self.searchable[query.indices]]
        if columns.size == 0:
            return none
        values = query[0, columns].toarray().ravel()
        norm = float(np.linalg.norm(values))
        all_scores = np.asarray(self.matrix[:, columns] @ (values / norm)).ravel()
        candidates = np.flatnonzero(all_scores > 0)
        if candidates.size == 0:
            return none
        scores = all_scores[candidates]
        codes = self.category_codes[candidates]
        own_raw = str(clean["category_name"].iloc[0]).strip()
        own_key = category_key(own_raw)
        guessed = not own_key
        if guessed:
            kind_code = self._most_common(codes, scores, KIND_VOTERS, weighted=True)
        else:
            kind_code = self.category_keys.get(own_key, -2)
        kind: str | None
        if kind_code >= 0:
            top_code = int(self.top_two_of[kind_code])
            kind = self.category_labels[kind_code]
        else:  # no kind, or a category no reference listing has (its top two levels may still match)
            top_code = self.top_two_keys.get(_top_two(own_key), -2) if own_key else -2
            kind = own_raw or None
        tier = np.full(candidates.size, 2, dtype=np.int8)
        tier[(codes >= 0) & (self.top_two_of[np.maximum(codes, 0)] == top_code)] = 1
        tier[codes == kind_code] = 0
        chosen: list[int] = []
        for level in (0, 1, 2):
            if len(chosen) >= k:
                break
            in_tier = np.flatnonzero(tier == level)
            need = min(k - len(chosen), in_tier.size)
            if need == 0:
                continue
            best = in_tier[np.argpartition(-scores[in_tier], need - 1)[:need]]
            chosen.extend(best.tolist())
        picked = np.array(chosen, dtype=np.int64)
        picked = picked[np.argsort(-scores[picked], kind="stable")]
        neighbours = []
        for position in picked.tolist():
            i = int(candidates[position])
            row = self.listings.iloc[i]
            condition_id = int(row["item_condition_id"])
            neighbour = Neighbour(
                name=str(row["name"]),
                brand_name=str(row["brand_name"]),
                category_name=str(row["category_name"]),
                item_condition_id=condition_id,
                condition=CONDITION_NAMES.get(condition_id, ""),
                price=float(self.price[i]),
                similarity=round(float(scores[position]), 4),
            )
            neighbours.append(neighbour)
        brand = -2
        if kind_code >= 0:
            branded = np.flatnonzero((tier == 0) & (self.brand_codes[candidates] >= 0))
            brand = self._most_common(
                self.brand_codes[candidates[branded]], scores[branded], BRAND_VOTERS, weighted=False
            )
        return Match(
            neighbours=neighbours,
            kind=kind,
            kind_guessed=guessed and kind is not None,
            brand=self.brand_labels[brand] if brand >= 0 else None,
        )

    @staticmethod
    def _most_common(codes: np.ndarray, scores: np.ndarray, voters: int, weighted: bool) -> int:
        """The code most common among the `voters` most similar candidates, -2 if none has a code.

        Args:
            codes: A code per candidate (negative when it has none).
            scores: Each candidate's similarity to the query.
            voters: How many of the most similar candidates vote.
            weighted: Votes weigh their similarity (else each counts one and similarity breaks ties).
        """
        n = min(voters, codes.size)
        if n == 0:
            return -2
        top = np.argpartition(-scores, n - 1)[:n]
        votes, weights = codes[top], scores[top]
        known = votes >= 0
        if not known.any():
            return -2
        counts = np.bincount(votes[known])
        similarity = np.bincount(votes[known], weights=weights[known])
        if weighted:
            return int(np.argmax(similarity))
        return int(np.lexsort((-similarity, -counts))[0])
