"""The browser's pick of a bake-off candidate. Publishing is catalog's (the release path), so the
view is here; the request page (approvals) renders the form from `actions.can_choose_candidate`."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from approvals.bakeoff import choose_refusal
from approvals.services import request_get_for
from catalog.services import bakeoff_choose
from core.roles import acting_user
from core.views import domain_errors_as_messages, forbidden


@require_POST
@domain_errors_as_messages
def bakeoff_choose_view(request: HttpRequest, request_id: str) -> HttpResponse:
    item = request_get_for(actor=request.user, request_id=request_id)  # 404 before anything else
    # Who picks before the form is read: anyone else gets 403 whatever they send.
    reason = choose_refusal(
        acting_user(request.user), requester_id=item.requester_id, tier_level=item.tier_level
    )
    if reason:
        return forbidden(request, reason, back=reverse("approvals:request-detail", args=[item.pk]))
    candidate = request.POST.get("candidate", "")
    if not candidate.isdigit():
        messages.error(request, "Choose one of the candidates that passed the release gate.")
        return redirect("approvals:request-detail", request_id)
    release = bakeoff_choose(actor=request.user, request_id=request_id, index=int(candidate))
    messages.success(request, f"Candidate {int(candidate) + 1} is published; the others stay in the lineage.")
    return redirect("catalog:release-detail", release.pk)
