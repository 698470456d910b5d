"""Admin pages for users, roles and teams. Every write goes through portal.services."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from audit.services import audit_denied
from core.errors import DomainError, PermissionDenied
from core.roles import Role
from core.views import forbidden
from portal import services
from portal.forms import (
    ChangeDecisionForm,
    TeamCreateForm,
    UserCreateForm,
    UserEditForm,
    UserFilterForm,
    add_domain_error,
)
from portal.models import PendingAccountChange, Team, User
from portal.services.changes import NOT_PENDING


def admin_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Non-admins get 404: the pages do not exist for them (deny by default).

    A refused POST is recorded, so an attempt to change accounts is evidenced even though it
    changes nothing. Anonymous users never get here: the login middleware redirects them.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if refusal := services.admin_refusal(actor=request.user):
            if request.method == "POST" and request.user.is_authenticated:
                audit_denied(
                    actor=request.user,
                    action="manage.write",
                    target_type="page",
                    target_id=request.path[:64],
                    reason=refusal,
                )
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapper


def _users_filtered(form: UserFilterForm) -> QuerySet[User]:
    users = User.objects.select_related("team").order_by("username")
    if form.is_valid():
        if form.cleaned_data["role"]:
            users = users.filter(role=form.cleaned_data["role"])
        if form.cleaned_data["team"]:
            users = users.filter(team=form.cleaned_data["team"])
    return users


@admin_only
@require_http_methods(["GET"])
def user_list(request: HttpRequest) -> HttpResponse:
    form = UserFilterForm(request.GET or None)
    context = {
        "form": form,
        "users": _users_filtered(form),
        "pending_count": services.account_changes_pending().count(),
    }
    return render(request, "portal/manage/user_list.html", context)


@admin_only
@require_http_methods(["GET", "POST"])
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_create(
                actor=request.user,
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                team_name=form.team_name(),
                password=form.cleaned_data["password"],
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            if user.is_active:
                messages.success(request, f"Created {user.username} ({user.role_label}).")
            else:
                messages.info(
                    request,
                    f"Created {user.username} as an inactive data scientist. The role and team you chose "
                    "are waiting for a second admin; the account can sign in once they approve.",
                )
            return redirect("portal:user-list")
    return render(request, "portal/manage/user_form.html", {"form": form})


@admin_only
@require_http_methods(["GET", "POST"])
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    subject = get_object_or_404(User.objects.select_related("team"), pk=pk)
    initial = {"role": subject.role, "team": subject.team_id, "is_active": subject.is_active}
    form = UserEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        team = form.cleaned_data["team"]
        try:
            outcome = services.user_update(
                actor=request.user,
                user_id=subject.pk,
                role=form.cleaned_data["role"],
                team_id=team.pk if team else None,
                clear_team=team is None,
                is_active=form.cleaned_data["is_active"],
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            _report_update(request, subject, outcome)
            return redirect("portal:user-list")
    context = {
        "form": form,
        "subject": subject,
        "own_account": subject.pk == request.user.pk,
        "pending": services.account_changes_pending().filter(target=subject),
    }
    return render(request, "portal/manage/user_edit.html", context)


def _report_update(request: HttpRequest, subject: User, outcome: services.AccountUpdate) -> None:
    if outcome.applied:
        messages.success(request, f"Saved {subject.username}: {', '.join(outcome.applied)} changed.")
    if outcome.pending is not None:
        messages.info(
            request,
            f"The change of {', '.join(outcome.pending.fields)} for {subject.username} is waiting for a "
            "second admin (Pending changes).",
        )
    if not outcome.applied and outcome.pending is None:
        messages.success(request, f"Saved {subject.username}: nothing changed.")


@admin_only
@require_http_methods(["POST"])
def user_reset(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """Propose resetting a user's second factor or password (applied when a second admin approves)."""
    subject = get_object_or_404(User, pk=pk)
    try:
        services.account_reset_propose(actor=request.user, user_id=subject.pk, kind=kind)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("portal:user-edit", pk=subject.pk)
    label = PendingAccountChange.Kind(kind).label
    messages.info(request, f"{label} for {subject.username} is waiting for a second admin.")
    return redirect("portal:change-list")


@admin_only
@require_http_methods(["GET"])
def change_list(request: HttpRequest) -> HttpResponse:
    """The queue of changes waiting for a second admin, each with what this admin may do."""
    teams = dict(Team.objects.values_list("pk", "name"))
    pending = [
        {
            "change": change,
            "rows": _describe(change, teams),
            "refusal": services.account_change_refusal(actor=request.user, change=change),
            "may_withdraw": services.account_change_withdraw_refusal(actor=request.user, change=change)
            is None,
        }
        for change in services.account_changes_pending()
    ]
    decided = [{"change": c, "rows": _describe(c, teams)} for c in services.account_changes_decided()]
    context = {"pending": pending, "decided": decided, "form": ChangeDecisionForm()}
    return render(request, "portal/manage/change_list.html", context)


def _describe(change: PendingAccountChange, teams: dict[int, str]) -> list[tuple[str, str, str]]:
    """(what, from, to) rows that say what approving would do, in words."""
    if change.kind != PendingAccountChange.Kind.ACCOUNT:
        return [(change.get_kind_display(), "", "")]

    def shown(key: str, value: Any) -> str:
        if key == "role":
            return Role(value).label if value in Role.values else str(value)
        if key == "team":
            return teams.get(value, "no team") if value else "no team"
        return "active" if value else "inactive"

    labels = {"role": "Role", "team": "Team", "is_active": "Status"}
    return [(labels.get(k, k), shown(k, change.before.get(k)), shown(k, v)) for k, v in change.fields.items()]


def _change_refused(request: HttpRequest, pk: int) -> HttpResponse | None:
    """The 403 page when this admin may not take the action they ask for on change `pk`, checked
    before the form is read: approve and reject (also what a missing action is taken for) are a
    second admin's, withdraw the proposer's. A change already decided is a state (409), left to
    the form's flow. The refusal's words and its audit row are the service's, which refuses
    before it writes anything."""
    change = get_object_or_404(PendingAccountChange, pk=pk)
    withdraw = request.POST.get("action") == "withdraw"
    rule = services.account_change_withdraw_refusal if withdraw else services.account_change_refusal
    if rule(actor=request.user, change=change) in (None, NOT_PENDING):
        return None
    try:
        if withdraw:
            services.account_change_withdraw(actor=request.user, change_id=pk)
        else:
            # Reject with no reason: were the actor allowed after all, it fails on the reason.
            services.account_change_reject(actor=request.user, change_id=pk, reason="")
    except PermissionDenied as exc:
        return forbidden(request, exc.message, code=exc.code, back=reverse("portal:change-list"))
    except DomainError:
        return None  # allowed after all: the form's own flow answers
    raise AssertionError("the proposer's withdrawal was refused by the rule, not by the service")


@admin_only
@require_http_methods(["POST"])
def change_decide(request: HttpRequest, pk: int) -> HttpResponse:
    if refused := _change_refused(request, pk):
        return refused
    form = ChangeDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect("portal:change-list")
    action = form.cleaned_data["action"]
    try:
        if action == "approve":
            change = services.account_change_approve(actor=request.user, change_id=pk)
        elif action == "reject":
            change = services.account_change_reject(
                actor=request.user, change_id=pk, reason=form.cleaned_data["reason"]
            )
        else:
            change = services.account_change_withdraw(actor=request.user, change_id=pk)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("portal:change-list")
    messages.success(
        request,
        f"{change.get_kind_display()} for {change.target.username}: {change.get_outcome_display().lower()}.",
    )
    return redirect("portal:change-list")


@admin_only
@require_http_methods(["GET", "POST"])
def team_list(request: HttpRequest) -> HttpResponse:
    form = TeamCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(actor=request.user, name=form.cleaned_data["name"])
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"Created team {team.name}.")
            return redirect("portal:team-list")
    teams = Team.objects.annotate(member_count=Count("members")).order_by("name")
    return render(request, "portal/manage/team_list.html", {"form": form, "teams": teams})
