from __future__ import annotations

from typing import Any

from django import forms

from approvals.choices import Audience, DecisionKind, Fidelity, PurposeCategory, RequestKind
from approvals.policies.loader import MAX_SOURCE_CHARS
from approvals.services.tiering import MAX_ROWS
from generation.modeling import MODEL_FAMILIES
from generation.models import SourceDataset
from generation.selectors import synthesizable_columns
from generation.synthesizers import EXTERNAL_UPLOAD, EXTERNAL_UPLOAD_LABEL, REGISTRY
from generation.synthesizers.sdv_backend import DISTRIBUTIONS as COPULA_DISTRIBUTIONS

DEFAULT_SYNTHESIZER = "gaussian_copula"
# Candidate rows in the browser form (the API takes up to the policy's max_candidates).
CANDIDATE_ROWS = 4


# The kinds filed on this form (a federated study is proposed from the federation pages).
FORM_KINDS = [
    (RequestKind.SYNTHETIC_TABLE, RequestKind.SYNTHETIC_TABLE.label),
    (RequestKind.DP_MODEL, RequestKind.DP_MODEL.label),
]


class RequestForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=SourceDataset.objects.none(), empty_label="Choose a dataset")
    kind = forms.ChoiceField(
        label="What you ask for",
        choices=FORM_KINDS,
        # Optional, so posts written before kinds existed still file a synthetic table.
        required=False,
        initial=RequestKind.SYNTHETIC_TABLE,
        help_text="A synthetic table, or a differentially private model trained on the dataset's declared "
        "outcome. It cannot be changed once filed.",
    )
    title = forms.CharField(max_length=200)
    purpose_category = forms.ChoiceField(
        label="Category of use", choices=PurposeCategory.choices, initial=PurposeCategory.RESEARCH
    )
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
    fidelity = forms.ChoiceField(
        choices=Fidelity.choices,
        initial=Fidelity.MEDIUM,
        help_text="How closely the synthetic table must match the source. Higher is riskier.",
    )
    synthesizer = forms.ChoiceField(
        choices=[], initial=DEFAULT_SYNTHESIZER, help_text="Synthetic tables only."
    )
    rows = forms.IntegerField(
        min_value=1, max_value=MAX_ROWS, initial=1000, required=False, help_text="Synthetic tables only."
    )
    model_family = forms.ChoiceField(
        label="Model family",
        required=False,
        choices=[("", "(choose for a DP model)")] + [(name, f.label) for name, f in MODEL_FAMILIES.items()],
        help_text="DP models only. Its privacy parameters (bounds, norms, classes) come from the data "
        "steward's declarations; you choose only epsilon.",
    )
    target = forms.ChoiceField(
        label="Target (outcome)",
        required=False,
        choices=[("", "(choose for a DP model)")],
        help_text="DP models only: the dataset's declared outcome. The columns ticked above are the "
        "model's features; do not tick the target.",
    )
    epsilon = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=12,
        decimal_places=6,
        help_text="Only for DP synthesizers (named dp_*); leave empty otherwise.",
    )
    # Text, so 1e-9 can be typed as such; the service parses it exactly.
    delta = forms.CharField(
        required=False,
        max_length=40,
        help_text="Only for (epsilon, delta) synthesizers (dp_mst, dp_aim) and the DP-SGD model "
        "(dp_sgd_mlp); empty means 1e-9. "
        "Pure DP synthesizers such as dp_copula spend no delta: leave it empty.",
    )
    # Synthesizer options (each synthesizer refuses the ones it does not take, with a message).
    epochs = forms.IntegerField(
        label="Training epochs",
        required=False,
        min_value=1,
        help_text="ctgan and tvae only; empty means scaled to the table. Training also stops at the "
        "tier's time budget.",
    )
    batch_size = forms.IntegerField(
        label="Training batch size",
        required=False,
        min_value=1,
        help_text="ctgan and tvae only (ctgan: a multiple of 10); empty means about a tenth of the rows.",
    )
    distribution = forms.ChoiceField(
        label="Marginal distributions",
        required=False,
        choices=[("", "Default (empirical)")] + [(d, d) for d in COPULA_DISTRIBUTIONS],
        help_text="gaussian_copula only: how each numeric column's distribution is modelled.",
    )

    bakeoff = forms.ChoiceField(
        label="Bake-off",
        required=False,
        choices=[
            ("", "No: use the synthesizer above"),
            ("auto", "Auto: the default candidates (no epsilon spent)"),
            ("custom", "Yes: the candidates below"),
        ],
        help_text="Fit several candidates, compare them on a privacy x utility plot and publish the "
        "best one that passes the gate. Each DP candidate reserves its own epsilon at approval.",
    )

    def __init__(self, *args: Any, datasets: Any, dataset: SourceDataset | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
        # The fast, robust default first; then DP ones (which need an epsilon); then the deep models.
        order = sorted(REGISTRY, key=lambda n: (n != DEFAULT_SYNTHESIZER, not REGISTRY[n].is_dp, n))
        self.fields["synthesizer"].choices = [(name, REGISTRY[name].label) for name in order] + [
            (EXTERNAL_UPLOAD, EXTERNAL_UPLOAD_LABEL)
        ]
        for n in range(1, CANDIDATE_ROWS + 1):
            self.fields[f"candidate_{n}_synthesizer"] = forms.ChoiceField(
                label=f"Candidate {n}: synthesizer",
                required=False,
                choices=[("", "(none)")] + [(name, REGISTRY[name].label) for name in order],
            )
            self.fields[f"candidate_{n}_epsilon"] = forms.DecimalField(
                label=f"Candidate {n}: epsilon",
                required=False,
                min_value=0,
                max_digits=12,
                decimal_places=6,
                help_text="DP synthesizers only." if n == 1 else "",
            )
            self.fields[f"candidate_{n}_options"] = forms.CharField(
                label=f"Candidate {n}: options",
                required=False,
                max_length=500,
                help_text="Optional, as name=value pairs separated by commas, e.g. epochs=200, "
                "batch_size=100 (ctgan, tvae) or distribution=truncnorm (gaussian_copula)."
                if n == 1
                else "",
            )
        if dataset is not None:
            self.fields["columns"].choices = [
                (c.name, f"{c.name} ({c.get_classification_display().lower()})")
                for c in synthesizable_columns(dataset=dataset)
            ]
            self.fields["target"].choices = [("", "(choose for a DP model)")] + [
                (c.name, c.name) for c in synthesizable_columns(dataset=dataset)
            ]

    def is_model(self) -> bool:
        return self.cleaned_data.get("kind") == RequestKind.DP_MODEL

    def request_data(self) -> dict[str, Any]:
        """The cleaned fields as approvals.services.RequestInput.from_data takes them (the API's
        serializer gives the same names). The page always posts a synthesizer and its epsilon;
        for a bake-off those belong to the candidates, so they are left empty here."""
        data = {**self.cleaned_data, "candidates": self.candidates()}
        data["kind"] = data.get("kind") or RequestKind.SYNTHETIC_TABLE
        if self.is_model():
            # The model family is the request's `synthesizer`; a model takes no rows, bake-off or
            # synthesizer options (the family's defaults apply), and a delta only when the family
            # is (epsilon, delta)-DP (dp_sgd_mlp; empty means the default 1e-9).
            family = MODEL_FAMILIES.get(data.get("model_family") or "")
            delta = (data.get("delta") or None) if family is not None and family.uses_delta else None
            model = {"synthesizer": data.get("model_family") or "", "rows": None, "delta": delta}
            return {**data, **model, "candidates": None, "options": None}
        data["target"] = ""
        if data["candidates"]:
            return {**data, "synthesizer": "", "epsilon": None, "delta": None, "options": None}
        return {**data, "delta": data.get("delta") or None, "options": self.options()}

    def options(self) -> dict[str, Any]:
        """The single synthesizer's options the requester filled in (validated by the service)."""
        data = self.cleaned_data
        given = {"epochs": data.get("epochs"), "batch_size": data.get("batch_size")}
        given["distribution"] = data.get("distribution") or None
        return {key: value for key, value in given.items() if value not in (None, "")}

    def candidates(self) -> Any:
        """What the bake-off fields ask for: None (no bake-off), "auto", or the candidate list."""
        choice = self.cleaned_data.get("bakeoff")
        if choice == "auto":
            return "auto"
        if choice != "custom":
            return None
        return [
            {
                "synthesizer": self.cleaned_data[f"candidate_{n}_synthesizer"],
                "epsilon": self.cleaned_data.get(f"candidate_{n}_epsilon"),
                "options": self.cleaned_data.get(f"candidate_{n}_options") or {},
            }
            for n in range(1, CANDIDATE_ROWS + 1)
            if self.cleaned_data.get(f"candidate_{n}_synthesizer")
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if (
            cleaned.get("kind") != RequestKind.DP_MODEL
            and cleaned.get("rows") is None
            and "rows" not in self.errors
        ):
            self.add_error("rows", "This field is required.")
        for n in range(1, CANDIDATE_ROWS + 1):
            key = f"candidate_{n}_options"
            if key in cleaned:
                try:
                    cleaned[key] = parse_option_pairs(cleaned[key])
                except ValueError as exc:
                    self.add_error(key, str(exc))
        return cleaned


def parse_option_pairs(text: str) -> dict[str, Any]:
    """`epochs=200, batch_size=100` as {"epochs": 200, "batch_size": 100}: whole numbers as ints,
    true/false as booleans, anything else as text. Which names and values a synthesizer takes is
    checked by the synthesizer itself when the request is filed."""
    options: dict[str, Any] = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        name, sep, value = (x.strip() for x in part.partition("="))
        if not sep or not name or not value or not name.replace("_", "").isalnum():
            raise ValueError("Write options as name=value pairs separated by commas, e.g. epochs=200.")
        if value.lower() in ("true", "false"):
            options[name] = value.lower() == "true"
        elif value.lstrip("-").isdigit():
            options[name] = int(value)
        else:
            options[name] = value
    return options


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=DecisionKind.choices, widget=forms.RadioSelect)
    comment = forms.CharField(
        widget=forms.Textarea,
        required=False,
        max_length=5000,
        help_text="Required when rejecting or requesting changes.",
    )
    conditions = forms.CharField(
        label="Conditions of use (optional)",
        widget=forms.Textarea,
        required=False,
        max_length=5000,
        help_text="Optional, with an approval: conditions the release must be used under. Shown on the release.",
    )


class PolicyDraftForm(forms.Form):
    source = forms.CharField(
        label="Rules (YAML)",
        widget=forms.Textarea(attrs={"rows": 30, "spellcheck": "false", "class": "code"}),
        max_length=MAX_SOURCE_CHARS,
        strip=False,
    )
    notes = forms.CharField(
        label="What changed and why",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=2000,
    )
    base = forms.IntegerField(widget=forms.HiddenInput, required=False)


class SyntheticUploadForm(forms.Form):
    file = forms.FileField(
        label="Synthetic file (CSV or Parquet)",
        help_text="Exactly the request's columns, at most the approved number of rows. It is published "
        "only if it passes the release gate.",
    )


class GateOverrideForm(forms.Form):
    justification = forms.CharField(
        label="Justification",
        widget=forms.Textarea,
        min_length=40,
        max_length=5000,
        help_text="Why this release is safe and useful enough despite the failed checks (at least 40 "
        "characters). A second privacy officer must approve it; both are audited.",
    )


class GateOverrideDecisionForm(forms.Form):
    comment = forms.CharField(
        label="Comment",
        widget=forms.Textarea,
        required=False,
        max_length=5000,
        help_text="Required when declining.",
    )


class RetryAskForm(forms.Form):
    reason = forms.CharField(
        label="Why a retry (optional)",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=5000,
        help_text="For the privacy officer who decides. Nothing is spent until they approve.",
    )


class RetryDecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("approve", "Approve retry"), ("refuse", "Refuse retry")], widget=forms.RadioSelect
    )
    comment = forms.CharField(
        label="Comment",
        widget=forms.Textarea(attrs={"rows": 3}),
        min_length=20,
        max_length=5000,
        help_text="Required (at least 20 characters): why a new attempt is acceptable, or not. Audited.",
    )
