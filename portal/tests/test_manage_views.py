"""Admins manage users, roles and teams in the browser; for everyone else the pages do not exist."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.test import Client, RequestFactory
from django.urls import reverse

from audit.models import AuditEvent, Outcome
from conftest import PASSWORD
from portal.models import PendingAccountChange, Team, User

NEW_PASSWORD = "Plenty-Of-Entropy-77"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def new_user_form(**overrides: str) -> dict[str, str]:
    form = {
        "username": "dora",
        "email": "dora@example.org",
        "role": "data_scientist",
        "team": "",
        "new_team": "",
        "password": NEW_PASSWORD,
        "password_confirm": NEW_PASSWORD,
    }
    form.update(overrides)
    return form


def edit_form(user: User, **overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {"role": user.role, "team": user.team_id or "", "is_active": "on"}
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


# --- creating users --------------------------------------------------------------------------


@pytest.fixture
def adam(make_user: Any) -> User:
    """A second admin: the one who approves what ada proposes."""
    return make_user("adam", "admin", "IT")


def password_signs_in(username: str, password: str) -> bool:
    request = RequestFactory().post(reverse("login"))
    return authenticate(request, username=username, password=password) is not None


def approve_pending(admin: User, target: User) -> None:
    change = PendingAccountChange.objects.get(target=target, outcome="pending")
    response = signed_in(admin).post(reverse("portal:change-decide", args=[change.pk]), {"action": "approve"})
    assert response.status_code == 302


def test_admin_creates_a_teamless_data_scientist_who_can_sign_in_at_once(ada: User) -> None:
    response = signed_in(ada).post(reverse("portal:user-create"), new_user_form(), follow=True)

    assert response.redirect_chain[-1][0] == reverse("portal:user-list")
    dora = User.objects.get(username="dora")
    assert (dora.role, dora.team, dora.email, dora.is_active) == (
        "data_scientist",
        None,
        "dora@example.org",
        True,
    )
    assert password_signs_in("dora", NEW_PASSWORD)


def test_a_user_created_in_a_new_team_signs_in_once_a_second_admin_approves(ada: User, adam: User) -> None:
    response = signed_in(ada).post(
        reverse("portal:user-create"), new_user_form(new_team="Neurology"), follow=True
    )

    assert "waiting for a second admin" in response.content.decode()
    dora = User.objects.get(username="dora")
    assert (dora.team, dora.is_active) == (None, False)
    assert not password_signs_in("dora", NEW_PASSWORD)

    approve_pending(adam, dora)

    dora.refresh_from_db()
    assert (dora.role, str(dora.team), dora.is_active) == ("data_scientist", "Neurology", True)
    assert password_signs_in("dora", NEW_PASSWORD)


def test_admin_creates_user_in_an_existing_team_once_approved(ada: User, adam: User, alice: User) -> None:
    cardiology = Team.objects.get(name="Cardiology")

    signed_in(ada).post(reverse("portal:user-create"), new_user_form(team=str(cardiology.pk)))
    approve_pending(adam, User.objects.get(username="dora"))

    assert User.objects.get(username="dora").team == cardiology


def test_user_creation_is_audited_with_the_admin_as_actor(ada: User) -> None:
    signed_in(ada).post(reverse("portal:user-create"), new_user_form(new_team="Neurology"))

    dora = User.objects.get(username="dora")
    event = AuditEvent.objects.get(action="user.create", target_id=str(dora.pk))
    assert (event.actor_name, event.outcome) == ("ada", Outcome.SUCCESS)
    assert AuditEvent.objects.filter(action="team.create", actor_name="ada").exists()
    proposal = AuditEvent.objects.get(action="account_change.propose", target_id=str(dora.pk))
    assert proposal.actor_name == "ada" and proposal.details["new_account"] is True


def test_mismatched_passwords_are_refused_on_the_confirm_field(ada: User) -> None:
    response = signed_in(ada).post(
        reverse("portal:user-create"), new_user_form(password_confirm="Something-Else-99")
    )

    assert response.status_code == 200
    assert "type the same password twice" in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_weak_password_shows_the_validators_reason(ada: User) -> None:
    response = signed_in(ada).post(
        reverse("portal:user-create"), new_user_form(password="12345", password_confirm="12345")
    )

    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_taken_username_is_refused_without_an_error_page(ada: User, alice: User) -> None:
    response = signed_in(ada).post(reverse("portal:user-create"), new_user_form(username="alice"))

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.filter(username="alice").count() == 1


def test_picking_a_team_and_naming_a_new_one_is_refused(ada: User) -> None:
    response = signed_in(ada).post(
        reverse("portal:user-create"),
        new_user_form(team=str(ada.team_id), new_team="Neurology"),
    )

    assert "not both" in response.content.decode()
    assert not Team.objects.filter(name="Neurology").exists()


def test_create_form_labels_every_field(ada: User) -> None:
    html = signed_in(ada).get(reverse("portal:user-create")).content.decode()

    for field in ("username", "email", "role", "team", "new_team", "password", "password_confirm"):
        assert f'<label for="id_{field}">' in html


# --- editing users ---------------------------------------------------------------------------


def test_a_role_change_applies_when_a_second_admin_approves_and_is_audited(
    ada: User, adam: User, alice: User
) -> None:
    response = signed_in(ada).post(
        reverse("portal:user-edit", args=[alice.pk]), edit_form(alice, role="privacy_officer")
    )

    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.role == "data_scientist"

    approve_pending(adam, alice)

    alice.refresh_from_db()
    assert alice.role == "privacy_officer"
    event = AuditEvent.objects.get(action="user.update", target_id=str(alice.pk))
    assert event.actor_name == "adam"
    assert event.details["role"] == ["data_scientist", "privacy_officer"]
    assert (event.details["proposed_by"], event.details["approved_by"]) == ("ada", "adam")


def test_moving_a_user_to_another_team_and_out_of_any_team_each_need_a_second_admin(
    ada: User, adam: User, alice: User, charlie: User
) -> None:
    oncology = Team.objects.get(name="Oncology")
    client = signed_in(ada)

    client.post(reverse("portal:user-edit", args=[alice.pk]), edit_form(alice, team=oncology.pk))
    approve_pending(adam, alice)
    alice.refresh_from_db()
    assert alice.team == oncology

    client.post(reverse("portal:user-edit", args=[alice.pk]), edit_form(alice, team=""))
    alice.refresh_from_db()
    assert alice.team == oncology
    approve_pending(adam, alice)
    alice.refresh_from_db()
    assert alice.team is None


def test_deactivation_applies_at_once_and_the_user_can_no_longer_sign_in(ada: User, alice: User) -> None:
    signed_in(ada).post(reverse("portal:user-edit", args=[alice.pk]), edit_form(alice, is_active=None))

    alice.refresh_from_db()
    assert alice.is_active is False
    assert not password_signs_in("alice", PASSWORD)
    assert AuditEvent.objects.get(action="user.update", target_id=str(alice.pk)).actor_name == "ada"


def test_demotion_to_data_scientist_applies_at_once(ada: User, olivia: User) -> None:
    signed_in(ada).post(
        reverse("portal:user-edit", args=[olivia.pk]), edit_form(olivia, role="data_scientist")
    )

    olivia.refresh_from_db()
    assert olivia.role == "data_scientist"
    assert not PendingAccountChange.objects.exists()


def test_saving_without_changes_records_nothing(ada: User, alice: User) -> None:
    client = signed_in(ada)
    before = AuditEvent.objects.count()

    client.post(reverse("portal:user-edit", args=[alice.pk]), edit_form(alice))

    assert AuditEvent.objects.count() == before
    assert not PendingAccountChange.objects.exists()


def test_admin_cannot_change_their_own_role(ada: User) -> None:
    response = signed_in(ada).post(reverse("portal:user-edit", args=[ada.pk]), edit_form(ada, role="auditor"))

    assert response.status_code == 200
    assert "cannot change your own account" in response.content.decode()
    ada.refresh_from_db()
    assert ada.role == "admin"
    assert AuditEvent.objects.get(action="user.update", outcome=Outcome.DENIED).details == {
        "reason": "own_account"
    }


def test_admin_cannot_deactivate_themselves(ada: User) -> None:
    response = signed_in(ada).post(reverse("portal:user-edit", args=[ada.pk]), edit_form(ada, is_active=None))

    assert "cannot change your own account" in response.content.decode()
    ada.refresh_from_db()
    assert ada.is_active


def test_editing_a_missing_user_is_404(ada: User) -> None:
    assert signed_in(ada).get(reverse("portal:user-edit", args=[999_999])).status_code == 404


# --- lists and teams -------------------------------------------------------------------------


def test_user_list_filters_by_role_and_team(ada: User, alice: User, charlie: User, olivia: User) -> None:
    client = signed_in(ada)
    url = reverse("portal:user-list")

    by_role = client.get(url, {"role": "data_scientist"}).context["users"]
    cardiology = str(alice.team_id)
    by_team = client.get(url, {"team": cardiology}).context["users"]
    both = client.get(url, {"role": "privacy_officer", "team": cardiology}).context["users"]

    assert [u.username for u in by_role] == ["alice", "charlie"]
    assert [u.username for u in by_team] == ["alice"]
    assert list(both) == []


def test_admin_creates_a_team_and_sees_member_counts(ada: User, alice: User, bob: User) -> None:
    client = signed_in(ada)

    client.post(reverse("portal:team-list"), {"name": "Neurology"})

    teams = {t.name: t.member_count for t in client.get(reverse("portal:team-list")).context["teams"]}
    assert teams["Neurology"] == 0
    assert teams["Cardiology"] == 2
    assert AuditEvent.objects.filter(action="team.create", actor_name="ada", details={"name": "Neurology"})


def test_an_existing_team_name_is_refused_whatever_its_case(ada: User, alice: User) -> None:
    response = signed_in(ada).post(reverse("portal:team-list"), {"name": "cardiology"})

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Team.objects.filter(name__iexact="cardiology").count() == 1


# --- everyone else ---------------------------------------------------------------------------

NON_ADMINS = ["alice", "olivia", "sam", "audrey"]


@pytest.mark.parametrize("persona", NON_ADMINS)
@pytest.mark.parametrize(
    "url_name", ["portal:user-list", "portal:user-create", "portal:team-list", "portal:change-list"]
)
def test_non_admins_get_404_on_every_management_page(
    request: pytest.FixtureRequest, persona: str, url_name: str
) -> None:
    user = request.getfixturevalue(persona)

    assert signed_in(user).get(reverse(url_name)).status_code == 404


@pytest.mark.parametrize("persona", NON_ADMINS)
def test_non_admin_cannot_promote_themselves_and_the_attempt_is_recorded(
    request: pytest.FixtureRequest, persona: str
) -> None:
    user = request.getfixturevalue(persona)
    client = signed_in(user)

    edit = client.post(reverse("portal:user-edit", args=[user.pk]), edit_form(user, role="admin"))
    create = client.post(reverse("portal:user-create"), new_user_form(role="admin"))
    team = client.post(reverse("portal:team-list"), {"name": "Shadow IT"})

    assert (edit.status_code, create.status_code, team.status_code) == (404, 404, 404)
    user.refresh_from_db()
    assert user.role != "admin"
    assert not User.objects.filter(username="dora").exists()
    assert not Team.objects.filter(name="Shadow IT").exists()
    denied = AuditEvent.objects.filter(actor_name=persona, outcome=Outcome.DENIED)
    assert denied.count() == 3


def test_a_deactivated_admin_loses_the_pages_at_once(ada: User) -> None:
    client = signed_in(ada)
    User.objects.filter(pk=ada.pk).update(is_active=False)

    response = client.get(reverse("portal:user-list"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    "url",
    [
        "/manage/users/",
        "/manage/users/new/",
        "/manage/teams/",
        "/manage/users/1/",
        "/manage/changes/",
        "/manage/changes/1/decide/",
        "/manage/users/1/reset/mfa_reset/",
    ],
)
def test_anonymous_visitors_are_sent_to_sign_in(db: None, url: str) -> None:
    response = Client().post(url, {"name": "Shadow IT", "role": "admin"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not Team.objects.filter(name="Shadow IT").exists()
