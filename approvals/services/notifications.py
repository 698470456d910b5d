"""Telling people about requests: reviewers when a request waits on them (submitted, or one approval
short of its quorum), the requester on each decision.

Reviewers get an inbox notification (notifications.services.notify) written in the caller's
transaction, so work that rolls back notifies nobody, and an e-mail after the commit when they have
an address. The requester's decision e-mail is sent after the commit too. Both use templates under
templates/approvals/email/. Notifications carry titles, ids, tiers and column names, never data
values and never reviewers' free text (comments and conditions are read in the portal, signed in).
The backend is settings.EMAIL_BACKEND: the console by default, SMTP when configured.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse

from approvals.choices import DecisionKind, RequestStatus
from approvals.models import Decision, GenerationRequest
from approvals.quorum import reviewer_roles
from core.roles import Role
from notifications.models import NotificationKind
from notifications.selectors import notified_count
from notifications.services import notify

logger = logging.getLogger(__name__)


def notify_reviewers_on_commit(request: Any) -> int:
    """A submitted request waits on its reviewers: put it in their inboxes now (in the caller's
    transaction) and e-mail those with an address after the commit. Returns how many were notified."""
    return notify(
        recipients=_reviewers(request),
        kind=NotificationKind.REVIEW_NEEDED,
        message=f"Review needed ({request.tier_level} tier): {request.title} [{request.pk}]",
        url=_path(request),
        target_type="request",
        target_id=request.pk,
        dedup_key=review_needed_key(request),
        email_for=lambda reviewer: _render("submitted", _submitted_context(request.pk, reviewer)),
    )


def reviewers_notified(request: Any) -> int:
    """How many reviewers this round's submission notified: what a page may claim, and no more."""
    return notified_count(dedup_key=review_needed_key(request))


def review_needed_key(request: Any) -> str:
    return f"{NotificationKind.REVIEW_NEEDED}:request:{request.pk}:round{request.review_round}"


def notify_requester_on_commit(request: Any, decision: Any) -> None:
    """E-mail the requester about a decision after the commit; an approval short of the quorum
    also tells the reviewers who have not decided yet that it waits on a second approval."""
    if decision.decision == DecisionKind.APPROVE and request.status == RequestStatus.IN_REVIEW:
        _notify_second_approval(request)
    request_id, decision_id = request.pk, decision.pk
    transaction.on_commit(lambda: _send_decided(request_id, decision_id))


def _notify_second_approval(request: Any) -> int:
    decided = request.decisions.filter(review_round=request.review_round).values("reviewer_id")
    approvals = request.decisions.filter(review_round=request.review_round, decision=DecisionKind.APPROVE)
    return notify(
        recipients=_reviewers(request).exclude(pk__in=decided),
        kind=NotificationKind.SECOND_APPROVAL,
        message=f"Another approval needed ({request.tier_level} tier): {request.title} [{request.pk}]",
        url=_path(request),
        target_type="request",
        target_id=request.pk,
        # One per approval short of quorum: a third approver is asked again after the second approves.
        dedup_key=f"{NotificationKind.SECOND_APPROVAL}:request:{request.pk}:round{request.review_round}"
        f":after{approvals.count()}",
    )


def notify_override_pending(request: Any, override: Any) -> int:
    """A proposed gate override waits on a second privacy officer: neither its proposer nor the
    requester (approvals.rules.override_officer_refusal / override_proposer_refusal). Called in the
    proposing transaction; returns how many officers were notified."""
    officers = (
        get_user_model()
        .objects.filter(is_active=True, role=Role.PRIVACY_OFFICER)
        .exclude(pk__in=[request.requester_id, override.proposed_by_id])
    )
    return notify(
        recipients=officers,
        kind=NotificationKind.OVERRIDE_PENDING,
        message=f"Gate override awaiting a second officer: {request.title} [{request.pk}]",
        url=_path(request),
        target_type="request",
        target_id=request.pk,
        dedup_key=f"{NotificationKind.OVERRIDE_PENDING}:override:{override.pk}",
    )


def _reviewers(request: Any) -> QuerySet[Any]:
    roles = reviewer_roles(request.tier_controls or {})
    return (
        get_user_model()
        .objects.filter(is_active=True, role__in=roles)
        .exclude(pk=request.requester_id)
        .order_by("username")
    )


def _submitted_context(request_id: Any, reviewer: Any) -> dict[str, Any]:
    request = GenerationRequest.objects.select_related("requester", "dataset").get(pk=request_id)
    return {"req": request, "link": _link(request), "recipient": reviewer}


def _send_decided(request_id: Any, decision_id: Any) -> None:
    decision = Decision.objects.select_related("request__requester", "request__dataset").get(pk=decision_id)
    requester = decision.request.requester
    if not requester.email or not requester.is_active:
        return
    context = {
        "req": decision.request,
        "decision": decision,
        "recipient": requester,
        "link": _link(decision.request),
    }
    _send("decided", context, requester.email, request_id)


def _render(kind: str, context: dict[str, Any]) -> tuple[str, str]:
    subject = " ".join(render_to_string(f"approvals/email/{kind}_subject.txt", context).split())
    return subject, render_to_string(f"approvals/email/{kind}_body.txt", context)


def _send(kind: str, context: dict[str, Any], to: str, request_id: Any) -> None:
    try:
        subject, body = _render(kind, context)
        EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to]).send()
    except Exception:  # noqa: BLE001 - the decision is committed; a mail outage must not undo or 500 it
        logger.exception("could not send %s email for request %s", kind, request_id)


def _path(request: Any) -> str:
    return reverse("approvals:request-detail", args=[request.pk])


def _link(request: Any) -> str:
    return f"{getattr(settings, 'SYNTHGATE_BASE_URL', '').rstrip('/')}{_path(request)}"
