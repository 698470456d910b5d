"""The inbox page: the user's notifications, each linking to where the action is."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from notifications.selectors import inbox_for
from notifications.services import mark_read


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    page = inbox_for(request.user, page=request.GET.get("page", 1))
    return render(request, "notifications/inbox.html", {"page": page})


@login_required
@require_POST
def inbox_mark_read(request: HttpRequest) -> HttpResponse:
    """Marks the ids posted (one row's button), or everything unread when `all` is posted."""
    if request.POST.get("all"):
        mark_read(user=request.user)
    else:
        mark_read(user=request.user, ids=request.POST.getlist("id"))
    return redirect("notifications:inbox")
