"""Administrators publish policy versions: edit the YAML, review the diff, publish.

Mounted under /manage/policy/ (portal.manage_urls) beside the other admin pages; non-admins get
404, as for every admin page. Publishing goes through approvals.services.policy_publish.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from approvals.forms import PolicyDraftForm
from approvals.models import PolicyVersion
from approvals.selectors import policy_versions_for
from approvals.services import PolicyInvalid, policy_active, policy_diff, policy_parse, policy_publish
from approvals.services.policy import normalize_source, policy_file, sha256_of
from audit.services import audit_denied
from core.errors import DomainError
from core.roles import Role, has_role


def _require_admin(request: HttpRequest) -> None:
    if not has_role(request.user, Role.ADMIN):
        if request.method == "POST" and request.user.is_authenticated:
            audit_denied(
                actor=request.user,
                action="manage.write",
                target_type="page",
                target_id=request.path[:64],
                reason="admin role required",
            )
        raise Http404("No such page.")


@require_http_methods(["GET", "POST"])
def policy_manage(request: HttpRequest) -> HttpResponse:
    """GET: the active version and a draft to edit. POST action=review: validate and show the diff.
    POST action=publish: publish the reviewed draft (refused if another version came first)."""
    _require_admin(request)
    if request.method == "GET":
        active = policy_active()
        source = active.source if active else policy_file().read_text(encoding="utf-8")
        form = PolicyDraftForm(initial={"source": source, "base": active.number if active else None})
        return _page(request, form, active=active)
    form = PolicyDraftForm(request.POST)
    active = policy_active()
    if not form.is_valid():
        return _page(request, form, active=active)
    reviewed = request.POST.get("reviewed") == sha256_of(normalize_source(form.cleaned_data["source"]))
    if request.POST.get("action") == "publish" and reviewed:
        return _publish(request, form, active)
    # Publishing text whose diff was not shown (never reviewed, or edited since): review first.
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
        next_number=(active.number + 1) if active else 2,
    )


def _publish(request: HttpRequest, form: PolicyDraftForm, active: PolicyVersion | None) -> HttpResponse:
    try:
        version = policy_publish(
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
    messages.success(request, f"Published policy v{version.number}. The next submission is tiered with it.")
    return redirect("portal:policy")


def _page(request: HttpRequest, form: PolicyDraftForm, **context: object) -> HttpResponse:
    versions = policy_versions_for(user=request.user)[:50]
    return render(request, "approvals/policy/manage.html", {"form": form, "versions": versions, **context})


@require_http_methods(["GET"])
def policy_version_detail(request: HttpRequest, number: int) -> HttpResponse:
    """One published version's text, with its diff against the version before it."""
    _require_admin(request)
    version = policy_versions_for(user=request.user).filter(number=number).first()
    if version is None:
        raise Http404("No such policy version.")
    previous = policy_versions_for(user=request.user).filter(number__lt=number).order_by("-number").first()
    diff = (
        policy_diff(
            previous.source, version.source, old_label=f"v{previous.number}", new_label=f"v{version.number}"
        )
        if previous
        else []
    )
    return render(
        request, "approvals/policy/version.html", {"version": version, "previous": previous, "diff": diff}
    )
