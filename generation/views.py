from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import DomainError, NotFound
from core.ids import parse_uuid
from core.roles import Role, has_role
from core.views import domain_errors_as_messages
from generation.api.serializers import CUSTODIANS
from generation.charts import budget_figure, category_figure, histogram_figure
from generation.choices import ColumnKind
from generation.forms import ColumnReviewForm, DatasetUploadForm
from generation.selectors import dataset_columns, datasets_visible_to
from generation.services import dataset_register, dataset_sign_off, dataset_update_columns
from generation.uploads import upload_was_too_large


def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = datasets_visible_to(user=request.user)
    can_upload = has_role(request.user, Role.DATA_STEWARD, Role.ADMIN)
    return render(request, "generation/dataset_list.html", {"datasets": datasets, "can_upload": can_upload})


def dataset_upload(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, Role.DATA_STEWARD, Role.ADMIN):
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
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                f"Registered {dataset} with {dataset.rows} rows. Review the column "
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
    custodian = has_role(request.user, *CUSTODIANS)
    columns = list(dataset_columns(dataset=dataset))
    charts = _charts(columns) if custodian else []
    context = {
        "dataset": dataset,
        "columns": columns,
        "custodian": custodian,
        "charts": charts,
        "k": settings.SYNTHGATE_SMALL_CELL_K,
        "versions": dataset.classification_versions.all()[:10],
        "other_versions": datasets_visible_to(user=request.user)
        .filter(name=dataset.name)
        .exclude(pk=dataset.pk),
        "is_steward": has_role(request.user, Role.DATA_STEWARD, Role.ADMIN),
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
    if not has_role(request.user, Role.DATA_STEWARD, Role.ADMIN):
        raise Http404
    columns = list(dataset_columns(dataset=dataset))
    forms = [ColumnReviewForm(request.POST or None, column=c, prefix=f"c{i}") for i, c in enumerate(columns)]
    if request.method == "POST" and all(f.is_valid() for f in forms):
        try:
            dataset_update_columns(
                actor=request.user,
                dataset_id=dataset.pk,
                changes=[f.change() for f in forms if f.has_changed()],
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Saved. Sign off when every column is right.")
            return redirect("generation:dataset-review", dataset.pk)
    return render(
        request,
        "generation/dataset_review.html",
        {"dataset": dataset, "rows": list(zip(columns, forms, strict=True))},
    )


@require_POST
@domain_errors_as_messages
def dataset_sign_off_view(request: HttpRequest, dataset_id: str) -> HttpResponse:
    try:
        dataset = dataset_sign_off(actor=request.user, dataset_id=dataset_id)
    except NotFound:
        raise Http404 from None
    messages.success(
        request,
        f"Signed off classification v{dataset.classification_version}; "
        "data scientists can now request from this dataset.",
    )
    return redirect("generation:dataset-detail", dataset.pk)


def dataset_budget(request: HttpRequest, dataset_id: str) -> HttpResponse:
    """The dataset's epsilon ledger: every reservation and refund, and a chart of spend over time."""
    dataset = _dataset_or_404(request, dataset_id)
    entries = list(dataset.ledger.select_related("job").order_by("at", "id"))
    figure = budget_figure(entries, float(dataset.epsilon_cap)) if entries else None
    return render(
        request, "generation/dataset_budget.html", {"dataset": dataset, "entries": entries, "figure": figure}
    )
