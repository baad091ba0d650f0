"""A fitted main model and one listing in, the sentences saying which of its words and details moved its price out.

The main model blends a Ridge regression with other components on shared sparse features. A linear model's
contribution per feature is exact (coefficient x feature value), so the reasons come from the Ridge component,
which is fitted to the same target on the same features (its blend weight can be small or zero, so it is used
unweighted: it explains the price level, not the blend); the hashed n-gram columns are mapped back to the
listing's own words by hashing them again.

A seller reads one reason per thing they typed: the brand's one-hot column and the brand's words in the title
are one reason, the department and category columns and the words the category path adds to the text are one
reason. A merged reason's effect is the product of its parts' relative effects (the sum of their log-price
contributions), so no reason appears twice and none says both "raises" and "lowers".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import Ridge

from pricewise.models.comparables import CONDITION_NAMES
from pricewise.models.features.sparse import HashedTfidf, SparseFeatureBuilder
from pricewise.models.features.text import listing_fields
from pricewise.models.suggester import LogPriceModel, clean_input

NOTE = (
    "How each detail or word of this listing moves the price, with everything else held the same, as the "
    "simplest part of the model sees it. The full model also weighs details together, so these effects do "
    "not add up exactly to the suggestion."
)
# Longer brand or category values are cut in the sentences (the feature keeps the whole value).
MAX_SHOWN_CHARS = 100

ATTRIBUTES = {
    "category_top": "department",
    "category": "category",
    "brand": "brand",
    "condition": "condition",
    "shipping": "shipping paid by seller",
}
# The reason each one-hot attribute belongs to: the department is the first level of the category.
_GROUP_OF_ATTRIBUTE = {
    "category_top": "category",
    "category": "category",
    "brand": "brand",
    "condition": "condition",
    "shipping": "shipping",
}


@dataclass(frozen=True)
class PriceReason:
    """One word or detail of the listing, its relative effect on the price and the sentence a seller reads.

    Attributes:
        feature: What the reason is about: 'brand: nike', 'category: men/shoes', 'condition: like new',
            'shipping: free', 'shipping: buyer pays', or a word or word pair of the text.
        effect: Relative effect on the price (0.1 = about +10 %).
        text: The same as a sentence, e.g. "The brand Nike raises the price by about 16%".
    """

    feature: str
    effect: float
    text: str


@dataclass(frozen=True)
class Reasons:
    """The reasons that raise and that lower the price, strongest first."""

    up: list[PriceReason]
    down: list[PriceReason]


def _columns_of(tfidf: HashedTfidf, grams: list[str]) -> np.ndarray:
    """Column of each n-gram in the fitted block, -1 when the n-gram's bucket was pruned."""
    if not grams:
        return np.empty(0, dtype=np.int64)
    hasher = FeatureHasher(n_features=tfidf.hasher().n_features, input_type="string", alternate_sign=False)
    buckets = sp.csr_matrix(hasher.transform([[g] for g in grams])).indices
    return tfidf.columns_of(buckets)


def _attribute_of(encoded: str) -> str | None:
    """'category_top_women' -> 'category_top': the one-hot attribute a column name belongs to."""
    for column in ATTRIBUTES:  # longest prefixes first, so category_top wins over category
        if encoded.startswith(column + "_"):
            return column
    return None


def _attribute_label(encoded: str) -> str:
    """'category_top_women' -> 'department: women'; an empty value ends in ': '."""
    column = _attribute_of(encoded)
    if column is None:
        return encoded
    label, value = ATTRIBUTES[column], encoded.removeprefix(column + "_")
    if column == "shipping":
        return f"{label}: {'yes' if value == '1' else 'no' if value == '0' else ''}"
    return f"{label}: {value}"


def _shown(value: str) -> str:
    value = " ".join(value.split())
    return value if len(value) <= MAX_SHOWN_CHARS else value[: MAX_SHOWN_CHARS - 1].rstrip() + "…"


def _size(effect: float) -> str:
    percent = abs(effect) * 100
    return "by less than 1%" if percent < 1 else f"by about {percent:.0f}%"


def _contains(tokens: list[str], gram: str) -> bool:
    """True when the n-gram is a run of consecutive tokens (a word or words of a brand or category)."""
    return bool(tokens) and f" {gram} " in f" {' '.join(tokens)} "


@dataclass(frozen=True)
class _Listing:
    """What the sentences name: the listing's own spelling of its brand, category, condition and shipping."""

    brand: str
    category: str
    condition: int
    shipping: int

    @classmethod
    def of(cls, clean: pd.DataFrame) -> _Listing:
        row = clean.iloc[0]
        return cls(
            brand=str(row["brand_name"]).strip(),
            category=str(row["category_name"]).strip(),
            condition=int(row["item_condition_id"]),
            shipping=int(row["shipping"]),
        )

    def feature(self, group: str, fields_brand: str, fields_category: str) -> str:
        if group == "brand":
            return f"brand: {fields_brand}"
        if group == "category":
            return f"category: {fields_category}"
        if group == "condition":
            return f"condition: {CONDITION_NAMES.get(self.condition, str(self.condition)).lower()}"
        return "shipping: free" if self.shipping == 1 else "shipping: buyer pays"

    def sentence(self, group: str, effect: float) -> str:
        verb = "raises" if effect > 0 else "lowers"
        if group == "brand":
            subject = f"The brand {_shown(self.brand)}"
        elif group == "category":
            path = " > ".join(part.strip() for part in self.category.split("/") if part.strip())
            subject = f"The category {_shown(path)}"
        elif group == "condition":
            subject = f"Condition '{CONDITION_NAMES.get(self.condition, str(self.condition))}'"
        elif self.shipping == 1:
            subject = "Free shipping (paid by the seller)"
        else:
            subject = "Shipping paid by the buyer"
        return f"{subject} {verb} the price {_size(effect)}"


def _word_sentence(gram: str, effect: float) -> str:
    several = " " in gram
    verb = ("raise" if several else "raises") if effect > 0 else ("lower" if several else "lowers")
    return f"The {'words' if several else 'word'} '{_shown(gram)}' {verb} the price {_size(effect)}"


class Explainer:
    """Per-listing reasons from a SparseTextEnsemble's Ridge component."""

    def __init__(self, builder: SparseFeatureBuilder, coef: np.ndarray) -> None:
        """Keep the feature builder and the effective (blend-weighted) Ridge coefficients.

        Args:
            builder: The fitted feature builder of the model.
            coef: The Ridge coefficient of each design-matrix column.
        """
        self.builder = builder
        self.coef = coef
        self.note = NOTE
        self.n_name = int(builder.name_tfidf_.columns_.size)
        self.n_text = int(builder.text_tfidf_.columns_.size)
        names = [str(n) for n in builder.one_hot_.get_feature_names_out()]
        self.one_hot_names = [_attribute_label(n) for n in names]
        self.one_hot_groups = [
            _GROUP_OF_ATTRIBUTE.get(attribute) if attribute else None
            for attribute in (_attribute_of(n) for n in names)
        ]

    @classmethod
    def for_model(cls, model: LogPriceModel) -> Explainer | None:
        """An explainer when the model has a sparse feature builder and a Ridge component, else None."""
        builder = getattr(model, "builder_", None)
        components = getattr(model, "components_", None)
        if not isinstance(builder, SparseFeatureBuilder) or not isinstance(components, dict):
            return None
        ridge = components.get("ridge")
        if not isinstance(ridge, Ridge):
            return None
        return cls(builder, np.asarray(ridge.coef_, dtype=np.float64).ravel())

    def explain(self, listing: pd.DataFrame, top: int = 5) -> Reasons:
        """The strongest reasons up and down for the first listing of a frame, one per word or detail.

        Args:
            listing: A one-row frame of raw listing fields.
            top: How many reasons to return in each direction.

        Returns:
            Reasons with relative price effects and their sentences.
        """
        clean = clean_input(listing.head(1))
        row = sp.csr_matrix(self.builder.transform(clean))
        contribution = dict(
            zip(row.indices.tolist(), (row.data * self.coef[row.indices]).tolist(), strict=True)
        )
        # The builder's own documents, so the words hash exactly as they did in training.
        fields = listing_fields(clean)
        name_docs, text_docs = SparseFeatureBuilder.documents(fields)
        brand, category = fields.brand[0], fields.category[0]
        analyzer = self.builder.text_tfidf_.analyzer()
        brand_tokens = [g for g in analyzer(brand) if " " not in g] if brand else []
        category_tokens = (
            [g for g in analyzer(category.replace("/", " ")) if " " not in g] if category else []
        )
        # N-grams the title and description carry on their own; the others are there only because a brand or
        # category was given (the category path is part of the text, and n-grams span the joins).
        own = set(analyzer(fields.name[0])) | set(analyzer(fields.description[0]))
        log_effects: dict[str, float] = {}
        for tfidf, doc, offset in (
            (self.builder.name_tfidf_, name_docs[0], 0),
            (self.builder.text_tfidf_, text_docs[0], self.n_name),
        ):
            grams = list(dict.fromkeys(tfidf.analyzer()(doc)))
            for gram, column in zip(grams, _columns_of(tfidf, grams).tolist(), strict=True):
                if column < 0:
                    continue
                value = contribution.pop(offset + column, 0.0)
                key = self._group_of_gram(gram, own, brand_tokens, category_tokens)
                log_effects[key] = log_effects.get(key, 0.0) + value
        start = self.n_name + self.n_text
        present = {"brand": bool(brand), "category": bool(category), "condition": True, "shipping": True}
        for column, value in contribution.items():
            if column >= start and column - start < len(self.one_hot_groups):
                group = self.one_hot_groups[column - start]
                # An empty brand or category says nothing about this listing.
                if group is not None and present[group]:
                    log_effects["\0" + group] = log_effects.get("\0" + group, 0.0) + value
        shown = _Listing.of(clean)
        reasons = []
        for key, log_effect in log_effects.items():
            if log_effect == 0.0:
                continue
            effect = float(np.expm1(log_effect))
            if key.startswith("\0"):
                group = key[1:]
                feature = shown.feature(group, brand, category)
                reasons.append(PriceReason(feature, effect, shown.sentence(group, effect)))
            else:
                reasons.append(PriceReason(key, effect, _word_sentence(key, effect)))
        reasons.sort(key=lambda r: r.effect)
        down = [r for r in reasons[:top] if r.effect < 0]
        up = [r for r in reversed(reasons[-top:]) if r.effect > 0]
        return Reasons(up=up, down=down)

    @staticmethod
    def _group_of_gram(gram: str, own: set[str], brand_tokens: list[str], category_tokens: list[str]) -> str:
        """The reason an n-gram belongs to: '\\0brand', '\\0category', or the n-gram itself (a word reason)."""
        if _contains(brand_tokens, gram):
            return "\0brand"
        if gram in own:
            return gram
        words = gram.split(" ")
        if _contains(category_tokens, gram) or any(w in category_tokens for w in words):
            return "\0category"
        if any(w in brand_tokens for w in words):
            return "\0brand"
        return gram
