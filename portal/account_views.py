"""The signed-in user's own account: second factor, API tokens, password change and reset."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from audit.services import audit_record
from core.errors import NotFound, ValidationFailed
from portal.auth_mfa import (
    mfa_enrolled,
    mfa_required_for,
    mfa_verify,
    totp_confirm,
    totp_pending_device,
    totp_qr_svg,
    totp_secret_base32,
)
from portal.auth_tokens import token_issue, token_revoke, tokens_of
from portal.forms import PortalPasswordResetForm


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=16,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


class TokenForm(forms.Form):
    label = forms.CharField(label="Label (what the token is for)", max_length=80, required=False)
    end_with_session = forms.BooleanField(
        label="Revoke this token when I sign out of this browser", required=False, initial=True
    )


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("dashboard")


@require_http_methods(["GET", "POST"])
def mfa_setup(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator app (QR code and secret), then show the recovery codes once."""
    user = request.user
    if mfa_enrolled(user):
        # Replacing a factor is an admin reset (two people), not something a session can do.
        messages.info(request, "You already have a second factor. Ask an admin to reset it if you lost it.")
        return redirect("account")
    device = totp_pending_device(user=user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device, codes = totp_confirm(user=user, device_id=device.pk, code=form.cleaned_data["code"])
        except ValidationFailed as exc:
            form.add_error("code", exc.message)
        else:
            otp_login(request, device)
            request.session.cycle_key()
            context = {"codes": codes, "next": _next_url(request)}
            return render(request, "portal/account/recovery_codes.html", context)
    context = {
        "form": form,
        "qr_svg": totp_qr_svg(device),
        "secret": totp_secret_base32(device),
        "next": request.GET.get("next", ""),
        "required": mfa_required_for(user),
    }
    return render(request, "portal/account/mfa_setup.html", context)


@require_http_methods(["GET", "POST"])
def mfa_verify_view(request: HttpRequest) -> HttpResponse:
    """After the password: a code from the authenticator app, or one recovery code."""
    user = request.user
    if not mfa_enrolled(user):
        return redirect("mfa-setup")
    if user.is_verified():
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = mfa_verify(user=user, code=form.cleaned_data["code"], channel="web")
        if device is None:
            form.add_error(
                "code",
                "That code is not right or was already used. Enter the current code, or one unused "
                "recovery code. After several wrong codes you must wait before trying again.",
            )
        else:
            otp_login(request, device)
            # A new session id once the second factor is proven (ASVS V7.2.4).
            request.session.cycle_key()
            audit_record(actor=user, action="auth.mfa.verify", target_type="user", target_id=user.pk)
            return redirect(_next_url(request))
    return render(
        request, "portal/account/mfa_verify.html", {"form": form, "next": request.GET.get("next", "")}
    )


def account(request: HttpRequest) -> HttpResponse:
    context = {"enrolled": mfa_enrolled(request.user), "required": mfa_required_for(request.user)}
    return render(request, "portal/account/account.html", context)


@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """The owner's API tokens: create one (shown once), see when each was used, revoke."""
    form = TokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        keep = not form.cleaned_data["end_with_session"]
        issued = token_issue(
            user=request.user,
            channel="web",
            label=form.cleaned_data["label"],
            session_key=None if keep else request.session.session_key,
        )
        new_key = issued.key
        form = TokenForm()
    context = {
        "tokens": tokens_of(user=request.user)[:50],
        "form": form,
        "new_key": new_key,
        "now": timezone.now(),
    }
    return render(request, "portal/account/tokens.html", context)


@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = token_revoke(actor=request.user, token_id=token_id)
    except NotFound:
        from django.http import Http404

        raise Http404("No such token.") from None
    messages.success(request, f"Token {token.prefix}… is revoked.")
    return redirect("account-tokens")


class CountedPasswordChangeForm(PasswordChangeForm):
    """The old password is checked through `authenticate`, so django-axes counts a wrong one like a
    failed sign-in and a locked account cannot change its password (a stolen session cannot guess
    the old password without limit)."""

    def __init__(self, user: Any, *args: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
        super().__init__(user, *args, **kwargs)
        self.request = request

    def clean_old_password(self) -> str:
        old = self.cleaned_data["old_password"]
        if authenticate(self.request, username=self.user.get_username(), password=old) is None:
            raise forms.ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        return old


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change (old password, validators), audited; tokens end via the signal."""

    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("password_change_done")
    form_class = CountedPasswordChangeForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit_record(
            actor=self.request.user,
            action="auth.password.change",
            target_type="user",
            target_id=self.request.user.pk,
        )
        return response


class PasswordResetView(auth_views.PasswordResetView):
    # Includes accounts whose password two admins voided (a forced reset): see the form.
    form_class = PortalPasswordResetForm


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The e-mailed link's form; audited. The second factor is still asked at the next sign-in."""

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit_record(
            actor=form.user, action="auth.password.reset", target_type="user", target_id=form.user.pk
        )
        return response
