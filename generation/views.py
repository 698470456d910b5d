from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import Conflict, DomainError, ValidationFailed
from core.ids import parse_uuid
from core.pagination import page_of
from core.roles import MANAGES_DATASETS, has_role
from core.views import domain_errors_as_messages
from generation.charts import budget_figure, category_figure, histogram_figure
from generation.choices import ColumnKind, DatasetStatus
from generation.forms import ColumnReviewForm, DatasetUploadForm, DomainEstimateForm
from generation.policies import declaration_warnings, sees_exact_figures
from generation.selectors import (
    budget_totals,
    column_figures,
    dataset_columns,
    dataset_figures,
    dataset_list_rows,
    datasets_filter,
    datasets_visible_to,
    declared_visible_to,
    ledger_entries_visible_to,
    loaded_ledger_owner,
)
from generation.services import dataset_register, dataset_sign_off, dataset_update_columns
from generation.services.budget import format_delta, format_epsilon
from generation.services.datasets import dataset_request_domain_estimate
from generation.services.stewards import dataset_get_for_steward
from generation.uploads import upload_was_too_large


class DatasetFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=120, label="Name contains")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *DatasetStatus.choices])
    signed_off = forms.NullBooleanField(
        required=False,
        label="Classification",
        widget=forms.Select(choices=[("", "Any"), ("true", "Signed off"), ("false", "Never signed off")]),
    )
    created_from = forms.DateField(
        required=False, label="Registered from (UTC)", widget=forms.DateInput(attrs={"type": "date"})
    )
    created_to = forms.DateField(
        required=False, label="Registered to (UTC)", widget=forms.DateInput(attrs={"type": "date"})
    )

    def filters(self) -> dict[str, Any]:
        """The valid filters only: one malformed date should not empty the page."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {name: value for name, value in cleaned.items() if value not in (None, "")}


def dataset_list(request: HttpRequest) -> HttpResponse:
    form = DatasetFilterForm(request.GET)
    filters = form.filters()
    visible = datasets_filter(datasets_visible_to(user=request.user), **filters)
    # One page, its ledger owners joined and column counts annotated: constant queries per page.
    page = page_of(request, dataset_list_rows(visible))
    rows = [
        (
            d,
            dataset_figures(user=request.user, dataset=d),
            budget_totals(dataset=d, owner=loaded_ledger_owner(d)),
        )
        for d in page
    ]
    context = {
        "rows": rows,
        "page": page,
        "form": form,
        "filtered": bool(filters),
        "can_upload": has_role(request.user, *MANAGES_DATASETS),
    }
    return render(request, "generation/dataset_list.html", context)


def dataset_upload(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, *MANAGES_DATASETS):
        raise Http404
    form = DatasetUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and upload_was_too_large(request):
        form.add_error("file", "The file is larger than the upload limit; upload a smaller extract.")
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            dataset = dataset_register(
                actor=request.user,
                name=data["name"],
                uploaded_file=data["file"],
                epsilon_cap=data["epsilon_cap"],
                description=data["description"],
                encoding=data["encoding"] or None,
                delimiter=data["delimiter"] or None,
                disjoint_population=data["disjoint_population"],
                population_reason=data["population_reason"],
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            shared = " It shares the privacy budget of earlier versions." if dataset.population_id else ""
            messages.success(
                request,
                f"Registered {dataset} with {dataset.rows} rows.{shared} Review the column "
                "classification below, then sign it off.",
            )
            return redirect("generation:dataset-review", dataset.pk)
    return render(request, "generation/dataset_upload.html", {"form": form})


def _dataset_or_404(request: HttpRequest, dataset_id: str) -> Any:
    dataset = datasets_visible_to(user=request.user).filter(pk=parse_uuid(dataset_id)).first()
    if dataset is None:
        raise Http404
    return dataset


def dataset_detail(request: HttpRequest, dataset_id: str) -> HttpResponse:
    dataset = _dataset_or_404(request, dataset_id)
    custodian = sees_exact_figures(request.user)
    columns = list(dataset_columns(dataset=dataset))
    charts = _charts(columns) if custodian else []
    others = datasets_visible_to(user=request.user).filter(name=dataset.name).exclude(pk=dataset.pk)
    context = {
        "dataset": dataset,
        "figures": dataset_figures(user=request.user, dataset=dataset),
        "budget": budget_totals(dataset=dataset),
        "columns": [
            (
                c,
                column_figures(user=request.user, column=c),
                declared_visible_to(user=request.user, column=c),
            )
            for c in columns
        ],
        "custodian": custodian,
        "charts": charts,
        "k": settings.SYNTHGATE_SMALL_CELL_K,
        "versions": dataset.classification_versions.all()[:10],
        "other_versions": [(d, dataset_figures(user=request.user, dataset=d)) for d in others],
        "is_steward": has_role(request.user, *MANAGES_DATASETS),
    }
    return render(request, "generation/dataset_detail.html", context)


def _charts(columns: list[Any]) -> list[tuple[str, Any]]:
    k = settings.SYNTHGATE_SMALL_CELL_K
    charts = []
    for i, column in enumerate(columns):
        if column.kind == ColumnKind.NUMERIC and column.stats.get("histogram"):
            charts.append((f"hist-{i}", histogram_figure(column.name, column.stats["histogram"], k)))
        elif column.stats.get("top"):
            charts.append((f"cat-{i}", category_figure(column.name, column.stats["top"])))
    return charts


def dataset_review(request: HttpRequest, dataset_id: str) -> HttpResponse:
    dataset = _dataset_or_404(request, dataset_id)
    if not has_role(request.user, *MANAGES_DATASETS):
        raise Http404
    columns = list(dataset_columns(dataset=dataset))
    forms = _column_forms(request, columns)
    if request.method == "POST" and all(f.is_valid() for f in forms):
        try:
            _save_review(request, dataset, forms)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Saved. Sign off when every column is right.")
            return redirect("generation:dataset-review", dataset.pk)
    entity = request.POST.get("entity_column") if request.method == "POST" else None
    return render(request, "generation/dataset_review.html", _review_context(dataset, columns, forms, entity))


def _column_forms(request: HttpRequest, columns: list[Any]) -> list[ColumnReviewForm]:
    data = (request.POST or None) if request.method == "POST" else None
    return [ColumnReviewForm(data, column=c, prefix=f"c{i}") for i, c in enumerate(columns)]


def _save_review(request: HttpRequest, dataset: Any, forms: list[ColumnReviewForm]) -> None:
    """Write the review form's edits (valid forms only): changed columns and the entity column."""
    dataset_update_columns(
        actor=request.user,
        dataset_id=dataset.pk,
        changes=[f.change() for f in forms if f.has_changed()],
        entity_column=request.POST.get("entity_column"),
    )


# The review form's fields (c0-classification, ..., entity_column): a sign-off POST carrying any
# of them carries the steward's edits, which must be saved with it or refused, never dropped.
_REVIEW_FIELD = re.compile(r"^(c\d+-|entity_column$)")


def _carries_review_edits(request: HttpRequest) -> bool:
    return any(_REVIEW_FIELD.match(key) for key in request.POST)


def _review_context(
    dataset: Any, columns: list[Any], forms: list[ColumnReviewForm], entity: str | None = None
) -> dict[str, Any]:
    """The review page; `entity` is a POSTed entity column shown again (None: the saved one)."""
    rows = [
        (
            c,
            f,
            declaration_warnings(
                name=c.name, classification=c.classification, declared=c.declared, stats=c.stats
            ),
        )
        for c, f in zip(columns, forms, strict=True)
    ]
    return {
        "dataset": dataset,
        "rows": rows,
        "warning_count": sum(len(w) for _, _, w in rows),
        "entity_selected": dataset.entity_column if entity is None else entity,
        "estimate_form": DomainEstimateForm(columns=columns),
        "budget": budget_totals(dataset=dataset),
    }


@require_POST
def dataset_estimate_view(request: HttpRequest, dataset_id: str) -> HttpResponse:
    """Queue a DP estimate of one column's bounds; the epsilon is charged now."""
    dataset = _dataset_or_404(request, dataset_id)
    if not has_role(request.user, *MANAGES_DATASETS):
        raise Http404
    form = DomainEstimateForm(request.POST, columns=list(dataset_columns(dataset=dataset)))
    if not form.is_valid():
        messages.error(
            request, "Choose a column and an epsilon (and a search range for a numeric or date column)."
        )
        return redirect("generation:dataset-review", dataset.pk)
    data = form.cleaned_data
    try:
        entry = dataset_request_domain_estimate(
            actor=request.user,
            dataset_id=dataset.pk,
            column=data["column"],
            epsilon=data["epsilon"],
            lower=data["lower"],
            upper=data["upper"],
            delta=data["delta"],
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Spent epsilon {format_epsilon(entry.amount_micro)} on a DP domain estimate for "
            f"`{data['column']}`; it appears here as its declaration when the worker has computed it.",
        )
    return redirect("generation:dataset-review", dataset.pk)


@require_POST
@domain_errors_as_messages
def dataset_sign_off_view(request: HttpRequest, dataset_id: str) -> HttpResponse:
    """Sign off, saving the review form's edits with it when the POST carries them.

    The sign-off button submits the review form, so what the steward changed and did not save
    yet is either saved and signed off together (one transaction) or, when either step refuses,
    nothing is written and the page comes back with the edits still in the form."""
    # Who is asking first (404 / 403), before any input is read.
    dataset = dataset_get_for_steward(actor=request.user, dataset_id=dataset_id, action="dataset.sign_off")
    edits = _carries_review_edits(request)
    columns: list[Any] = []
    forms: list[ColumnReviewForm] = []
    if edits:
        columns = list(dataset_columns(dataset=dataset))
        forms = _column_forms(request, columns)
        if not all(f.is_valid() for f in forms):
            messages.error(request, _NOT_SIGNED_OFF + "correct the fields marked below, then sign off again.")
            return _review_again(request, dataset, columns, forms)
    changed = any(f.has_changed() for f in forms) or (
        edits and request.POST.get("entity_column", dataset.entity_column) != dataset.entity_column
    )
    try:
        with transaction.atomic():
            if edits:
                _save_review(request, dataset, forms)
            dataset = dataset_sign_off(actor=request.user, dataset_id=dataset.pk)
    except (ValidationFailed, Conflict) as exc:
        if not edits:
            raise
        # Rolled back: nothing was saved, so the edits live only in the form shown again.
        messages.error(request, _NOT_SIGNED_OFF + exc.message)
        return _review_again(request, dataset, columns, forms)
    saved = "Saved your changes and signed off" if changed else "Signed off"
    messages.success(
        request,
        f"{saved} classification v{dataset.classification_version}; "
        "data scientists can now request from this dataset.",
    )
    return redirect("generation:dataset-detail", dataset.pk)


_NOT_SIGNED_OFF = "Not signed off, and nothing saved: your edits are kept in the form below; "


def _review_again(
    request: HttpRequest, dataset: Any, columns: list[Any], forms: list[ColumnReviewForm]
) -> HttpResponse:
    """The review page with the POSTed edits in its form (400: the sign-off was refused)."""
    context = _review_context(dataset, columns, forms, entity=request.POST.get("entity_column"))
    return render(request, "generation/dataset_review.html", context, status=400)


def dataset_budget(request: HttpRequest, dataset_id: str) -> HttpResponse:
    """The budget the dataset spends (its population's ledger). Custodians see every reservation
    and refund and a chart of spend over time; everyone else sees the totals only."""
    dataset = _dataset_or_404(request, dataset_id)
    budget = budget_totals(dataset=dataset)
    custodian = sees_exact_figures(request.user)
    entries = list(ledger_entries_visible_to(user=request.user, dataset=dataset))
    figure = budget_figure(entries, float(budget["epsilon_cap"])) if entries else None
    context = {
        "dataset": dataset,
        "budget": budget,
        "custodian": custodian,
        "entries": [(e, format_delta(e.delta_atto)) for e in entries],
        "figure": figure,
    }
    return render(request, "generation/dataset_budget.html", context)
