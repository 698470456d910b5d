from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from approvals.choices import RequestStatus
from approvals.forms import DecisionForm, RequestForm
from approvals.selectors import requests_visible_to, review_queue
from approvals.services import (
    RequestInput,
    request_cancel,
    request_create,
    request_decide,
    request_get_for,
    request_submit,
)
from core.errors import DomainError
from core.ids import parse_uuid
from core.roles import Role, has_role
from core.views import domain_errors_as_messages
from generation.choices import FINAL_JOB_STATES
from generation.selectors import dataset_columns, datasets_requestable_by


def request_list(request: HttpRequest) -> HttpResponse:
    items = requests_visible_to(user=request.user)
    return render(request, "approvals/request_list.html", {"requests": items})


def review_queue_view(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, Role.PRIVACY_OFFICER):
        raise Http404
    return render(request, "approvals/review_queue.html", {"requests": review_queue(user=request.user)})


def request_new(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, Role.DATA_SCIENTIST):
        raise Http404
    datasets = datasets_requestable_by(user=request.user)
    chosen_id = request.POST.get("dataset") or request.GET.get("dataset")
    dataset = datasets.filter(pk=parse_uuid(chosen_id)).first() if chosen_id else None
    form = RequestForm(
        request.POST or None,
        datasets=datasets,
        dataset=dataset,
        initial={"dataset": dataset.pk if dataset else None},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = request_create(
                actor=request.user,
                data=RequestInput(
                    dataset_id=data["dataset"].pk,
                    title=data["title"],
                    purpose=data["purpose"],
                    intended_use=data["intended_use"],
                    audience=data["audience"],
                    columns=data["columns"],
                    synthesizer=data["synthesizer"],
                    rows=data["rows"],
                    epsilon=data["epsilon"],
                ),
            )
            if request.POST.get("action") == "submit":
                created = request_submit(actor=request.user, request_id=created.pk)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _status_message(created.status))
            return redirect("approvals:request-detail", created.pk)
    template = "approvals/_column_choices.html" if request.htmx else "approvals/request_form.html"
    return render(request, template, {"form": form, "dataset": dataset})


def _status_message(status: str) -> str:
    return {
        RequestStatus.DRAFT: "Draft saved. Submit it when you are ready for review.",
        RequestStatus.IN_REVIEW: "Submitted for review. A privacy officer will decide.",
        RequestStatus.REJECTED: "The policy prohibits this request; see the reasons below.",
    }.get(status, "Saved.")


def request_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        item = request_get_for(actor=request.user, request_id=request_id)
    except DomainError:
        raise Http404 from None
    can_decide = (
        item.status == RequestStatus.IN_REVIEW
        and has_role(request.user, Role.PRIVACY_OFFICER)
        and item.requester_id != request.user.pk
        and not item.decisions.filter(reviewer=request.user, review_round=item.review_round).exists()
    )
    context = {
        "req": item,
        "decision_form": DecisionForm() if can_decide else None,
        "is_requester": item.requester_id == request.user.pk,
        "columns": dataset_columns(dataset=item.dataset).filter(name__in=item.columns),
        "release": _release_of(item),
        "job": item.job,
        "final": item.job is None or item.job.state in FINAL_JOB_STATES,
    }
    return render(request, "approvals/request_detail.html", context)


def _release_of(item: object) -> object | None:
    try:
        return item.release  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return None


def request_job(request: HttpRequest, request_id: str) -> HttpResponse:
    """The live job panel (htmx polls it every second until the job is final)."""
    try:
        item = request_get_for(actor=request.user, request_id=request_id)
    except DomainError:
        raise Http404 from None
    job = item.job
    context = {
        "req": item,
        "job": job,
        "final": job is None or job.state in FINAL_JOB_STATES,
        "release": _release_of(item),
    }
    return render(request, "approvals/_job_panel.html", context)


@require_POST
@domain_errors_as_messages
def request_submit_view(request: HttpRequest, request_id: str) -> HttpResponse:
    item = request_submit(actor=request.user, request_id=request_id)
    messages.success(request, _status_message(item.status))
    return redirect("approvals:request-detail", item.pk)


@require_POST
@domain_errors_as_messages
def request_cancel_view(request: HttpRequest, request_id: str) -> HttpResponse:
    item = request_cancel(actor=request.user, request_id=request_id)
    messages.success(request, "Request withdrawn.")
    return redirect("approvals:request-detail", item.pk)


@require_POST
@domain_errors_as_messages
def request_decide_view(request: HttpRequest, request_id: str) -> HttpResponse:
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve, reject or request changes.")
        return redirect("approvals:request-detail", request_id)
    request_decide(
        actor=request.user,
        request_id=request_id,
        decision=form.cleaned_data["decision"],
        comment=form.cleaned_data["comment"],
    )
    messages.success(request, "Decision recorded.")
    return redirect("approvals:request-detail", request_id)
