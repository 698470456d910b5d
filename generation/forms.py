from __future__ import annotations

from django import forms


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="Re-using a name registers a new version.")
    description = forms.CharField(widget=forms.Textarea, required=False)
    file = forms.FileField(label="CSV file", help_text="A comma-separated table with a header row.")
    epsilon_cap = forms.CharField(
        label="Privacy budget (epsilon cap)",
        max_length=40,
        help_text="Total epsilon all DP releases of this dataset may spend, for example 3.0.",
    )
