from __future__ import annotations

import re
from typing import Any

from django import forms

from generation.choices import Classification, ColumnKind
from generation.intake import DELIMITERS
from generation.policies import MAX_DECIMALS, MIN_POPULATION_REASON, DeclarationSource, declaration_source


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="Re-using a name registers a new version.")
    description = forms.CharField(widget=forms.Textarea, required=False)
    file = forms.FileField(
        label="Data file", help_text="CSV (comma, semicolon, tab or pipe separated) or Parquet."
    )
    epsilon_cap = forms.CharField(
        label="Privacy budget (epsilon cap)",
        max_length=64,
        help_text="Total epsilon all DP releases of this dataset may spend, for example 3.0. A new version "
        "of a registered name spends from the first version's budget instead, unless you declare a "
        "disjoint population below.",
    )
    encoding = forms.ChoiceField(
        required=False,
        choices=[("", "Detect"), ("utf-8", "UTF-8"), ("utf-8-sig", "UTF-8 with BOM"), ("latin-1", "Latin-1")],
    )
    delimiter = forms.ChoiceField(
        required=False, choices=[("", "Detect")] + [(d, {"\t": "tab"}.get(d, d)) for d in DELIMITERS]
    )
    disjoint_population = forms.BooleanField(
        required=False,
        label="This version holds a disjoint population",
        help_text="Tick only if no person in this file is in an earlier version of the name: it then gets a "
        "budget of its own. Otherwise it shares the earlier versions' budget.",
    )
    population_reason = forms.CharField(
        required=False,
        label="Why the population is disjoint",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=f"At least {MIN_POPULATION_REASON} characters, for example which sites or years it covers. "
        "Do not name patients.",
    )


_TRI_STATE = [("", "Not declared"), ("yes", "Yes"), ("no", "No")]


class ColumnReviewForm(forms.Form):
    """One column's classification and declared public domain.

    A profile suggestion (read from the data) is never an initial value: the inputs start empty
    and the page shows the suggestion beside them, marked as read from the data. Whatever the
    steward enters becomes the steward's declaration.
    """

    classification = forms.ChoiceField(choices=Classification.choices)
    kind = forms.ChoiceField(choices=ColumnKind.choices, label="Kind")
    integer = forms.BooleanField(required=False, label="Whole numbers only")
    lower = forms.CharField(required=False, label="Lower bound")
    upper = forms.CharField(required=False, label="Upper bound")
    categories = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="One per line."
    )
    unit = forms.CharField(required=False, max_length=40)
    nullable = forms.ChoiceField(required=False, choices=_TRI_STATE, label="Missing values allowed")
    decimals = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_DECIMALS,
        label="Decimals",
        help_text="How many decimals values are recorded to (2 for 3.62); releases are rounded to it.",
    )
    allowed_values = forms.CharField(
        required=False,
        label="Allowed values",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Scores and codes only: every value the column can take (for example 3 to 15 for a "
        "coma score), separated by commas or new lines; releases use only these.",
    )
    outcome = forms.BooleanField(required=False, label="Outcome (for the train-on-synthetic test)")

    def __init__(self, *args: Any, column: Any, **kwargs: Any) -> None:
        declared = column.declared
        suggested = declaration_source(declared) == DeclarationSource.PROFILE_SUGGESTION
        shown = {} if suggested else declared
        initial = {
            "classification": column.classification,
            "kind": column.kind,
            "integer": bool(shown.get("integer")),
            "lower": "" if shown.get("lower") is None else shown["lower"],
            "upper": "" if shown.get("upper") is None else shown["upper"],
            "categories": "\n".join(shown.get("categories") or []),
            "unit": shown.get("unit", ""),
            "nullable": {True: "yes", False: "no"}.get(shown.get("nullable"), ""),
            "decimals": "" if shown.get("decimals") is None else shown["decimals"],
            "allowed_values": ", ".join(_number_text(v) for v in shown.get("allowed_values") or []),
            "outcome": bool(declared.get("outcome")),
        }
        super().__init__(*args, initial=initial, **kwargs)
        self.column = column
        self.suggestion = declared if suggested else None
        if column.kind not in (ColumnKind.NUMERIC, ColumnKind.DATETIME):
            del self.fields["lower"], self.fields["upper"]
        if column.kind != ColumnKind.NUMERIC:
            del self.fields["integer"], self.fields["decimals"], self.fields["allowed_values"]
        if column.kind not in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            del self.fields["categories"]
        # Dates, free text and identifiers can never be two-valued; the service refuses them too.
        if column.kind not in (ColumnKind.BOOLEAN, ColumnKind.CATEGORICAL, ColumnKind.NUMERIC):
            del self.fields["outcome"]

    def change(self) -> dict[str, Any]:
        data = self.cleaned_data
        change: dict[str, Any] = {"name": self.column.name}
        for key in self.changed_data:
            if key == "categories":
                change[key] = [line.strip() for line in data[key].splitlines() if line.strip()]
            elif key == "nullable":
                if data[key]:
                    change[key] = data[key] == "yes"
            elif key == "allowed_values":
                change[key] = [item for item in re.split(r"[\s,;]+", data[key]) if item]
            else:
                change[key] = data[key]
        return change


def _number_text(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


class DomainEstimateForm(forms.Form):
    """Spend epsilon on DP bounds for one numeric or date column, inside a public search range."""

    column = forms.ChoiceField(label="Column")
    epsilon = forms.CharField(
        max_length=64, label="Epsilon to spend", help_text="Charged to this dataset's budget when queued."
    )
    lower = forms.CharField(
        label="Search from", required=False, help_text="Numeric/date: a wide public range, for example 0."
    )
    upper = forms.CharField(
        label="Search to", required=False, help_text="For example 200 (or a date, 2030-12-31)."
    )
    delta = forms.CharField(
        label="Delta (categories)",
        required=False,
        max_length=64,
        help_text="Categorical/boolean: DP category discovery is (epsilon, delta)-DP; default 1e-9.",
    )

    def __init__(self, *args: Any, columns: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["column"].choices = [
            (c.name, c.name)
            for c in columns
            if c.kind in (ColumnKind.NUMERIC, ColumnKind.DATETIME, ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)
        ]
