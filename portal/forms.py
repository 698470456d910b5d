"""Forms for the admin pages. They validate shape only; rules (password strength, uniqueness,
who may do what) live in portal.services so the browser, the API and commands agree."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import PasswordResetForm

from core.errors import DomainError
from core.roles import Role
from portal.models import Team, User

_ROLE_CHOICES = [("", "Any role"), *Role.choices]


def _team_field(*, empty_label: str) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=Team.objects.order_by("name"), required=False, empty_label=empty_label
    )


def add_domain_error(form: forms.Form, exc: DomainError) -> None:
    """Attach a service's refusal to the field it names, else to the form as a whole."""
    field = next((name for name in exc.fields if name in form.fields), None)
    form.add_error(field, exc.message)


class UserFilterForm(forms.Form):
    role = forms.ChoiceField(choices=_ROLE_CHOICES, required=False)
    team = _team_field(empty_label="Any team")


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.DATA_SCIENTIST)
    team = _team_field(empty_label="No team")
    new_team = forms.CharField(
        max_length=80,
        required=False,
        label="Or a new team",
        help_text="Creates the team; leave empty to use the team picked above.",
    )
    password = forms.CharField(widget=forms.PasswordInput, strip=False)
    password_confirm = forms.CharField(widget=forms.PasswordInput, strip=False, label="Password again")

    def clean(self) -> dict[str, Any]:
        data = self.cleaned_data
        if data.get("team") and data.get("new_team", "").strip():
            self.add_error("new_team", "Pick an existing team or name a new one, not both.")
        password = data.get("password")
        if password and password != data.get("password_confirm"):
            self.add_error("password_confirm", "The two passwords differ; type the same password twice.")
        return data

    def team_name(self) -> str | None:
        team = self.cleaned_data.get("team")
        return team.name if team else (self.cleaned_data.get("new_team") or "").strip() or None


class UserEditForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
    team = _team_field(empty_label="No team")
    is_active = forms.BooleanField(
        required=False, label="Active", help_text="Inactive users cannot sign in or use the API."
    )


class TeamCreateForm(forms.Form):
    name = forms.CharField(max_length=80, label="Team name")


class ChangeDecisionForm(forms.Form):
    """Approve, reject (with a reason) or withdraw one pending account change."""

    action = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject"), ("withdraw", "Withdraw")]
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=2000,
        label="Reason for rejecting",
        help_text="Required to reject; every admin sees it.",
    )

    def clean(self) -> dict[str, Any]:
        data = self.cleaned_data
        if data.get("action") == "reject" and not (data.get("reason") or "").strip():
            self.add_error("reason", "Say why you reject this change.")
        return data


class PortalPasswordResetForm(PasswordResetForm):
    """Password reset by e-mail, including accounts whose password is unusable.

    Django's form skips those, for sites where such accounts sign in elsewhere. Here an unusable
    password means one thing: two admins forced a reset (portal.services), and this page is how
    the user sets a new one. Inactive accounts still get nothing."""

    def get_users(self, email: str) -> Any:
        wanted = email.casefold()
        users = User._default_manager.filter(email__iexact=email, is_active=True)
        return (user for user in users if user.email.casefold() == wanted)
