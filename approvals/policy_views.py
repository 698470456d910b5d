"""The risk policy pages: read it, propose a change, and (privacy officers) approve one.

Mounted under /manage/policy/ (portal.manage_urls) beside the admin pages. Admins, privacy
officers and auditors read the active version, its history and every diff; everyone else gets
404, as for every admin page. Admins and privacy officers propose (edit the YAML, review the
diff, propose); a proposal tiers nothing until a privacy officer who did not write it approves
it on the page that shows its diff. Every write goes through approvals.services.policy.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from approvals.forms import PolicyDraftForm
from approvals.models import PolicyVersion
from approvals.selectors import policy_versions_for
from approvals.services import PolicyInvalid, policy_active, policy_diff, policy_parse
from approvals.services.policy import (
    NOT_OFFICER,
    OWN_PROPOSAL,
    DiffLine,
    may_propose_policy,
    normalize_source,
    policy_approve,
    policy_decide_refusal,
    policy_file,
    policy_propose,
    policy_reject,
    policy_versions_published,
    sha256_of,
)
from audit.services import audit_denied
from core.errors import DomainError, PermissionDenied
from core.roles import AUDIT_READERS, has_role
from core.views import forbidden


class ProposalDecisionForm(forms.Form):
    action = forms.ChoiceField(choices=[("approve", "Approve and publish"), ("reject", "Reject")])
    reviewed = forms.CharField(required=False, widget=forms.HiddenInput)
    reason = forms.CharField(
        label="Reason for rejecting",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=2000,
        help_text="Required to reject; the author and every reader of the policy see it.",
    )


def _require_reader(request: HttpRequest) -> None:
    """Policy readers are the audit readers (admins, privacy officers, auditors); others get 404."""
    if not has_role(request.user, *AUDIT_READERS):
        _deny_post(request, "not_policy_reader")
        raise Http404("No such page.")


def _require_author(request: HttpRequest) -> None:
    _require_reader(request)
    if not may_propose_policy(request.user):
        _deny_post(request, "not_policy_author")
        raise HttpForbidden("Only administrators and privacy officers propose policy versions.")


def _deny_post(request: HttpRequest, reason: str) -> None:
    if request.method == "POST" and request.user.is_authenticated:
        audit_denied(
            actor=request.user,
            action="manage.write",
            target_type="page",
            target_id=request.path[:64],
            reason=reason,
        )


@require_http_methods(["GET", "POST"])
def policy_manage(request: HttpRequest) -> HttpResponse:
    """GET: the active version, open proposals, history, and (authors) a draft to edit.
    POST action=review: validate and show the diff. POST action=propose: propose the reviewed
    draft (refused if another version was published first)."""
    if request.method == "GET":
        _require_reader(request)
        active = policy_active()
        source = active.source if active else policy_file().read_text(encoding="utf-8")
        form = PolicyDraftForm(initial={"source": source, "base": active.number if active else None})
        return _page(request, form, active=active)
    _require_author(request)
    form = PolicyDraftForm(request.POST)
    active = policy_active()
    if not form.is_valid():
        return _page(request, form, active=active)
    reviewed = request.POST.get("reviewed") == sha256_of(normalize_source(form.cleaned_data["source"]))
    if request.POST.get("action") in ("propose", "publish") and reviewed:
        return _propose(request, form, active)
    # Proposing text whose diff was not shown (never reviewed, or edited since): review first.
    return _review(request, form, active)


def _review(request: HttpRequest, form: PolicyDraftForm, active: PolicyVersion | None) -> HttpResponse:
    source = form.cleaned_data["source"]
    try:
        policy = policy_parse(source.replace("\r\n", "\n"))
    except PolicyInvalid as exc:
        return _page(request, form, active=active, problems=exc.problems)
    old = active.source if active else policy_file().read_text(encoding="utf-8")
    label = f"v{active.number}" if active else "repository file, not yet loaded"
    diff = policy_diff(old, source, old_label=f"active ({label})", new_label="draft")
    return _page(
        request,
        form,
        active=active,
        diff=diff,
        reviewed_sha=sha256_of(normalize_source(source)),
        rule_count=len(policy.rules),
    )


def _propose(request: HttpRequest, form: PolicyDraftForm, active: PolicyVersion | None) -> HttpResponse:
    try:
        proposal = policy_propose(
            actor=request.user,
            source=form.cleaned_data["source"],
            notes=form.cleaned_data["notes"],
            base_number=form.cleaned_data["base"],
        )
    except PolicyInvalid as exc:
        return _page(request, form, active=active, problems=exc.problems)
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _page(request, form, active=active)
    messages.success(
        request,
        f"Proposed as #{proposal.pk}. Nothing changes until a privacy officer other than you approves it "
        "after reading the diff.",
    )
    return redirect("portal:policy-proposal", pk=proposal.pk)


def _page(request: HttpRequest, form: PolicyDraftForm, **context: object) -> HttpResponse:
    context = {
        "form": form,
        "may_propose": may_propose_policy(request.user),
        "versions": policy_versions_published(user=request.user)[:50],
        "proposals": policy_versions_for(user=request.user)
        .filter(status=PolicyVersion.Status.PROPOSED)
        .order_by("published_at", "pk"),
        "decided_proposals": policy_versions_for(user=request.user)
        .exclude(status__in=[PolicyVersion.Status.PUBLISHED, PolicyVersion.Status.PROPOSED])
        .order_by("-decided_at")[:20],
        **context,
    }
    return render(request, "approvals/policy/manage.html", context)


@require_http_methods(["GET"])
def policy_version_detail(request: HttpRequest, number: int) -> HttpResponse:
    """One published version's text, with its diff against the version before it."""
    _require_reader(request)
    published = policy_versions_published(user=request.user)
    version = published.filter(number=number).first()
    if version is None:
        raise Http404("No such policy version.")
    previous = published.filter(number__lt=number).order_by("-number").first()
    diff = _diff(previous, version) if previous else []
    return render(
        request, "approvals/policy/version.html", {"version": version, "previous": previous, "diff": diff}
    )


def _diff(old: PolicyVersion, new: PolicyVersion) -> list[DiffLine]:
    new_label = f"v{new.number}" if new.number else f"proposal #{new.pk}"
    return policy_diff(old.source, new.source, old_label=f"v{old.number}", new_label=new_label)


def _proposal_or_404(request: HttpRequest, pk: int) -> PolicyVersion:
    proposal = (
        policy_versions_for(user=request.user)
        .exclude(status=PolicyVersion.Status.PUBLISHED)
        .filter(pk=pk)
        .first()
    )
    if proposal is None:
        raise Http404("No such policy proposal.")
    return proposal


@require_http_methods(["GET"])
def policy_proposal_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A proposal with its diff against the version it was written on; the deciding form for a
    privacy officer who did not write it."""
    _require_reader(request)
    return _proposal_page(request, _proposal_or_404(request, pk), ProposalDecisionForm())


def _proposal_page(
    request: HttpRequest, proposal: PolicyVersion, form: ProposalDecisionForm, status: int = 200
) -> HttpResponse:
    published = policy_versions_published(user=request.user)
    base = published.filter(number=proposal.base_number).first()
    active = policy_active()
    context = {
        "proposal": proposal,
        "base": base,
        "active": active,
        "diff": _diff(base, proposal) if base else [],
        "refusal": policy_decide_refusal(actor=request.user, proposal=proposal),
        "form": form,
    }
    return render(request, "approvals/policy/proposal.html", context, status=status)


def _decide_forbidden(request: HttpRequest, proposal: PolicyVersion) -> HttpResponse:
    """The 403 page, in the service's words and with its audit row under the asked action: the
    services refuse who is asking before anything else, and write nothing then (with no reviewed
    digest and no reason they could not go on even for someone allowed)."""
    try:
        if request.POST.get("action") == "approve":
            policy_approve(actor=request.user, proposal_id=proposal.pk, reviewed_sha="")
        else:
            policy_reject(actor=request.user, proposal_id=proposal.pk, reason="")
    except PermissionDenied as exc:
        back = reverse("portal:policy-proposal", kwargs={"pk": proposal.pk})
        return forbidden(request, exc.message, code=exc.code, back=back)
    raise AssertionError("policy_decide_refusal refused, so the service must have")


@require_http_methods(["POST"])
def policy_proposal_decide(request: HttpRequest, pk: int) -> HttpResponse:
    _require_reader(request)
    proposal = _proposal_or_404(request, pk)
    # Who is asking before the form is read: a reader who may not decide gets 403, whatever they
    # send; a proposal already decided (a state) is the services' 409 on the form page.
    if (policy_decide_refusal(actor=request.user, proposal=proposal) or "") in (NOT_OFFICER, OWN_PROPOSAL):
        return _decide_forbidden(request, proposal)
    form = ProposalDecisionForm(request.POST)
    if not form.is_valid():
        return _proposal_page(request, proposal, form)
    try:
        if form.cleaned_data["action"] == "approve":
            version = policy_approve(
                actor=request.user, proposal_id=proposal.pk, reviewed_sha=form.cleaned_data["reviewed"]
            )
            messages.success(
                request, f"Published policy v{version.number}. The next submission is tiered with it."
            )
            return redirect("portal:policy-version", number=version.number)
        policy_reject(actor=request.user, proposal_id=proposal.pk, reason=form.cleaned_data["reason"])
    except DomainError as exc:
        form.add_error("reason" if "reason" in exc.fields else None, exc.message)
        proposal.refresh_from_db()
        return _proposal_page(request, proposal, form, status=exc.status)
    messages.success(request, f"Rejected proposal #{proposal.pk}.")
    return redirect("portal:policy")
