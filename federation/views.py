"""Pages of federated studies: list, new, detail (with the polled progress panel), and actions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import NotFound, ValidationFailed
from core.pagination import page_of
from core.roles import Role, acting_user, has_role
from core.views import domain_errors_as_messages
from federation.charts import rounds_figure
from federation.forms import StudyDecisionForm, StudyForm, study_input
from federation.models import FINAL_STUDY_STATES, Study, StudyStatus
from federation.selectors import sites_visible_to, studies_awaiting, studies_visible_to
from federation.services import (
    decide_capacity,
    study_cancel,
    study_decide,
    study_file,
    study_get_for,
    study_quorum,
    study_submit,
)


@login_required
def study_list(request: HttpRequest) -> HttpResponse:
    user = acting_user(request.user)
    studies = studies_visible_to(user=user).order_by("-created_at")
    return render(
        request,
        "federation/study_list.html",
        {
            "page": page_of(request, studies),
            "awaiting": list(studies_awaiting(user=user)[:20]),
            "may_file": has_role(user, Role.DATA_SCIENTIST),
            "sites": sites_visible_to(user=user),
        },
    )


@login_required
@domain_errors_as_messages
def study_new(request: HttpRequest) -> HttpResponse:
    user = acting_user(request.user)
    if not has_role(user, Role.DATA_SCIENTIST):
        raise NotFound("No such page.")
    sites = sites_visible_to(user=user)
    form = StudyForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        try:
            study = study_file(actor=user, data=study_input(form.cleaned_data))
        except ValidationFailed as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Study filed as a draft; submit it for review.")
            return redirect("federation:study-detail", study_id=study.pk)
    return render(request, "federation/study_new.html", {"form": form, "sites": sites})


def _detail_context(user: Any, study: Study) -> dict[str, Any]:
    capacity, my_sites, refusal = decide_capacity(user, study)
    rounds = list(study.round_log.all())
    decided = study.decisions.filter(reviewer=user).exists()
    return {
        "study": study,
        "sites": list(study.sites.select_related("site", "dataset")),
        "decisions": list(study.decisions.all()),
        "rounds": rounds,
        "figure": rounds_figure(rounds),
        "final": study.status in FINAL_STUDY_STATES,
        "missing": study_quorum(study) if study.status == StudyStatus.SUBMITTED else [],
        "may_submit": study.requester_id == user.pk and study.status == StudyStatus.DRAFT,
        "may_decide": not refusal and study.status == StudyStatus.SUBMITTED and not decided,
        "decide_capacity": capacity,
        "decide_sites": my_sites,
        "may_cancel": (study.requester_id == user.pk or has_role(user, Role.PRIVACY_OFFICER))
        and study.status not in FINAL_STUDY_STATES
        and not study.cancel_requested,
        "decision_form": StudyDecisionForm(),
    }


@login_required
@domain_errors_as_messages
def study_detail(request: HttpRequest, study_id: str) -> HttpResponse:
    user = acting_user(request.user)
    study = study_get_for(actor=user, study_id=study_id)
    return render(request, "federation/study_detail.html", _detail_context(user, study))


@login_required
@domain_errors_as_messages
def study_progress(request: HttpRequest, study_id: str) -> HttpResponse:
    """The polled panel: status, progress bar, rounds table and chart (htmx swaps it)."""
    user = acting_user(request.user)
    study = study_get_for(actor=user, study_id=study_id)
    return render(request, "federation/_progress.html", _detail_context(user, study))


@require_POST
@login_required
@domain_errors_as_messages
def study_submit_view(request: HttpRequest, study_id: str) -> HttpResponse:
    study = study_submit(actor=acting_user(request.user), study_id=study_id)
    messages.info(
        request, f"Study submitted: {study.tier_level or 'untiered'} tier, {study.get_status_display()}."
    )
    return redirect("federation:study-detail", study_id=study.pk)


@require_POST
@login_required
@domain_errors_as_messages
def study_decide_view(request: HttpRequest, study_id: str) -> HttpResponse:
    # The service checks who is asking before the input (403 whatever is sent).
    study = study_decide(
        actor=acting_user(request.user),
        study_id=study_id,
        decision=str(request.POST.get("decision", "")),
        comment=str(request.POST.get("comment", "")),
    )
    messages.success(request, f"Decision recorded; the study is {study.get_status_display().lower()}.")
    return redirect("federation:study-detail", study_id=study.pk)


@require_POST
@login_required
@domain_errors_as_messages
def study_cancel_view(request: HttpRequest, study_id: str) -> HttpResponse:
    study = study_cancel(actor=acting_user(request.user), study_id=study_id)
    note = "Stopping after the current round." if study.status == StudyStatus.RUNNING else "Study cancelled."
    messages.info(request, note)
    return redirect("federation:study-detail", study_id=study.pk)
