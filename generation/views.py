from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.errors import DomainError
from core.ids import parse_uuid
from core.roles import Role, has_role
from generation.forms import DatasetUploadForm
from generation.selectors import dataset_columns, datasets_visible_to
from generation.services import dataset_register


def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = datasets_visible_to(user=request.user)
    can_upload = has_role(request.user, Role.DATA_STEWARD, Role.ADMIN)
    return render(request, "generation/dataset_list.html", {"datasets": datasets, "can_upload": can_upload})


def dataset_upload(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, Role.DATA_STEWARD, Role.ADMIN):
        raise Http404
    form = DatasetUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            dataset = dataset_register(
                actor=request.user,
                name=form.cleaned_data["name"],
                uploaded_file=form.cleaned_data["file"],
                epsilon_cap=form.cleaned_data["epsilon_cap"],
                description=form.cleaned_data["description"],
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Registered {dataset} with {dataset.rows} rows.")
            return redirect("generation:dataset-detail", dataset.pk)
    return render(request, "generation/dataset_upload.html", {"form": form})


def dataset_detail(request: HttpRequest, dataset_id: str) -> HttpResponse:
    dataset = datasets_visible_to(user=request.user).filter(pk=parse_uuid(dataset_id)).first()
    if dataset is None:
        raise Http404
    return render(
        request,
        "generation/dataset_detail.html",
        {"dataset": dataset, "columns": dataset_columns(dataset=dataset)},
    )
