"""Admin pages for users, roles and teams. Every write goes through portal.services."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from audit.services import audit_denied
from core.errors import DomainError
from core.roles import Role, has_role
from portal import services
from portal.forms import TeamCreateForm, UserCreateForm, UserEditForm, UserFilterForm, add_domain_error
from portal.models import Team, User


def admin_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Non-admins get 404: the pages do not exist for them (deny by default).

    A refused POST is recorded, so an attempt to change accounts is evidenced even though it
    changes nothing. Anonymous users never get here: the login middleware redirects them.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
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
    context = {"form": form, "users": _users_filtered(form)}
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
            messages.success(request, f"Created {user.username} ({user.role_label}).")
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
            services.user_update(
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
            messages.success(request, f"Saved {subject.username}.")
            return redirect("portal:user-list")
    return render(request, "portal/manage/user_edit.html", {"form": form, "subject": subject})


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
