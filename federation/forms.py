from __future__ import annotations

from typing import Any

from django import forms

from federation.models import DropoutPolicy, Site


class StudyForm(forms.Form):
    title = forms.CharField(max_length=200)
    purpose = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)
    sites = forms.ModelMultipleChoiceField(queryset=Site.objects.none(), widget=forms.CheckboxSelectMultiple)
    features = forms.CharField(help_text="Column names, separated by commas.", max_length=4000)
    target = forms.CharField(max_length=255, help_text="A declared two-category column.")
    rounds = forms.IntegerField(min_value=1, max_value=200, initial=5)
    min_sites = forms.IntegerField(min_value=2, max_value=20, initial=2)
    local_epochs = forms.IntegerField(min_value=1, max_value=50, initial=1)
    learning_rate = forms.FloatField(min_value=1e-6, max_value=10.0, initial=0.1)
    clipping_norm = forms.FloatField(
        min_value=1e-6, initial=1.0, help_text="Each site's update is clipped to this L2 norm."
    )
    noise_multiplier = forms.FloatField(
        min_value=0.0,
        initial=1.0,
        help_text="Noise per round in units of the clipping norm; 0 turns client-level DP off (the unit is a site).",
    )
    delta = forms.CharField(initial="1e-8", max_length=32)
    secure_aggregation = forms.BooleanField(required=False, initial=True)
    dropout_policy = forms.ChoiceField(choices=DropoutPolicy.choices, initial=DropoutPolicy.QUORUM)

    def __init__(self, *args: Any, sites: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if sites is not None:
            self.fields["sites"].queryset = sites  # type: ignore[attr-defined]


class StudyDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Refuse")])
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=5000)
