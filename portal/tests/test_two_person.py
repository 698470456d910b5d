"""Two people for power, tried as the attacker would: one admin alone, in the browser.

Each attack (put oneself in a team, promote a teammate to privacy officer, create another admin,
reset someone's second factor or password) must not take effect until a second, different admin
approves it; no admin acts on their own account; every refusal is in the audit log with its
reason code. There is no REST endpoint for accounts (the API has none to attack).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core import mail
from django.test import Client, RequestFactory
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from conftest import PASSWORD
from core.errors import Conflict, PermissionDenied
from portal import services
from portal.models import PendingAccountChange, Team, User

SOCK_PASSWORD = "Sock-Puppet-Password-31"


@pytest.fixture
def adam(make_user: Any) -> User:
    """A second admin."""
    return make_user("adam", "admin", "IT")


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def password_signs_in(username: str, password: str) -> bool:
    return (
        authenticate(RequestFactory().post("/accounts/login/"), username=username, password=password)
        is not None
    )


def edit(client: Client, user: User, **changes: Any) -> Any:
    form: dict[str, Any] = {"role": user.role, "team": user.team_id or "", "is_active": "on", **changes}
    return client.post(
        reverse("portal:user-edit", args=[user.pk]), {k: v for k, v in form.items() if v is not None}
    )


def create(client: Client, username: str, **fields: str) -> Any:
    form = {
        "username": username,
        "email": "",
        "role": "data_scientist",
        "team": "",
        "new_team": "",
        "password": SOCK_PASSWORD,
        "password_confirm": SOCK_PASSWORD,
        **fields,
    }
    return client.post(reverse("portal:user-create"), form)


def decide(client: Client, change: PendingAccountChange, action: str, reason: str = "") -> Any:
    return client.post(
        reverse("portal:change-decide", args=[change.pk]), {"action": action, "reason": reason}, follow=True
    )


def pending_for(user: User) -> PendingAccountChange:
    return PendingAccountChange.objects.get(target=user, outcome="pending")


def denied(actor: str, reason: str) -> int:
    return AuditEvent.objects.filter(
        actor_name=actor, outcome=Outcome.DENIED, details={"reason": reason}
    ).count()


# --- the four attacks, one admin alone -----------------------------------------------------------


def test_an_admin_cannot_put_themselves_in_a_team(ada: User, alice: User) -> None:
    cardiology = Team.objects.get(name="Cardiology")

    response = edit(signed_in(ada), ada, team=cardiology.pk)

    assert "cannot change your own account" in response.content.decode()
    ada.refresh_from_db()
    assert ada.team != cardiology
    assert not PendingAccountChange.objects.exists()
    assert denied("ada", "own_account") == 1


def test_an_admin_cannot_plant_a_sock_puppet_in_a_team_and_sign_in_as_it(ada: User, alice: User) -> None:
    cardiology = Team.objects.get(name="Cardiology")
    client = signed_in(ada)

    create(client, "mallory", team=str(cardiology.pk))
    response = decide(client, pending_for(User.objects.get(username="mallory")), "approve")

    assert "a second admin must approve" in response.content.decode()
    mallory = User.objects.get(username="mallory")
    assert (mallory.team, mallory.is_active) == (None, False)
    assert not password_signs_in("mallory", SOCK_PASSWORD)
    assert pending_for(mallory).proposed_by == ada
    assert denied("ada", "same_admin") == 1


def test_an_admin_alone_cannot_promote_a_teammate_to_privacy_officer(ada: User, bob: User) -> None:
    client = signed_in(ada)

    edit(client, bob, role="privacy_officer")
    decide(client, pending_for(bob), "approve")

    bob.refresh_from_db()
    assert bob.role == "data_scientist"
    assert denied("ada", "same_admin") == 1


def test_an_admin_alone_cannot_create_another_admin(ada: User) -> None:
    client = signed_in(ada)

    create(client, "eve", role="admin")
    eve = User.objects.get(username="eve")
    decide(client, pending_for(eve), "approve")

    eve.refresh_from_db()
    assert (eve.role, eve.is_active) == ("data_scientist", False)
    assert not password_signs_in("eve", SOCK_PASSWORD)


@pytest.mark.parametrize("role", ["admin", "data_steward", "auditor"])
def test_every_role_with_access_or_oversight_waits_for_a_second_admin(
    ada: User, adam: User, alice: User, role: str
) -> None:
    edit(signed_in(ada), alice, role=role)
    alice.refresh_from_db()
    assert alice.role == "data_scientist"

    decide(signed_in(adam), pending_for(alice), "approve")

    alice.refresh_from_db()
    assert alice.role == role


def test_re_activating_a_user_waits_for_a_second_admin(ada: User, adam: User, alice: User) -> None:
    client = signed_in(ada)
    edit(client, alice, is_active=None)  # deactivation: at once
    alice.refresh_from_db()
    assert alice.is_active is False

    edit(client, alice)  # re-activation: proposed only
    alice.refresh_from_db()
    assert alice.is_active is False

    decide(signed_in(adam), pending_for(alice), "approve")
    alice.refresh_from_db()
    assert alice.is_active is True


# --- with a second admin ---------------------------------------------------------------------


def test_a_second_admin_approves_and_the_promotion_applies_audited_with_both_names(
    ada: User, adam: User, bob: User
) -> None:
    edit(signed_in(ada), bob, role="privacy_officer")
    queue = signed_in(adam).get(reverse("portal:change-list")).content.decode()
    assert "Waiting for a second admin (1)" in queue and 'value="approve"' in queue

    decide(signed_in(adam), pending_for(bob), "approve")

    bob.refresh_from_db()
    assert bob.role == "privacy_officer"
    change = PendingAccountChange.objects.get(target=bob)
    assert (change.outcome, change.proposed_by_name, change.decided_by_name) == ("approved", "ada", "adam")
    actions = list(
        AuditEvent.objects.filter(target_type="user", target_id=str(bob.pk))
        .order_by("seq")
        .values_list("action", "actor_name")
    )
    assert actions[-3:] == [
        ("account_change.propose", "ada"),
        ("user.update", "adam"),
        ("account_change.approve", "adam"),
    ]


def test_the_proposer_sees_no_approve_button_but_can_withdraw(ada: User, bob: User) -> None:
    client = signed_in(ada)
    edit(client, bob, role="privacy_officer")

    queue = client.get(reverse("portal:change-list")).content.decode()
    assert 'value="approve"' not in queue and "You proposed this" in queue

    decide(client, pending_for(bob), "withdraw")
    assert PendingAccountChange.objects.get(target=bob).outcome == "withdrawn"
    bob.refresh_from_db()
    assert bob.role == "data_scientist"


def test_a_second_admin_rejects_with_a_reason_and_nothing_applies(ada: User, adam: User, bob: User) -> None:
    edit(signed_in(ada), bob, role="admin")
    change = pending_for(bob)
    client = signed_in(adam)

    without_reason = decide(client, change, "reject")
    assert "Say why you reject" in without_reason.content.decode()
    assert pending_for(bob) == change

    decide(client, change, "reject", reason="Bob does not need admin")
    change.refresh_from_db()
    bob.refresh_from_db()
    assert (change.outcome, change.reason, bob.role) == (
        "rejected",
        "Bob does not need admin",
        "data_scientist",
    )
    assert AuditEvent.objects.filter(action="account_change.reject", actor_name="adam").exists()


def test_an_admin_cannot_approve_a_change_to_their_own_account(ada: User, adam: User) -> None:
    cardiology = Team.objects.create(name="Cardiology")
    edit(signed_in(ada), adam, team=cardiology.pk)

    page = signed_in(adam).get(reverse("portal:change-list")).content.decode()
    assert 'value="approve"' not in page and "This is your account" in page
    decide(signed_in(adam), pending_for(adam), "approve")

    adam.refresh_from_db()
    assert adam.team != cardiology
    assert denied("adam", "own_account") == 1


@pytest.mark.parametrize("persona", ["olivia", "sam", "audrey", "alice"])
def test_non_admins_cannot_approve_and_the_attempt_is_recorded(
    request: pytest.FixtureRequest, ada: User, bob: User, persona: str
) -> None:
    edit(signed_in(ada), bob, role="privacy_officer")
    user = request.getfixturevalue(persona)

    response = signed_in(user).post(
        reverse("portal:change-decide", args=[pending_for(bob).pk]), {"action": "approve"}
    )

    assert response.status_code == 404
    bob.refresh_from_db()
    assert bob.role == "data_scientist"
    assert denied(persona, "not_admin") == 1


def test_a_change_is_not_applied_over_a_different_account_state(ada: User, adam: User, bob: User) -> None:
    edit(signed_in(ada), bob, role="privacy_officer")
    services.user_update(actor=None, user_id=bob.pk, role="data_steward")  # an operator, meanwhile

    with pytest.raises(Conflict, match="changed since this was proposed"):
        services.account_change_approve(actor=adam, change_id=pending_for(bob).pk)
    bob.refresh_from_db()
    assert bob.role == "data_steward"


def test_a_proposal_by_someone_no_longer_admin_cannot_be_approved(
    ada: User, adam: User, make_user: Any, bob: User
) -> None:
    edit(signed_in(ada), bob, role="admin")
    services.user_update(actor=adam, user_id=ada.pk, role="data_scientist")  # demotion: at once

    with pytest.raises(Conflict, match="no longer an active admin"):
        services.account_change_approve(actor=adam, change_id=pending_for(bob).pk)


def test_the_service_refuses_whoever_calls_it(ada: User, adam: User, bob: User) -> None:
    # The pages only show buttons; the rule is the service's, so no other caller can skip it.
    outcome = services.user_update(actor=ada, user_id=bob.pk, role="admin")
    assert outcome.pending is not None and not outcome.applied

    with pytest.raises(PermissionDenied):
        services.account_change_approve(actor=ada, change_id=outcome.pending.pk)
    with pytest.raises(PermissionDenied):
        services.user_update(actor=ada, user_id=ada.pk, role="auditor")
    bob.refresh_from_db()
    assert bob.role == "data_scientist"


# --- second factor and password resets -----------------------------------------------------------


def totp_device(user: User) -> Any:
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    StaticDevice.objects.create(user=user, name="backup", confirmed=True)
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def devices(user: User) -> int:
    from django_otp import devices_for_user

    return len(list(devices_for_user(user, confirmed=None)))


def test_an_mfa_reset_needs_a_second_admin(ada: User, adam: User, olivia: User) -> None:
    totp_device(olivia)
    client = signed_in(ada)

    client.post(reverse("portal:user-reset", args=[olivia.pk, "mfa_reset"]))
    decide(client, pending_for(olivia), "approve")
    assert devices(olivia) == 2

    decide(signed_in(adam), pending_for(olivia), "approve")

    assert devices(olivia) == 0
    event = AuditEvent.objects.get(action="user.mfa_reset")
    assert (event.actor_name, event.details["devices"], event.details["proposed_by"]) == ("adam", 2, "ada")


def test_a_forced_password_reset_needs_a_second_admin_then_the_user_resets_by_email(
    ada: User, adam: User, alice: User, api: Any
) -> None:
    alice.email = "alice@hospital.example"
    alice.save(update_fields=["email"])
    token_client = api(alice)
    client = signed_in(ada)

    client.post(reverse("portal:user-reset", args=[alice.pk, "password_reset"]))
    assert password_signs_in("alice", PASSWORD)
    assert token_client.get("/api/v1/requests/").status_code == 200

    decide(signed_in(adam), pending_for(alice), "approve")

    alice.refresh_from_db()
    assert not alice.has_usable_password()
    assert not password_signs_in("alice", PASSWORD)
    assert token_client.get("/api/v1/requests/").status_code == 401
    assert AuditEvent.objects.filter(action="user.password_reset", actor_name="adam").exists()


def test_after_a_forced_reset_the_user_gets_the_reset_email(ada: User, adam: User, alice: User) -> None:
    alice.email = "alice@hospital.example"
    alice.save(update_fields=["email"])
    services.account_change_approve(
        actor=adam,
        change_id=services.account_reset_propose(actor=ada, user_id=alice.pk, kind="password_reset").pk,
    )

    # Her way back in; Django's stock form skips accounts with an unusable password.
    Client().post(reverse("password_reset"), {"email": "alice@hospital.example"})

    assert len(mail.outbox) == 1 and "/accounts/password/reset/" in mail.outbox[0].body


def test_the_portal_reset_form_reaches_a_forced_reset_account_but_not_an_inactive_one(
    ada: User, adam: User, alice: User, bob: User
) -> None:
    from portal.forms import PortalPasswordResetForm

    for user in (alice, bob):
        user.email = f"{user.username}@hospital.example"
        user.save(update_fields=["email"])
        services.account_change_approve(
            actor=adam,
            change_id=services.account_reset_propose(actor=ada, user_id=user.pk, kind="password_reset").pk,
        )
    services.user_update(actor=ada, user_id=bob.pk, is_active=False)

    assert list(PortalPasswordResetForm().get_users("ALICE@hospital.example")) == [alice]
    assert list(PortalPasswordResetForm().get_users("bob@hospital.example")) == []


@pytest.mark.parametrize("kind", ["mfa_reset", "password_reset"])
def test_an_admin_cannot_reset_their_own_factor_or_password(ada: User, kind: str) -> None:
    response = signed_in(ada).post(reverse("portal:user-reset", args=[ada.pk, kind]), follow=True)

    assert "cannot change your own account" in response.content.decode()
    assert not PendingAccountChange.objects.exists()
    assert User.objects.get(pk=ada.pk).has_usable_password()
    assert denied("ada", "own_account") == 1
    with pytest.raises(PermissionDenied):  # nor through the service
        services.account_reset_propose(actor=ada, user_id=ada.pk, kind=kind)


def test_a_non_admin_cannot_propose_a_reset(olivia: User, alice: User) -> None:
    response = signed_in(olivia).post(reverse("portal:user-reset", args=[alice.pk, "password_reset"]))

    assert response.status_code == 404
    assert not PendingAccountChange.objects.exists()


def test_the_database_refuses_a_change_decided_by_its_proposer_or_its_target(ada: User, bob: User) -> None:
    from django.db import IntegrityError, transaction

    change = services.user_update(actor=ada, user_id=bob.pk, role="admin").pending
    assert change is not None
    for decider in (ada, bob):
        with pytest.raises(IntegrityError), transaction.atomic():
            PendingAccountChange.objects.filter(pk=change.pk).update(outcome="approved", decided_by=decider)


def test_the_edit_page_shows_what_waits_and_offers_resets_only_for_other_accounts(
    ada: User, bob: User
) -> None:
    client = signed_in(ada)
    edit(client, bob, role="admin")

    other = client.get(reverse("portal:user-edit", args=[bob.pk])).content.decode()
    own = client.get(reverse("portal:user-edit", args=[ada.pk])).content.decode()
    listing = client.get(reverse("portal:user-list")).content.decode()

    assert "Waiting for a second admin" in other and "Reset second factor" in other
    assert "Reset second factor" not in own and "This is your own account" in own
    assert "1 change waiting for a second admin" in listing
