"""Forms of the study pages, and `study_input`: the one place a study's filing input is built, from
the page's form or the API's payload (federation.api.StudyInputSerializer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from federation.models import DropoutPolicy, ModelFamily, Site
from federation.services import StudyInput


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
    # Not required, like the API's field: a post without it files the default family.
    model_family = forms.ChoiceField(
        choices=ModelFamily.choices, initial=ModelFamily.LOGISTIC_REGRESSION, required=False
    )

    def __init__(self, *args: Any, sites: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if sites is not None:
            self.fields["sites"].queryset = sites  # type: ignore[attr-defined]


def study_input(data: Mapping[str, Any]) -> StudyInput:
    """The StudyInput of validated filing data: a StudyForm's cleaned_data or a
    StudyInputSerializer's validated_data (the same keys). `sites` are Site rows or their ids;
    `features` is a list or one comma-separated string; no model family (the page's field left
    empty) is the default family."""
    features = data["features"]
    if isinstance(features, str):
        features = features.split(",")
    return StudyInput(
        title=data["title"],
        purpose=data["purpose"],
        site_ids=[getattr(site, "pk", site) for site in data["sites"]],
        features=[str(f).strip() for f in features if str(f).strip()],
        target=str(data["target"]).strip(),
        rounds=data["rounds"],
        min_sites=data["min_sites"],
        local_epochs=data["local_epochs"],
        learning_rate=data["learning_rate"],
        clipping_norm=data["clipping_norm"],
        noise_multiplier=data["noise_multiplier"],
        delta=data["delta"],
        secure_aggregation=data["secure_aggregation"],
        dropout_policy=data["dropout_policy"],
        model_family=data.get("model_family") or ModelFamily.LOGISTIC_REGRESSION,
    )


class StudyDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Refuse")])
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=5000)
