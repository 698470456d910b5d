"""Feature encoding from the steward's declarations only, and the filing-time refusals.

No statistic is learned from rows. The preprocessor is a scikit-learn ColumnTransformer "fitted" on
a small frame synthesised from the declarations (each numeric column takes exactly its declared lower
and upper bound, each categorical column its declared categories), so what it stores is the
declaration:

* numeric (and boolean, as 0/1): ``SimpleImputer(constant = declared midpoint)`` then
  ``MinMaxScaler(clip=True)`` with data_min_/data_max_ = the declared bounds, so values are clipped
  to [lower, upper] and scaled into [0, 1]; when the column may be missing (declared nullable, or not
  declared non-nullable) a ``MissingIndicator`` adds a 0/1 "<name> is missing" feature;
* categorical: ``OneHotEncoder(categories=[declared], handle_unknown="ignore")``: one 0/1 feature per
  declared category, an undeclared or missing value is all zeros.

Every encoded feature therefore lies in [0, 1], whatever the rows hold; that is what the privacy
parameters (generation.modeling.families) rest on.

The artifact's input contract (`model_input`): one column per feature, numeric and boolean columns
as numbers (booleans 0/1, missing NaN), categorical columns as the declared category strings
(anything else, missing included, as None). `model_input` reads any frame into that shape with the
same label rules as conformance and the release gate (generation.values).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from generation.choices import Classification, ColumnKind
from generation.policies import (
    DP_SAFE_SOURCES,
    DeclarationSource,
    declaration_source,
    declares_two_values,
)
from generation.values import as_labels, as_numbers

MAX_CATEGORIES = 200  # per categorical feature
MAX_ENCODED_FEATURES = 2000
_FEATURE_KINDS = (ColumnKind.NUMERIC, ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
_BOOLEAN_TEXT = {"true": "1", "false": "0", "yes": "1", "no": "0"}


# --- reading a column spec ---------------------------------------------------------------------


def declared_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A column spec's declared domain as one flat dict.

    Accepts both shapes in use: the flat snapshot jobs pin (`column_spec_snapshot`: lower, upper,
    categories, nullable, outcome, source at top level) and a spec with a nested `declared` dict.
    The nested dict wins for the domain fields; the source defaults to a profile suggestion.
    """
    flat = {k: v for k, v in spec.items() if k != "declared"}
    nested = spec.get("declared")
    if isinstance(nested, Mapping):
        flat.update(nested)
    flat["source"] = declaration_source(flat)
    return flat


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def declared_bounds(declared: Mapping[str, Any]) -> tuple[float, float] | None:
    """(lower, upper) when both are declared finite numbers with lower < upper, else None."""
    lower, upper = _number(declared.get("lower")), _number(declared.get("upper"))
    if lower is None or upper is None or not lower < upper:
        return None
    return lower, upper


def declared_categories(declared: Mapping[str, Any]) -> list[str]:
    categories = declared.get("categories")
    if not isinstance(categories, list | tuple):
        return []
    return [str(c) for c in categories]


def may_be_missing(declared: Mapping[str, Any]) -> bool:
    """Missing values are expected unless the steward declared the column non-nullable."""
    return declared.get("nullable", True) is not False


# --- filing-time refusals (no data) ------------------------------------------------------------


def _source_refusal(name: str, declared: Mapping[str, Any], role: str) -> str:
    if declared["source"] in DP_SAFE_SOURCES:
        return ""
    return (
        f"`{name}` ({role}): its declared domain was read from the data (a profile suggestion, not "
        "the steward's declaration), so a DP model may not use it: its bounds or categories would "
        f"change with the records. Ask the data steward to declare the domain of `{name}` (bounds "
        "for a number, the categories for a category) and sign the dataset off again, or run a DP "
        "domain estimate for it."
    )


def _target_refusals(name: str, spec: Mapping[str, Any]) -> list[str]:
    declared = declared_of(spec)
    kind = str(spec.get("kind") or "")
    found = []
    if not declared.get("outcome"):
        found.append(
            f"`{name}` is not the dataset's declared outcome; a DP model predicts the outcome the "
            "steward declared. Choose the declared outcome as the target, or ask the data steward "
            f"to declare `{name}` the outcome."
        )
    if spec.get("classification") == Classification.DIRECT_IDENTIFIER:
        found.append(f"`{name}` is classified as a direct identifier and cannot be a model's target.")
    if not declares_two_values(kind=kind, declared=declared):
        found.append(
            f"`{name}` cannot be the target: a DP model here predicts a column with exactly two "
            f"declared values, and the declared domain of `{name}` is not two values. Ask the data "
            "steward to declare exactly two categories for it (a yes/no column, or a whole-number "
            "column with bounds 0 and 1, also qualifies)."
        )
    source = _source_refusal(name, declared, "the target")
    if source:
        found.append(source)
    return found


def _feature_refusals(name: str, spec: Mapping[str, Any]) -> list[str]:
    declared = declared_of(spec)
    kind = str(spec.get("kind") or "")
    if spec.get("classification") == Classification.DIRECT_IDENTIFIER:
        return [f"`{name}` is classified as a direct identifier and is never used as a model feature."]
    if spec.get("entity"):
        return [f"`{name}` is the dataset's entity (patient id) column and cannot be a model feature."]
    if kind not in _FEATURE_KINDS:
        label = dict(ColumnKind.choices).get(kind, kind or "unknown")
        return [
            f"`{name}` is a {str(label).lower()} column; a DP model takes numeric, categorical and "
            f"yes/no features only. Remove `{name}` from the features."
        ]
    found = []
    source = _source_refusal(name, declared, "a feature")
    if source:
        found.append(source)
    if kind == ColumnKind.NUMERIC and declared_bounds(declared) is None:
        found.append(
            f"`{name}` has no declared range: a DP model needs the steward to declare its lower and "
            f"upper bound (with lower below upper) from public knowledge, never from the data. Ask "
            f"the data steward to declare the bounds of `{name}`, or remove it from the features."
        )
    if kind == ColumnKind.CATEGORICAL:
        categories = declared_categories(declared)
        if not categories:
            found.append(
                f"`{name}` has no declared categories: a DP model needs the steward to declare the "
                f"values `{name}` can take (from its definition or coding scheme). Ask the data "
                f"steward to declare them, or remove `{name}` from the features."
            )
        elif len(categories) > MAX_CATEGORIES:
            found.append(
                f"`{name}` declares {len(categories)} categories; a DP model takes at most "
                f"{MAX_CATEGORIES} per feature. Remove `{name}` from the features."
            )
        elif len(set(categories)) != len(categories):
            found.append(f"`{name}` declares the same category twice; ask the data steward to fix it.")
    return found


def model_declaration_refusals(
    *, family: str, target: str, features: list[str], column_specs: list[dict]
) -> list[str]:
    """Why this model cannot be trained on these declarations, as plain sentences ([] when it can).

    Reads the signed-off column specs only, never the data. Each sentence names the column and
    what to declare; none carries a value from the source.
    """
    from generation.modeling.families import MODEL_FAMILIES

    found: list[str] = []
    if family not in MODEL_FAMILIES:
        found.append(
            f"`{str(family)[:80]}` is not a model family; choose one of "
            f"{', '.join(f'`{n}`' for n in MODEL_FAMILIES)}."
        )
    by_name = {str(spec.get("name")): spec for spec in column_specs if isinstance(spec, Mapping)}
    features = list(features or [])
    if not target:
        found.append("Name the target column (the dataset's declared outcome).")
    elif target not in by_name:
        found.append(f"`{str(target)[:80]}` is not one of the request's signed-off columns.")
    else:
        found.extend(_target_refusals(target, by_name[target]))
    if not features:
        found.append("Name at least one feature column.")
    if target and target in features:
        found.append(
            f"`{target}` is the target and cannot also be a feature (the model would read the answer)."
        )
    repeated = sorted({name for name in features if features.count(name) > 1})
    if repeated:
        found.append(f"Name each feature once; {', '.join(f'`{n}`' for n in repeated)} repeated.")
    for name in dict.fromkeys(features):
        if name == target:
            continue
        if name not in by_name:
            found.append(f"`{str(name)[:80]}` is not one of the request's signed-off columns.")
            continue
        found.extend(_feature_refusals(name, by_name[name]))
    if not found:
        width = sum(len(f.names) for f in feature_encodings(features, column_specs))
        if width > MAX_ENCODED_FEATURES:
            found.append(
                f"The features encode to {width} model inputs; a DP model here takes at most "
                f"{MAX_ENCODED_FEATURES}. Remove some categorical features."
            )
    return found


# --- the encoding ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureEncoding:
    """How one declared column becomes encoded features."""

    name: str
    kind: str  # "number" (numeric and boolean) or "category"
    lower: float = 0.0
    upper: float = 1.0
    categories: tuple[str, ...] = ()
    nullable: bool = True
    boolean: bool = False
    source: str = DeclarationSource.STEWARD.value

    @property
    def names(self) -> list[str]:
        if self.kind == "category":
            return [f"{self.name}={c}" for c in self.categories]
        return [self.name, *([f"{self.name} is missing"] if self.nullable else [])]

    @property
    def midpoint(self) -> float:
        return (self.lower + self.upper) / 2


def feature_encodings(
    features: Sequence[str], column_specs: Iterable[Mapping[str, Any]]
) -> list[FeatureEncoding]:
    """The encodings of `features` (in order), from their declarations. Assumes no refusal."""
    by_name = {str(spec.get("name")): spec for spec in column_specs}
    found = []
    for name in features:
        spec = by_name[name]
        declared = declared_of(spec)
        nullable = may_be_missing(declared)
        if spec.get("kind") == ColumnKind.CATEGORICAL:
            found.append(
                FeatureEncoding(
                    name=name,
                    kind="category",
                    categories=tuple(declared_categories(declared)),
                    nullable=nullable,
                    source=declared["source"],
                )
            )
        elif spec.get("kind") == ColumnKind.BOOLEAN:
            found.append(
                FeatureEncoding(
                    name=name, kind="number", nullable=nullable, boolean=True, source=declared["source"]
                )
            )
        else:
            lower, upper = declared_bounds(declared) or (0.0, 1.0)
            found.append(
                FeatureEncoding(
                    name=name,
                    kind="number",
                    lower=lower,
                    upper=upper,
                    nullable=nullable,
                    source=declared["source"],
                )
            )
    return found


def declaration_frame(encodings: Sequence[FeatureEncoding]) -> pd.DataFrame:
    """A frame built from the declarations alone: each number column holds exactly its declared
    lower and upper bound, each category column its declared categories (cycled)."""
    rows = max([2, *(len(e.categories) for e in encodings)])
    columns: dict[str, Any] = {}
    for e in encodings:
        if e.kind == "category":
            columns[e.name] = pd.Series(
                [e.categories[i % len(e.categories)] for i in range(rows)], dtype=object
            )
        else:
            columns[e.name] = pd.Series(
                [e.lower if i % 2 == 0 else e.upper for i in range(rows)], dtype=float
            )
    return pd.DataFrame(columns)


def build_preprocessor(encodings: Sequence[FeatureEncoding]) -> Any:
    """The ColumnTransformer, fitted on the declaration frame only (see the module docstring)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    transformers: list[tuple[str, Any, list[str]]] = []
    for index, e in enumerate(encodings):
        if e.kind == "category":
            encoder = OneHotEncoder(
                categories=[list(e.categories)], handle_unknown="ignore", sparse_output=False, dtype=float
            )
            transformers.append((f"category_{index}", encoder, [e.name]))
            continue
        scale = Pipeline(
            [
                ("fill", SimpleImputer(strategy="constant", fill_value=e.midpoint)),
                ("scale", MinMaxScaler(clip=True)),
            ]
        )
        transformers.append((f"number_{index}", scale, [e.name]))
        if e.nullable:
            transformers.append((f"missing_{index}", MissingIndicator(features="all"), [e.name]))
    preprocessor = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    preprocessor.fit(declaration_frame(encodings))
    _check_declared(preprocessor, encodings)
    return preprocessor


def _check_declared(preprocessor: Any, encodings: Sequence[FeatureEncoding]) -> None:
    """The fitted preprocessor holds the declarations and nothing else (a guard on this module)."""
    for index, e in enumerate(encodings):
        if e.kind == "number":
            scaler = preprocessor.named_transformers_[f"number_{index}"].named_steps["scale"]
            if (float(scaler.data_min_[0]), float(scaler.data_max_[0])) != (e.lower, e.upper):
                raise RuntimeError(f"The encoder of `{e.name}` does not hold its declared bounds.")
    width = sum(len(e.names) for e in encodings)
    if preprocessor.transform(declaration_frame(encodings)).shape[1] != width:
        raise RuntimeError("The encoder's width does not match the declared features.")


# --- reading frames into the artifact's input shape --------------------------------------------


def _labels(series: pd.Series) -> pd.Series:
    """generation.values.as_labels, with yes/no and true/false text read as 1/0 too."""
    labels = as_labels(series)
    folded = labels.str.strip().str.lower().map(_BOOLEAN_TEXT)
    return folded.where(folded.notna(), labels)


def model_input(frame: pd.DataFrame, encodings: Sequence[FeatureEncoding]) -> pd.DataFrame:
    """`frame` in the artifact's input shape (module docstring). Columns absent from `frame` are
    read as missing."""
    index = frame.index
    columns: dict[str, pd.Series] = {}
    for e in encodings:
        values = (
            frame[e.name] if e.name in frame else pd.Series([None] * len(index), index=index, dtype=object)
        )
        if e.kind == "category":
            by_label = dict(
                zip(as_labels(pd.Series(list(e.categories), dtype=object)), e.categories, strict=True)
            )
            columns[e.name] = as_labels(values).map(by_label).astype(object).where(lambda s: s.notna(), None)
        elif e.boolean:
            columns[e.name] = pd.to_numeric(_labels(values).map({"1": 1.0, "0": 0.0}), errors="coerce")
        else:
            columns[e.name] = as_numbers(values, "numeric")
    return pd.DataFrame(columns, index=index)


# --- the target --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetEncoding:
    """The declared outcome's two values, as labels; `positive` is the class predicted as 1."""

    name: str
    negative: str
    positive: str
    source: str

    def labels(self, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(y as 0/1, mask of rows whose target is one of the two declared values)."""
        labels = _labels(values)
        positive = (labels == self.positive).to_numpy()
        known = positive | (labels == self.negative).to_numpy()
        return positive.astype(int), known


def target_encoding(target: str, column_specs: Iterable[Mapping[str, Any]]) -> TargetEncoding:
    """The declared positive class: the second declared category, or 1/True."""
    spec = next(s for s in column_specs if str(s.get("name")) == target)
    declared = declared_of(spec)
    categories = declared_categories(declared)
    if categories:
        negative, positive = _labels(pd.Series(categories, dtype=object)).tolist()
    else:
        negative, positive = "0", "1"
    return TargetEncoding(name=target, negative=negative, positive=positive, source=declared["source"])
