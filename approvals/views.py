from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_POST

from approvals import rules
from approvals.bakeoff import score
from approvals.charts import cycle_time_figures, pareto_figure, tier_summary
from approvals.choices import DecisionKind, RequestKind, RequestStatus
from approvals.dp import budget_check, domain_refusal, dp_gate_visible_to, is_custodian
from approvals.forms import (
    CANDIDATE_ROWS,
    DEFAULT_SYNTHESIZER,
    DecisionForm,
    GateOverrideDecisionForm,
    GateOverrideForm,
    RequestForm,
    RetryAskForm,
    RetryDecisionForm,
    SyntheticUploadForm,
)
from approvals.models import GenerationRequest
from approvals.outcomes import explain_failed, glossary_entries
from approvals.quorum import required_approvals, reviewer_roles
from approvals.rules import RequestFacts as RuleFacts
from approvals.selectors import (
    RequestFilters,
    cycle_times_for,
    latest_attempt_jobs,
    listed_rows,
    overrides_awaiting_officer,
    paged_requests,
    request_actions_for,
    request_facts_for,
    request_filter_choices,
    request_filters_from,
    requests_filtered,
    requests_visible_to,
    retries_awaiting_officer,
    review_queue,
    waiting_for_review,
)
from approvals.services import (
    RequestInput,
    attempts_allowed,
    attempts_used,
    request_cancel,
    request_create,
    request_decide,
    request_get_for,
    request_preview,
    request_regenerate,
    request_submit,
    request_update,
    request_upload_synthetic,
    retry_approve,
    retry_ask,
    retry_pending,
    retry_refuse,
    round_quorum,
)
from approvals.services.bakeoffs import candidate_rows, latest_candidates
from approvals.services.notifications import reviewers_notified
from approvals.services.tiering import model_refusals, request_is_dp
from core.errors import DomainError
from core.ids import parse_uuid
from core.pagination import KeysFirst, page_of
from core.roles import AUDIT_READERS, REVIEWS_REQUESTS, Role, has_role
from core.views import domain_errors_as_messages, forbidden
from generation.choices import FINAL_JOB_STATES
from generation.modeling import model_family_label
from generation.models import micro_to_epsilon
from generation.policies import about
from generation.selectors import dataset_columns, datasets_requestable_by
from generation.services import budget_remaining, format_delta, format_epsilon, ledger_owner
from generation.synthesizers import EXTERNAL_UPLOAD, is_dp_synthesizer
from generation.uploads import upload_was_too_large
from validation.suite import validation_steps


def _list_filters(request: HttpRequest) -> RequestFilters:
    # A page lists without the filters it did not understand and says so (the API answers 400).
    filters, errors = request_filters_from(request.GET)
    for message in errors.values():
        messages.warning(request, f"Filter ignored: {message}")
    return filters


def _filter_context(request: HttpRequest, filters: RequestFilters) -> dict[str, Any]:
    return {
        "filters": filters,
        "choices": request_filter_choices(user=request.user),
        "kinds": list(RequestKind.choices),
    }


def request_list(request: HttpRequest) -> HttpResponse:
    filters = _list_filters(request)
    visible = paged_requests(requests_visible_to(user=request.user))
    page = page_of(request, KeysFirst(requests_filtered(visible, filters)))
    context = {"requests": page.object_list, "page": page, **_filter_context(request, filters)}
    return render(request, "approvals/request_list.html", context)


def review_queue_view(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, *REVIEWS_REQUESTS):
        raise Http404
    # Always longest-waiting first, and only requests in review: the ordering and status filters
    # are for the request list.
    filters = replace(_list_filters(request), status="", ordering="")
    page = page_of(
        request, KeysFirst(requests_filtered(paged_requests(review_queue(user=request.user)), filters))
    )
    rows = [{"req": r, "quorum": round_quorum(r), "mine": _my_decision(r, request.user)} for r in page]
    officer = has_role(request.user, Role.PRIVACY_OFFICER)
    context = {
        "rows": rows,
        "page": page,
        # What else waits on a privacy officer: a gate override a colleague proposed needs a
        # second officer, and a privacy retry needs one officer (both refuse their own proposer).
        "overrides": list(overrides_awaiting_officer(user=request.user)) if officer else [],
        "retries": list(retries_awaiting_officer(user=request.user)) if officer else [],
        **_filter_context(request, filters),
    }
    return render(request, "approvals/review_queue.html", context)


def _my_decision(item: GenerationRequest, user: Any) -> str:
    for d in listed_rows(item, "decisions"):
        if d.reviewer_id == user.pk and d.review_round == item.review_round:
            return d.get_decision_display()
    return ""


# --- Filing and editing -------------------------------------------------------------------------


def request_new(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, Role.DATA_SCIENTIST):
        raise Http404
    return _request_form_page(request, existing=None)


def request_edit(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        item = request_get_for(actor=request.user, request_id=request_id)
    except DomainError:
        raise Http404 from None
    if rules.edit_refusal(request.user, RuleFacts(item)):
        raise Http404
    return _request_form_page(request, existing=item)


def _request_form_page(request: HttpRequest, *, existing: GenerationRequest | None) -> HttpResponse:
    datasets = datasets_requestable_by(user=request.user)
    chosen_id = (
        request.POST.get("dataset") or request.GET.get("dataset") or (existing and existing.dataset_id)
    )
    dataset = datasets.filter(pk=parse_uuid(chosen_id)).first() if chosen_id else None
    form = RequestForm(
        request.POST or None,
        datasets=datasets,
        dataset=dataset,
        initial=_initial(existing, dataset),
    )
    if existing is not None:
        form.fields["kind"].disabled = True  # fixed when filed (the service refuses a change too)
    if request.method == "POST" and form.is_valid():
        try:
            saved = _save(request, RequestInput.from_data(form.request_data()), existing)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _status_message(saved))
            return redirect("approvals:request-detail", saved.pk)
    template = "approvals/_column_choices.html" if request.htmx else "approvals/request_form.html"
    context = {"form": form, "dataset": dataset, "existing": existing, "ledger": _ledger(dataset)}
    return render(request, template, context)


def _ledger(dataset: Any) -> dict[str, Any] | None:
    """The budget the dataset spends from (its population's ledger), as totals."""
    if dataset is None:
        return None
    owner = ledger_owner(dataset)
    return {
        "epsilon_remaining": owner.epsilon_remaining,
        "epsilon_cap": owner.epsilon_cap,
        "delta_remaining": format_delta(max(owner.delta_cap_atto - owner.delta_spent_atto, 0)),
        "delta_cap": format_delta(owner.delta_cap_atto),
    }


def _initial(existing: GenerationRequest | None, dataset: Any) -> dict[str, Any]:
    if existing is None:
        return {"dataset": dataset.pk if dataset else None}
    fields = (
        "title",
        "purpose",
        "purpose_category",
        "intended_use",
        "audience",
        "fidelity",
        "synthesizer",
        "rows",
    )
    model = existing.kind == RequestKind.DP_MODEL
    return {
        **{name: getattr(existing, name) for name in fields},
        "kind": existing.kind,
        "target": existing.target,
        "model_family": existing.synthesizer if model else "",
        **({"synthesizer": DEFAULT_SYNTHESIZER, "rows": None} if model else {}),
        "dataset": existing.dataset_id,
        "columns": existing.columns,
        "epsilon": existing.epsilon,
        "delta": format_delta(existing.delta_atto) if existing.delta_atto else "",
        **_candidate_initial(existing),
    }


def _candidate_initial(existing: GenerationRequest) -> dict[str, Any]:
    if not existing.candidates:
        return {}
    if existing.candidates_auto:
        return {"bakeoff": "auto", "synthesizer": DEFAULT_SYNTHESIZER, "epsilon": None}
    initial: dict[str, Any] = {
        "bakeoff": "custom",
        "synthesizer": DEFAULT_SYNTHESIZER,
        "epsilon": None,
        "delta": "",
    }
    for n, c in enumerate(existing.candidates, start=1):
        initial[f"candidate_{n}_synthesizer"] = c["synthesizer"]
        initial[f"candidate_{n}_epsilon"] = micro_to_epsilon(c.get("epsilon_micro"))
    return initial


def _save(
    request: HttpRequest, payload: RequestInput, existing: GenerationRequest | None
) -> GenerationRequest:
    if existing is None:
        saved = request_create(actor=request.user, data=payload)
    else:
        saved = request_update(actor=request.user, request_id=existing.pk, data=payload)
    if request.POST.get("action") == "submit":
        saved = request_submit(actor=request.user, request_id=saved.pk)
    return saved


@require_POST
def request_preview_view(request: HttpRequest) -> HttpResponse:
    """The live tier preview beside the request form (htmx). Runs the policy; writes nothing."""
    if not has_role(request.user, Role.DATA_SCIENTIST):
        raise Http404
    synthesizer, epsilon = _previewed_synthesizer(request.POST)
    kind = request.POST.get("kind")
    if kind == RequestKind.DP_MODEL:
        synthesizer, epsilon = request.POST.get("model_family"), request.POST.get("epsilon")
    preview = request_preview(
        actor=request.user,
        dataset_id=request.POST.get("dataset"),
        kind=kind,
        target=request.POST.get("target"),
        columns=request.POST.getlist("columns"),
        audience=request.POST.get("audience"),
        synthesizer=synthesizer,
        epsilon=epsilon,
        delta=request.POST.get("delta"),
        rows=request.POST.get("rows"),
        fidelity=request.POST.get("fidelity"),
        purpose_category=request.POST.get("purpose_category"),
    )
    return render(request, "approvals/_tier_preview.html", {"preview": preview})


def _previewed_synthesizer(post: Any) -> tuple[str | None, str | None]:
    """What the preview tiers: the synthesizer field, or a bake-off's riskiest candidate (any
    non-DP one, else the largest epsilon), as submission will (approvals.bakeoff.riskiest)."""
    choice = post.get("bakeoff")
    if choice == "auto":
        return DEFAULT_SYNTHESIZER, None
    if choice != "custom":
        return post.get("synthesizer"), post.get("epsilon")
    named = [
        (post.get(f"candidate_{n}_synthesizer"), post.get(f"candidate_{n}_epsilon"))
        for n in range(1, CANDIDATE_ROWS + 1)
        if post.get(f"candidate_{n}_synthesizer")
    ]
    plain = [(name, None) for name, _ in named if not is_dp_synthesizer(name)]
    if plain or not named:
        return plain[0] if plain else (post.get("synthesizer"), post.get("epsilon"))
    return max(named, key=lambda c: _number_or_zero(c[1]))


def _number_or_zero(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def _status_message(item: Any) -> str:
    if item.status == RequestStatus.IN_REVIEW:
        # Claim only what happened: the inbox rows this round's submission wrote (notifications).
        notified = reviewers_notified(item)
        if notified:
            return f"Submitted for review. {notified} reviewer{pluralize(notified)} notified."
        return "Submitted for review. No reviewer could be notified: tell a privacy officer."
    return {
        RequestStatus.DRAFT: "Draft saved. Submit it when you are ready for review.",
        RequestStatus.CHANGES_REQUESTED: "Changes saved. Submit it again when you are ready.",
        RequestStatus.REJECTED: "The policy prohibits this request; see the reasons below.",
    }.get(item.status, "Saved.")


# --- The request page ---------------------------------------------------------------------------


def request_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        item = request_get_for(actor=request.user, request_id=request_id)
    except DomainError:
        raise Http404 from None
    facts = request_facts_for(item)
    context = {
        "req": item,
        # Every button and form below is shown from these (approvals.rules), never re-derived here.
        "actions": request_actions_for(user=request.user, request=item, facts=facts),
        "decision_form": DecisionForm(),
        "dataset_columns": dataset_columns(dataset=item.dataset),
        "decisions": list(item.decisions.select_related("reviewer_team").all()),
        "assessments": list(item.assessments.select_related("policy").order_by("-review_round")),
        "quorum": round_quorum(item) if item.status == RequestStatus.IN_REVIEW else None,
        "needed": required_approvals(item.tier_level, item.tier_controls or {}) if item.tier_level else 0,
        "roles": [Role(r).label for r in reviewer_roles(item.tier_controls or {})],
        "release": _release_of(item),
        **_job_panel_context(item),
        **_attempts_context(item),
        **_dp_context(request.user, item),
        **_retry_context(item, facts),
        **_bakeoff_context(request.user, item),
        "outcomes": _outcomes(request.user, item),
    }
    # For reviewers of a request in review, including one who has decided this round already
    # (the others' decisions still rest on the same facts); nobody else gets these figures.
    if item.status == RequestStatus.IN_REVIEW and not rules.reviewer_refusal(request.user, item):
        context["basis"] = _decision_basis(request.user, item, context)
    return render(request, "approvals/request_detail.html", context)


def _decision_basis(user: Any, item: GenerationRequest, context: dict[str, Any]) -> dict[str, Any]:
    """What a reviewer's decision rests on, in one place: the tier and why, the source's
    re-identification estimate and small cells as the policy saw them at submission (else as the
    dataset's profile has them now), the budget approval reserves and what it leaves, and the
    requested columns with their classifications. Built only for a viewer who may decide (all of
    them custodians today); exact figures still follow is_custodian."""
    assessment = next((a for a in context["assessments"] if a.review_round == item.review_round), None)
    facts = assessment.facts if assessment is not None else {}
    dataset = item.dataset
    risk = (
        facts["reidentification_risk"] if "reidentification_risk" in facts else dataset.reidentification_risk
    )
    small_cells = facts["small_cells"] if "small_cells" in facts else dataset.small_cell_count
    exact = is_custodian(user)
    requested = set(item.columns)
    return {
        "measured_at_submission": assessment is not None,
        # The share of source rows unique on the quasi-identifiers (coarse outside custody).
        "reidentification_pct": None if risk is None else f"{risk:.1%}" if exact else f"{round(risk, 2):.0%}",
        "risk_columns": list(dataset.risk_columns or []),
        "small_cells": small_cells if exact else None,
        "small_cell_k": settings.SYNTHGATE_SMALL_CELL_K,
        "budget": _budget_after_approval(item),
        "columns": [c for c in context["dataset_columns"] if c.name in requested],
    }


def _budget_after_approval(item: GenerationRequest) -> dict[str, Any] | None:
    """For a DP request: the epsilon (and delta) approval reserves and the dataset's (population's)
    budget left after it; None when the request spends none."""
    if not item.epsilon_micro:
        return None
    eps_left, delta_left = budget_remaining(item.dataset)
    delta = item.delta_atto or 0
    return {
        "epsilon_reserved": format_epsilon(item.epsilon_micro),
        "epsilon_left_now": format_epsilon(max(eps_left, 0)),
        "epsilon_left_after": format_epsilon(max(eps_left - item.epsilon_micro, 0)),
        "delta_reserved": format_delta(delta) if delta else "",
        "delta_left_after": format_delta(max(delta_left - delta, 0)) if delta else "",
        "fits": item.epsilon_micro <= eps_left and delta <= delta_left,
    }


def _outcomes(user: Any, item: GenerationRequest) -> list[dict[str, Any]]:
    """The latest attempt's failed checks in plain words, per job (one, or one per candidate),
    with values only where this user may see them."""
    if item.status not in (RequestStatus.GATE_FAILED, RequestStatus.FAILED, RequestStatus.AWAITING_CHOICE):
        return []
    found = []
    for job in latest_attempt_jobs(item):
        report = getattr(job, "validation", None)
        if report is None or report.passed:
            continue
        gate = dp_gate_visible_to(
            user=user,
            gate={"passed": report.passed, "checks": report.checks},
            is_dp=item.kind == RequestKind.DP_MODEL or is_dp_synthesizer(job.synthesizer),
        )
        found.append({"job": job, "failed": explain_failed(gate["checks"])})
    return found


def _bakeoff_context(user: Any, item: GenerationRequest) -> dict[str, Any]:
    """A bake-off's candidates: table rows (scores only where this user may see values), the
    Pareto plot, and whether this user may pick the one to publish."""
    if not item.candidates:
        return {"bakeoff": None}
    rows = []
    for row in candidate_rows(latest_candidates(item)):
        report = getattr(row["run"].job, "validation", None)
        visible = (
            dp_gate_visible_to(
                user=user,
                gate={"passed": report.passed, "checks": report.checks},
                is_dp=row["epsilon_micro"] is not None,
            )
            if report
            else {"checks": []}
        )
        shown = score(visible["checks"])
        label = f"{row['index'] + 1}: {row['synthesizer']}" + (
            f" eps {row['epsilon']}" if row["epsilon"] else ""
        )
        rows.append({**row, "utility": shown.utility, "risk": shown.privacy_risk, "label": label})
    return {
        "bakeoff": {
            "rows": rows,
            "figure": pareto_figure(rows),
            "auto": item.candidates_auto,
            "total_epsilon": item.epsilon,
            "chooser": "a privacy officer" if item.tier_level == "high" else "the requester",
        }
    }


def _retry_context(item: GenerationRequest, facts: RuleFacts) -> dict[str, Any]:
    """After a failed privacy check: the rule, what a retry would reserve, and the forms (shown
    when `actions` allows asking for or deciding a retry)."""
    retries = list(item.privacy_retries.all())
    if not facts.privacy_failures:
        return {"privacy_failures": [], "privacy_retries": retries}
    return {
        "privacy_failures": list(facts.privacy_failures),
        "privacy_retries": retries,
        "pending_retry": retry_pending(item),
        "retry_cost": budget_check(item.dataset, item.epsilon_micro, item.delta_atto),
        "retry_ask_form": RetryAskForm(),
        "retry_decision_form": RetryDecisionForm(),
    }


def _dp_context(user: Any, item: GenerationRequest) -> dict[str, Any]:
    """The DP side of the page: delta, the budget comparison before approval, undeclared domains,
    and the source's row count as this user may see it (exact for custodians only)."""
    is_dp = request_is_dp(item)
    model = item.kind == RequestKind.DP_MODEL
    before_approval = item.status in (
        RequestStatus.DRAFT,
        RequestStatus.CHANGES_REQUESTED,
        RequestStatus.IN_REVIEW,
    )
    exact = is_custodian(user)
    return {
        "is_dp": is_dp,
        "delta_text": format_delta(item.delta_atto) if item.delta_atto else "",
        "budget": budget_check(item.dataset, item.epsilon_micro, item.delta_atto)
        if is_dp and before_approval
        else None,
        "dp_domain_refusal": _declaration_refusal(item) if is_dp and before_approval else None,
        "model_family_label": model_family_label(item.synthesizer) if model else "",
        "source_rows": item.dataset.rows if exact else about(item.dataset.rows),
        "source_rows_exact": exact,
    }


def _declaration_refusal(item: GenerationRequest) -> str | None:
    """Why the dataset's declarations (as signed off now) do not allow this DP request."""
    if item.kind == RequestKind.DP_MODEL:
        refusals = model_refusals(
            item.dataset, family=item.synthesizer, target=item.target, features=list(item.columns)
        )
        return " ".join(refusals) or None
    return domain_refusal(item.dataset, list(item.columns), item.synthesizer)


def _attempts_context(item: GenerationRequest) -> dict[str, Any]:
    """Attempts so far, and the forms for the next steps (shown when `actions` allows them)."""
    return {
        "attempts": list(item.attempts.select_related("job", "job__validation")),
        "attempts_used": attempts_used(item),
        "attempts_limit": attempts_allowed(item) if item.tier_level else 0,
        "is_external": item.synthesizer == EXTERNAL_UPLOAD,
        "upload_form": SyntheticUploadForm(),
        "override_form": GateOverrideForm(),
        "override_decision_form": GateOverrideDecisionForm(),
        "overrides": list(item.gate_overrides.all()),
    }


def _release_of(item: object) -> object | None:
    try:
        return item.release  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return None


def request_job(request: HttpRequest, request_id: str) -> HttpResponse:
    """The live job panel (htmx polls it every second until the job is final).

    Only a page whose jobs were still running polls, so a poll that finds them final is the
    moment the rest of the page (status badge, buttons, attempts, outcomes) went stale: the
    response tells htmx to reload the whole page (HX-Refresh) instead of swapping the panel."""
    try:
        item = request_get_for(actor=request.user, request_id=request_id)
    except DomainError:
        raise Http404 from None
    context = {"req": item, "release": _release_of(item), **_job_panel_context(item)}
    response = render(request, "approvals/_job_panel.html", context)
    if context["final"] and request.headers.get("HX-Request") == "true":
        response["HX-Refresh"] = "true"
    return response


def _job_panel_context(item: GenerationRequest) -> dict[str, Any]:
    """The live panel's jobs: the request's job, or every candidate's job of a bake-off (the panel
    keeps polling until all of them are final), with the validation suite's steps for each."""
    job = item.job
    runs = latest_candidates(item) if item.candidates else []
    jobs = [run.job for run in runs] or ([job] if job is not None else [])
    return {
        "job": job,
        "candidate_runs": runs,
        "final": not jobs or all(j.state in FINAL_JOB_STATES for j in jobs),
        "job_steps": _validation_steps(job) if job is not None and not runs else [],
        "candidate_steps": [(run, _validation_steps(run.job)) for run in runs],
    }


def _validation_steps(job: Any) -> list[dict[str, str]]:
    """Which of the suite's steps have run for `job` (validation records each as it starts)."""
    return validation_steps(
        stage=job.stage or "",
        final=job.state in FINAL_JOB_STATES,
        validated=getattr(job, "validation", None) is not None,
    )


def _refused(
    request: HttpRequest, request_id: str, rule: Callable[[Any, GenerationRequest], str]
) -> HttpResponse | None:
    """The 403 page when `rule` (a "who" piece of approvals.rules) refuses who is asking, else
    None. Checked before the form is read: a refused user gets 403 whatever they send, and the
    request they may not see is a 404 (NotFound, through domain_errors_as_messages)."""
    item = request_get_for(actor=request.user, request_id=request_id)
    reason = rule(request.user, item)
    if not reason:
        return None
    return forbidden(request, reason, back=reverse("approvals:request-detail", args=[item.pk]))


@require_POST
@domain_errors_as_messages
def request_submit_view(request: HttpRequest, request_id: str) -> HttpResponse:
    item = request_submit(actor=request.user, request_id=request_id)
    messages.success(request, _status_message(item))
    return redirect("approvals:request-detail", item.pk)


@require_POST
@domain_errors_as_messages
def request_cancel_view(request: HttpRequest, request_id: str) -> HttpResponse:
    item = request_cancel(actor=request.user, request_id=request_id)
    stopping = item.status != "cancelled"
    messages.success(
        request,
        "Stopping the generation job; it ends at its next progress step."
        if stopping
        else "Request withdrawn.",
    )
    return redirect("approvals:request-detail", item.pk)


@require_POST
@domain_errors_as_messages
def request_decide_view(request: HttpRequest, request_id: str) -> HttpResponse:
    if refused := _refused(request, request_id, rules.reviewer_refusal):
        return refused
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "Choose approve, reject or request changes (comments and conditions under 5,000 characters).",
        )
        return redirect("approvals:request-detail", request_id)
    request_decide(
        actor=request.user,
        request_id=request_id,
        decision=form.cleaned_data["decision"],
        comment=form.cleaned_data["comment"],
        conditions=form.cleaned_data["conditions"],
    )
    with_conditions = (
        form.cleaned_data["decision"] == DecisionKind.APPROVE and form.cleaned_data["conditions"]
    )
    messages.success(
        request, "Decision recorded, with conditions." if with_conditions else "Decision recorded."
    )
    return redirect("approvals:request-detail", request_id)


# --- Evidence -----------------------------------------------------------------------------------


def review_evidence(request: HttpRequest) -> HttpResponse:
    """Approval cycle time per request and per tier (privacy officers, auditors, admins)."""
    if not has_role(request.user, *AUDIT_READERS):
        raise Http404
    times = cycle_times_for(user=request.user)
    context = {
        "times": times,
        "figures": cycle_time_figures(times),
        "summary": tier_summary(times),
        "waiting": waiting_for_review(user=request.user),
    }
    return render(request, "approvals/evidence.html", context)


@require_POST
@domain_errors_as_messages
def request_regenerate_view(request: HttpRequest, request_id: str) -> HttpResponse:
    item = request_regenerate(actor=request.user, request_id=request_id)
    messages.success(request, f"Attempt {attempts_used(item)} of {attempts_allowed(item)} is queued.")
    return redirect("approvals:request-detail", item.pk)


@require_POST
@domain_errors_as_messages
def request_upload_view(request: HttpRequest, request_id: str) -> HttpResponse:
    if refused := _refused(request, request_id, rules.uploader_refusal):
        return refused
    form = SyntheticUploadForm(request.POST, request.FILES)
    if upload_was_too_large(request):
        messages.error(request, "The file is larger than the upload limit; upload fewer rows.")
        return redirect("approvals:request-detail", request_id)
    if not form.is_valid():
        messages.error(request, "Choose the synthetic file to upload (CSV or Parquet).")
        return redirect("approvals:request-detail", request_id)
    item = request_upload_synthetic(
        actor=request.user, request_id=request_id, uploaded_file=form.cleaned_data["file"]
    )
    messages.success(request, "File received: it is being validated against the release gate.")
    return redirect("approvals:request-detail", item.pk)


@require_POST
@domain_errors_as_messages
def request_retry_ask_view(request: HttpRequest, request_id: str) -> HttpResponse:
    if refused := _refused(request, request_id, rules.retry_asker_refusal):
        return refused
    form = RetryAskForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    retry_ask(actor=request.user, request_id=request_id, reason=reason)
    messages.success(request, "Retry asked for: a privacy officer will approve or refuse it.")
    return redirect("approvals:request-detail", request_id)


@require_POST
@domain_errors_as_messages
def request_retry_decide_view(request: HttpRequest, request_id: str) -> HttpResponse:
    if refused := _refused(request, request_id, rules.retry_decider_refusal):
        return refused
    form = RetryDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve or refuse, and write a comment of at least 20 characters.")
        return redirect("approvals:request-detail", request_id)
    approve = form.cleaned_data["decision"] == "approve"
    decide = retry_approve if approve else retry_refuse
    item = decide(actor=request.user, request_id=request_id, comment=form.cleaned_data["comment"])
    if approve:
        messages.success(
            request, f"Retry approved: attempt {attempts_used(item)} of {attempts_allowed(item)} is queued."
        )
    else:
        messages.success(request, "Retry refused.")
    return redirect("approvals:request-detail", request_id)


def check_glossary(request: HttpRequest) -> HttpResponse:
    """What each release-gate check means, its threshold's reason and the next step when it fails
    (no data: the same page for every signed-in user)."""
    return render(request, "approvals/check_glossary.html", {"entries": glossary_entries()})
