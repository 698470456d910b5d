from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.staticfiles import finders
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from approvals import rules
from approvals.forms import GateOverrideDecisionForm, GateOverrideForm
from approvals.selectors import requests_visible_to
from approvals.services import gate_override_decline, gate_override_propose, request_get_for
from catalog.access_views import gone_page, release_access_context
from catalog.cards import release_card
from catalog.downloads import release_file_response
from catalog.model_cards import model_card
from catalog.models import ReleaseKind
from catalog.reports import model_charts, release_report_context, report_visible_to
from catalog.selectors import (
    release_filter_choices,
    release_list_rows,
    releases_filter,
    releases_to_ask_for,
    releases_visible_to,
)
from catalog.services import gate_override_approve, release_get_for
from core.errors import Conflict, Gone, NotFound
from core.ids import parse_uuid
from core.pagination import page_of
from core.views import domain_errors_as_messages, forbidden
from core.widgets import FastSelect
from generation.modeling import is_model_family
from generation.synthesizers import is_dp_synthesizer
from validation.selectors import report_for_job
from validation.services import report_export_record


class ReleaseFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Title contains")
    # FastSelect: Django's markup without a template include per option; the dataset and team
    # choices are every one the user's releases name (core.widgets).
    kind = forms.ChoiceField(
        required=False,
        label="Kind",
        choices=[("", "Tables and models"), *ReleaseKind.choices],
        widget=FastSelect,
    )
    dataset = forms.ChoiceField(required=False, label="Source dataset", widget=FastSelect)
    team = forms.ChoiceField(required=False, label="Team", widget=FastSelect)
    dp = forms.NullBooleanField(
        required=False,
        label="Privacy",
        widget=FastSelect(choices=[("", "Any"), ("true", "DP only"), ("false", "Not DP")]),
    )
    state = forms.ChoiceField(
        required=False,
        choices=[("", "Any state"), ("active", "Active"), ("expired", "Expired"), ("withdrawn", "Withdrawn")],
        widget=FastSelect,
    )
    published_from = forms.DateField(
        required=False, label="Published from (UTC)", widget=forms.DateInput(attrs={"type": "date"})
    )
    published_to = forms.DateField(
        required=False, label="Published to (UTC)", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, data: Any, *, choices: dict[str, list[tuple[str, str]]]) -> None:
        super().__init__(data)
        # Only datasets and teams of releases the user may see: a choice names nothing hidden.
        self.fields["dataset"].choices = [("", "Any dataset"), *choices["datasets"]]
        self.fields["team"].choices = [("", "Any team"), *choices["teams"]]

    def filters(self) -> dict[str, Any]:
        """The valid filters only: one malformed date should not empty the page."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {name: value for name, value in cleaned.items() if value not in (None, "")}


# Releases a member may ask to use, per page of the catalog's second list.
ASK_PAGE_SIZE = 10


def release_list(request: HttpRequest) -> HttpResponse:
    visible = releases_visible_to(user=request.user)
    form = ReleaseFilterForm(request.GET, choices=release_filter_choices(visible))
    filters = form.filters()
    page = page_of(request, release_list_rows(releases_filter(visible, **filters)))
    # Cards a member may find but not use (catalog.access): a summary and "Request access", no data.
    # The same filters, paged on their own (`?ask=`), ten at a time: a year of other teams'
    # releases is thousands, and fifty of them under the member's own doubled the page's cost.
    others = releases_to_ask_for(user=request.user)
    others = releases_filter(others.filter(withdrawn_at__isnull=True), **filters)
    context = {
        "page": page,
        "form": form,
        "filtered": bool(filters),
        "discoverable": page_of(request, release_list_rows(others), per_page=ASK_PAGE_SIZE, param="ask"),
    }
    return render(request, "catalog/release_list.html", context)


def release_detail(request: HttpRequest, release_id: str) -> HttpResponse:
    try:
        release = release_get_for(actor=request.user, release_id=release_id)
    except NotFound:
        raise Http404 from None
    context = release_report_context(user=request.user, release=release)
    context.update(_card_context(release, request.user))
    context["access"] = release_access_context(user=request.user, release=release)
    return render(request, "catalog/release_detail.html", context)


def _card_context(release: Any, user: Any) -> dict[str, Any]:
    """A table's data card (`card`) or a model's model card (`model_card`), never both."""
    if release.is_model:
        return {"model_card": model_card(release=release, user=user)}
    return {"card": release_card(release=release, user=user)}


def release_download(request: HttpRequest, release_id: str) -> HttpResponse | StreamingHttpResponse:
    try:
        return release_file_response(actor=request.user, release_id=release_id)
    except NotFound:
        raise Http404 from None
    except Gone as exc:  # expired or withdrawn: 410 with the reason (catalog.access)
        return gone_page(request, release_get_for(actor=request.user, release_id=release_id), exc)
    except Conflict as exc:  # the stored file is unreadable: say so on the release page
        messages.error(request, exc.message)
        return redirect("catalog:release-detail", release_id)


def _inline_static(path: str) -> str:
    found = finders.find(path)
    if not found:
        raise FileNotFoundError(path)
    with open(found, encoding="utf-8") as handle:
        # Inert inside an inline <script>: no "</script" can end it early.
        return handle.read().replace("</script", "<\\/script")


def release_report_export(request: HttpRequest, release_id: str) -> HttpResponse:
    """One self-contained HTML file (plotly.js inlined: a download, not a page served under our
    CSP) with the same view of the report the page gives this user; audited before sending."""
    try:
        release = release_get_for(actor=request.user, release_id=release_id)
    except NotFound:
        raise Http404 from None
    context = release_report_context(user=request.user, release=release)
    context.update(_card_context(release, request.user))
    report_export_record(
        actor=request.user, target_type="release", target_id=release.pk, full=context["full_report"]
    )
    if context["charts"]:
        context["plotly_js"] = _inline_static("vendor/plotly.min.js")
        context["charts_js"] = _inline_static("js/charts.js")
    html = render_to_string("catalog/report_export.html", context, request=request)
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    filename = f"{slugify(release.title)[:60] or 'release'}-{str(release.pk)[:8]}-report.html"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def job_report(request: HttpRequest, job_id: str) -> HttpResponse:
    """The validation report of any job the user's request list shows, including gate failures
    (which have no release): what a reviewer reads before deciding on an override."""
    job_uuid = parse_uuid(job_id)
    generation_request = (
        requests_visible_to(user=request.user)
        .filter(Q(job_id=job_uuid) | Q(attempts__job_id=job_uuid))
        .distinct()
        .first()
        if job_uuid
        else None
    )
    report = report_for_job(job_id=job_uuid) if generation_request is not None else None
    if report is None or generation_request is None:
        raise Http404
    gate = {"passed": report.passed, "checks": report.checks}
    # A DP model's evaluation, like a DP table's report, is outside the budget: custodians only.
    is_model = is_model_family(generation_request.synthesizer)
    is_dp = is_model or is_dp_synthesizer(generation_request.synthesizer)
    context = {
        "generation_request": generation_request,
        "report": report,
        "is_model": is_model,
        **report_visible_to(
            user=request.user, gate=gate, metrics=report.metrics, is_dp=is_dp, charts=not is_model
        ),
    }
    if is_model:  # the table glossary does not apply; the model's own charts, for custodians
        thresholds = (generation_request.tier_controls or {}).get("gate")
        charts = model_charts(report.metrics, thresholds=thresholds) if context["full_report"] else []
        context.update(glossary=[], charts=charts)
    return render(request, "catalog/report_job.html", context)


# --- Overriding a failed gate (forms on the request page) ------------------------------------------


def _officer_refused(request: HttpRequest, request_id: str) -> HttpResponse | None:
    """The 403 page for anyone but a privacy officer other than the requester, before the form is
    read (404 for a request they may not see). The proposer-is-not-the-approver rule needs the
    pending override: approvals.services.overrides checks it, and a refusal there is a 403 too."""
    item = request_get_for(actor=request.user, request_id=request_id)
    reason = rules.override_officer_refusal(request.user, item)
    if not reason:
        return None
    return forbidden(request, reason, back=reverse("approvals:request-detail", args=[item.pk]))


@require_POST
@domain_errors_as_messages
def gate_override_propose_view(request: HttpRequest, request_id: str) -> HttpResponse:
    if refused := _officer_refused(request, request_id):
        return refused
    form = GateOverrideForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Write a justification of 40 to 5,000 characters.")
        return redirect("approvals:request-detail", request_id)
    gate_override_propose(
        actor=request.user, request_id=request_id, justification=form.cleaned_data["justification"]
    )
    messages.success(request, "Override proposed; a second privacy officer must approve it.")
    return redirect("approvals:request-detail", request_id)


@require_POST
@domain_errors_as_messages
def gate_override_decide_view(request: HttpRequest, request_id: str) -> HttpResponse:
    if refused := _officer_refused(request, request_id):
        return refused
    form = GateOverrideDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Keep the comment under 5,000 characters.")
        return redirect("approvals:request-detail", request_id)
    comment = form.cleaned_data["comment"]
    if request.POST.get("decision") == "approve":
        release = gate_override_approve(actor=request.user, request_id=request_id, comment=comment)
        messages.success(request, "Override approved: the release is published, marked as overridden.")
        return redirect("catalog:release-detail", release.pk)
    gate_override_decline(actor=request.user, request_id=request_id, comment=comment)
    messages.success(request, "Override declined; the request stays failed at the gate.")
    return redirect("approvals:request-detail", request_id)
