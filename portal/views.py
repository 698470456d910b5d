from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from approvals.models import GateOverride, PrivacyRetry
from approvals.selectors import (
    overrides_awaiting_officer,
    requests_visible_to,
    retries_awaiting_officer,
    review_queue,
)
from approvals.services.policy import policy_proposals_open
from audit.checkpoints import Checkpoint, checkpoints_read
from audit.models import AuditChainHead
from audit.selectors import audit_events_visible_to
from catalog.access import access_requests_pending_for
from catalog.models import AccessRequest
from catalog.selectors import releases_visible_to
from core.roles import APPROVES_POLICY, REVIEWS_REQUESTS, Role, acting_user, has_role
from generation.policies import about, sees_exact_figures
from generation.selectors import datasets_visible_to

# Each home section shows this many rows; its queries do not grow with what is behind it.
HOME_ROWS = 10
OLDEST_WAITING = 5


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})


def dashboard(request: HttpRequest) -> HttpResponse:
    """The home page: what this user's role needs first (scientist: own requests and usable
    releases; reviewers: what waits on them; auditor: the chain and its newest events)."""
    user = acting_user(request.user)  # behind the login guard: never anonymous here
    exact = sees_exact_figures(user)
    context: dict[str, Any] = {
        "datasets": [
            # Exact source row counts are for custodians; everyone else sees a rounded figure.
            (d, d.rows if exact else about(d.rows))
            for d in datasets_visible_to(user=user)[:8]
        ],
        "rows_exact": exact,
        "releases": _usable_releases(user),
        # Role sections; None leaves a section out.
        "my_requests": None,
        "waiting": None,
        "chain": None,
    }
    if has_role(user, Role.DATA_SCIENTIST):
        context["my_requests"] = list(
            requests_visible_to(user=user).filter(requester=user).order_by("-created_at")[:HOME_ROWS]
        )
    if has_role(user, *REVIEWS_REQUESTS):
        context["waiting"] = _waiting_for(user)
    if has_role(user, Role.AUDITOR):
        context["chain"] = _chain_status()
        context["events"] = list(audit_events_visible_to(user=user).order_by("-seq")[:HOME_ROWS])
    return render(request, "portal/dashboard.html", context)


def _usable_releases(user: Any) -> list[Any]:
    """The newest releases this user may open that have not expired or been withdrawn."""
    now = timezone.now()
    usable = releases_visible_to(user=user).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now), withdrawn_at__isnull=True
    )
    return list(usable.order_by("-created_at")[:HOME_ROWS])


@dataclass(frozen=True)
class Waiting:
    """What waits on a reviewer: the review queue (count and oldest), and for privacy officers
    the items only another officer can close."""

    queue_count: int
    oldest: list[Any]
    overrides: list[GateOverride]
    retries: list[PrivacyRetry]
    proposals: list[Any]
    # Pending access requests (catalog.access): a privacy officer decides them.
    access_requests: list[AccessRequest]
    access_request_count: int


def _waiting_for(user: Any) -> Waiting:
    queue = review_queue(user=user)
    officer = has_role(user, Role.PRIVACY_OFFICER)
    overrides = overrides_awaiting_officer(user=user)
    retries = retries_awaiting_officer(user=user)
    proposals = policy_proposals_open().exclude(published_by=user)
    access = access_requests_pending_for(user=user)
    return Waiting(
        queue_count=queue.count(),
        oldest=list(queue.prefetch_related(None)[:OLDEST_WAITING]),
        overrides=list(overrides[:OLDEST_WAITING]) if officer else [],
        retries=list(retries[:OLDEST_WAITING]) if officer else [],
        proposals=list(proposals[:OLDEST_WAITING]) if has_role(user, *APPROVES_POLICY) else [],
        # Empty for anyone who decides none (the selector decides: officers, delegated stewards).
        access_requests=list(access[:OLDEST_WAITING]),
        access_request_count=access.count(),
    )


@dataclass(frozen=True)
class ChainStatus:
    """The audit chain's head and its newest signed checkpoint. A checkpoint is signed only after
    the rows since the previous one verified (audit.services.audit_checkpoint), so it is the
    last verification on record; the whole chain is not walked on every home page view."""

    head_seq: int
    checkpoint: Checkpoint | None
    bad_checkpoint_lines: int

    @property
    def checkpoint_at(self) -> datetime | None:
        return datetime.fromisoformat(self.checkpoint.at) if self.checkpoint else None

    @property
    def unsigned_events(self) -> int:
        return self.head_seq - (self.checkpoint.seq if self.checkpoint else 0)


def _chain_status() -> ChainStatus:
    head = AuditChainHead.objects.filter(id=1).first()
    log = checkpoints_read()
    return ChainStatus(head.seq if head else 0, log.newest, len(log.bad_lines))
