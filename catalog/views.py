from __future__ import annotations

from typing import Any

from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.text import slugify

from approvals.selectors import requests_visible_to
from catalog.api.views import release_file_response
from catalog.selectors import releases_visible_to
from catalog.services import release_get_for
from core.errors import NotFound
from core.ids import parse_uuid
from validation.report import glossary_rows, report_charts
from validation.selectors import gate_visible_to, metrics_visible_to, report_for_job, sees_full_report
from validation.services import report_export_record


def release_list(request: HttpRequest) -> HttpResponse:
    return render(request, "catalog/release_list.html", {"releases": releases_visible_to(user=request.user)})


def report_context(user: Any, gate: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """What the report shows `user`: everything for oversight roles, pass/fail and reasons otherwise."""
    full = sees_full_report(user)
    checks = list(gate.get("checks") or [])
    return {
        "full_report": full,
        "gate": gate_visible_to(user=user, gate=gate),
        "metrics": metrics_visible_to(user=user, metrics=metrics, checks=checks),
        "charts": report_charts(metrics, checks) if full else [],
        "glossary": glossary_rows(metrics, checks) if full else [],
    }


def release_detail(request: HttpRequest, release_id: str) -> HttpResponse:
    try:
        release = release_get_for(actor=request.user, release_id=release_id)
    except NotFound:
        raise Http404 from None
    context = {"release": release, **report_context(request.user, release.gate, release.metrics)}
    return render(request, "catalog/release_detail.html", context)


def release_download(request: HttpRequest, release_id: str) -> FileResponse:
    try:
        return release_file_response(actor=request.user, release_id=release_id)
    except NotFound:
        raise Http404 from None


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
    context = {"release": release, **report_context(request.user, release.gate, release.metrics)}
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
        requests_visible_to(user=request.user).filter(job_id=job_uuid).first() if job_uuid else None
    )
    report = report_for_job(job_id=job_uuid) if generation_request is not None else None
    if report is None:
        raise Http404
    gate = {"passed": report.passed, "checks": report.checks}
    context = {
        "generation_request": generation_request,
        "report": report,
        **report_context(request.user, gate, report.metrics),
    }
    return render(request, "catalog/report_job.html", context)
