from __future__ import annotations

from typing import Any

from django import forms

from approvals.choices import Audience, DecisionKind
from generation.models import SourceDataset
from generation.synthesizers import REGISTRY


class RequestForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=SourceDataset.objects.none(), empty_label="Choose a dataset")
    title = forms.CharField(max_length=200)
    purpose = forms.CharField(widget=forms.Textarea, help_text="The question this data will help answer.")
    intended_use = forms.CharField(
        label="Intended use",
        widget=forms.Textarea,
        help_text="What you will do with the synthetic table, and where.",
    )
    audience = forms.ChoiceField(choices=Audience.choices)
    columns = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        choices=[],
        help_text="Only the columns your purpose needs (minimum necessary).",
    )
    synthesizer = forms.ChoiceField(choices=[])
    rows = forms.IntegerField(min_value=1, max_value=1_000_000, initial=1000)
    epsilon = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=12,
        decimal_places=6,
        help_text="Only for DP synthesizers (named dp_*); leave empty otherwise.",
    )

    def __init__(self, *args: Any, datasets: Any, dataset: SourceDataset | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
        self.fields["synthesizer"].choices = [(name, cls.label) for name, cls in sorted(REGISTRY.items())]
        if dataset is not None:
            self.fields["columns"].choices = [
                (c.name, f"{c.name} ({c.get_classification_display().lower()})")
                for c in dataset.columns.exclude(classification="direct_identifier").order_by("position")
            ]


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=DecisionKind.choices, widget=forms.RadioSelect)
    comment = forms.CharField(
        widget=forms.Textarea, required=False, help_text="Required when rejecting or requesting changes."
    )
