"""A fitted main model and one listing in, the words and attributes that moved its price up or down out.

The main model blends a Ridge regression with other components on shared sparse features. A linear model's
contribution per feature is exact (coefficient x feature value), so the reasons come from the Ridge component,
which is fitted to the same target on the same features (its blend weight can be small or zero, so it is used
unweighted: it explains the price level, not the blend); the hashed n-gram columns are mapped back to the
listing's own words by hashing them again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import Ridge

from pricewise.models.features.sparse import HashedTfidf, SparseFeatureBuilder
from pricewise.models.features.text import listing_fields
from pricewise.models.suggester import LogPriceModel, clean_input

NOTE = (
    "From the model's linear part, fitted on the same features: the effect of each word or attribute of this "
    "listing on the price, holding the rest fixed. The other parts of the model may weigh them differently."
)


@dataclass(frozen=True)
class Reasons:
    """Signed relative effects (0.1 = about +10 %), strongest first."""

    up: list[tuple[str, float]]
    down: list[tuple[str, float]]


def _columns_of(tfidf: HashedTfidf, grams: list[str]) -> np.ndarray:
    """Column of each n-gram in the fitted block, -1 when the n-gram's bucket was pruned."""
    if not grams:
        return np.empty(0, dtype=np.int64)
    hasher = FeatureHasher(n_features=tfidf.hasher().n_features, input_type="string", alternate_sign=False)
    buckets = sp.csr_matrix(hasher.transform([[g] for g in grams])).indices
    return tfidf.columns_of(buckets)


ATTRIBUTES = {
    "category_top": "department",
    "category": "category",
    "brand": "brand",
    "condition": "condition",
    "shipping": "shipping paid by seller",
}


def _attribute_label(encoded: str) -> str:
    """'category_top_women' -> 'department: women'; an empty value ends in ': ' and is skipped later."""
    for column, label in ATTRIBUTES.items():  # longest prefixes first, so category_top wins over category
        if encoded.startswith(column + "_"):
            value = encoded.removeprefix(column + "_")
            if column == "shipping":
                return f"{label}: {'yes' if value == '1' else 'no' if value == '0' else ''}"
            return f"{label}: {value}"
    return encoded


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
        self.one_hot_names = [str(n).replace("_", ": ", 1) for n in builder.one_hot_.get_feature_names_out()]

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
        """The strongest reasons up and down for the first listing of a frame.

        Args:
            listing: A one-row frame of raw listing fields.
            top: How many reasons to return in each direction.

        Returns:
            Reasons with relative price effects.
        """
        clean = clean_input(listing.head(1))
        row = sp.csr_matrix(self.builder.transform(clean))
        contribution = dict(
            zip(row.indices.tolist(), (row.data * self.coef[row.indices]).tolist(), strict=True)
        )
        # The builder's own documents, so the words hash exactly as they did in training.
        name_docs, text_docs = SparseFeatureBuilder.documents(listing_fields(clean))
        name_doc, text_doc = name_docs[0], text_docs[0]
        effects: dict[str, float] = {}
        for tfidf, doc, offset in (
            (self.builder.name_tfidf_, name_doc, 0),
            (self.builder.text_tfidf_, text_doc, self.n_name),
        ):
            grams = list(dict.fromkeys(tfidf.analyzer()(doc)))
            for gram, column in zip(grams, _columns_of(tfidf, grams).tolist(), strict=True):
                if column >= 0:
                    effects[gram] = effects.get(gram, 0.0) + contribution.pop(offset + column, 0.0)
        start = self.n_name + self.n_text
        for column, value in contribution.items():
            if column >= start and column - start < len(self.one_hot_names):
                label = self.one_hot_names[column - start]
                if not label.endswith(": "):  # an empty brand or category says nothing about this listing
                    effects[label] = effects.get(label, 0.0) + value
        ranked = sorted(
            ((k, float(np.expm1(v))) for k, v in effects.items() if v != 0.0), key=lambda kv: kv[1]
        )
        down = [kv for kv in ranked[:top] if kv[1] < 0]
        up = [kv for kv in reversed(ranked[-top:]) if kv[1] > 0]
        return Reasons(up=up, down=down)
