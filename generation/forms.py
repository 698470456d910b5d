from __future__ import annotations

from typing import Any

from django import forms

from generation.choices import Classification, ColumnKind
from generation.intake import DELIMITERS


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="Re-using a name registers a new version.")
    description = forms.CharField(widget=forms.Textarea, required=False)
    file = forms.FileField(
        label="Data file", help_text="CSV (comma, semicolon, tab or pipe separated) or Parquet."
    )
    epsilon_cap = forms.CharField(
        label="Privacy budget (epsilon cap)",
        max_length=64,
        help_text="Total epsilon all DP releases of this dataset may spend, for example 3.0.",
    )
    encoding = forms.ChoiceField(
        required=False,
        choices=[("", "Detect"), ("utf-8", "UTF-8"), ("utf-8-sig", "UTF-8 with BOM"), ("latin-1", "Latin-1")],
    )
    delimiter = forms.ChoiceField(
        required=False, choices=[("", "Detect")] + [(d, {"\t": "tab"}.get(d, d)) for d in DELIMITERS]
    )


class ColumnReviewForm(forms.Form):
    """One column's classification and declared public metadata."""

    classification = forms.ChoiceField(choices=Classification.choices)
    lower = forms.CharField(required=False, label="Lower bound")
    upper = forms.CharField(required=False, label="Upper bound")
    categories = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="One per line."
    )
    unit = forms.CharField(required=False, max_length=40)
    outcome = forms.BooleanField(required=False, label="Outcome (for the train-on-synthetic test)")

    def __init__(self, *args: Any, column: Any, **kwargs: Any) -> None:
        declared = column.declared
        initial = {
            "classification": column.classification,
            "lower": "" if declared.get("lower") is None else declared["lower"],
            "upper": "" if declared.get("upper") is None else declared["upper"],
            "categories": "\n".join(declared.get("categories") or []),
            "unit": declared.get("unit", ""),
            "outcome": bool(declared.get("outcome")),
        }
        super().__init__(*args, initial=initial, **kwargs)
        self.column = column
        if column.kind not in (ColumnKind.NUMERIC, ColumnKind.DATETIME):
            del self.fields["lower"], self.fields["upper"]
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
            else:
                change[key] = data[key]
        return change
