"""Email to reviewers when a request is submitted, and to the requester on each decision.

Sent after the transaction commits (never for work that rolled back), from templates under
templates/approvals/email/. Emails carry titles, ids, tiers and column names, never data values
and never reviewers' free text (comments and conditions are read in the portal, signed in).
The backend is settings.EMAIL_BACKEND: the console by default, SMTP when configured.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from approvals.models import Decision, GenerationRequest
from approvals.quorum import reviewer_roles

logger = logging.getLogger(__name__)


def notify_reviewers_on_commit(request: Any) -> None:
    request_id = request.pk
    transaction.on_commit(lambda: _send_submitted(request_id))


def notify_requester_on_commit(request: Any, decision: Any) -> None:
    request_id, decision_id = request.pk, decision.pk
    transaction.on_commit(lambda: _send_decided(request_id, decision_id))


def _send_submitted(request_id: Any) -> None:
    request = GenerationRequest.objects.select_related("requester", "dataset").get(pk=request_id)
    roles = reviewer_roles(request.tier_controls or {})
    reviewers = (
        get_user_model()
        .objects.filter(is_active=True, role__in=roles)
        .exclude(pk=request.requester_id)
        .exclude(email="")
        .order_by("username")
    )
    context = {"req": request, "link": _link(request)}
    for reviewer in reviewers:
        _send("submitted", {**context, "recipient": reviewer}, reviewer.email, request_id)


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


def _send(kind: str, context: dict[str, Any], to: str, request_id: Any) -> None:
    subject = " ".join(render_to_string(f"approvals/email/{kind}_subject.txt", context).split())
    body = render_to_string(f"approvals/email/{kind}_body.txt", context)
    try:
        EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to]).send()
    except Exception:  # noqa: BLE001 - the decision is committed; a mail outage must not undo or 500 it
        logger.exception("could not send %s email for request %s", kind, request_id)


def _link(request: Any) -> str:
    path = reverse("approvals:request-detail", args=[request.pk])
    return f"{getattr(settings, 'SYNTHGATE_BASE_URL', '').rstrip('/')}{path}"
