"""The audit log browser: filtered, paginated events and the chain verdict."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit.selectors import audit_events_filter, audit_events_visible_to, audit_verify
from core.roles import AUDIT_READERS, has_role

PAGE_SIZE = 50


class EventFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150, label="Actor (username)")
    action = forms.CharField(required=False, max_length=80, label="Action contains")
    target = forms.CharField(
        required=False, max_length=150, label="Target", help_text="type, type:id or an id"
    )
    date_from = forms.DateField(
        required=False, label="From (UTC)", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To (UTC)", widget=forms.DateInput(attrs={"type": "date"})
    )

    def filters(self) -> dict[str, Any]:
        """The valid filters only: one malformed date should not hide the rest of the page."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {name: value for name, value in cleaned.items() if value not in (None, "")}


def audit_reader_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Everyone but auditors, privacy officers and admins gets 404: the log does not exist for them."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not has_role(request.user, *AUDIT_READERS):
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapper


@audit_reader_only
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET)
    filters = form.filters()
    events = audit_events_filter(audit_events_visible_to(user=request.user), **filters)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "verdict": audit_verify(), "filtered": bool(filters)}
    return render(request, "audit/event_list.html", context)


@audit_reader_only
@require_GET
def verify(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/verify.html", {"verdict": audit_verify()})
