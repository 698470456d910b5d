"""Routes that test themselves (NetBox-style): every named route has an entry in
tests/route_access_table.py, and each entry is checked against the access rule written there.

The walk over Django's URL resolver fails, naming them, for routes without an entry and entries
without a route. Each entry then gets up to four checks, one test each:

- anonymous:  pages redirect to sign-in, the API answers 401, public routes answer as recorded;
- get:        who may see it gets it; everyone else signed in gets 404, audited;
- write:      everyone who may not act gets 403 (404 where they may not see it), with an empty
              body, so who is asking is checked before the input; nothing changes; audited;
- other_team: charlie (Oncology) gets 404 on alice's (Cardiology) requests and releases.

Checks the table marks as outliers are strict xfails: fixing the view makes them fail, and the
mark comes out of the table. The objects the URLs name are built once for the module (a real
published release takes seconds) inside a transaction that is rolled back at the end; each test
runs in a savepoint of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tests.route_access_table import ADMIN_NAMESPACE, PERSONAS, ROUTES, Route

TEAMS = {
    "alice": ("data_scientist", "Cardiology"),
    "bob": ("data_scientist", "Cardiology"),
    "charlie": ("data_scientist", "Oncology"),
    "olivia": ("privacy_officer", "Privacy"),
    "sam": ("data_steward", "Data Office"),
    "ada": ("admin", "IT"),
    "audrey": ("auditor", "Audit"),
}
OTHER_TEAM = "charlie"
LOGIN = "/accounts/login/"
# Rows a refused request may touch without changing anything a user acts on: sign-in bookkeeping.
VOLATILE_FIELDS = {"last_login", "last_used"}
SNAPSHOT_APPS = ("portal", "generation", "validation", "approvals", "catalog", "federation")


# --- The walk ---------------------------------------------------------------------------------


def walk(patterns: list[Any] | None = None, namespace: str = "") -> Iterator[tuple[str, str, Any]]:
    """(name, namespace, pattern) of every route; `name` is `namespace:name` as reverse() spells
    it, or "" for an unnamed route."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(part for part in (namespace, entry.namespace or "") if part)
            yield from walk(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else (entry.name or "")
            yield name, namespace, entry


def portal_routes() -> Iterator[tuple[str, Any]]:
    """Every route but Django's admin (one entry in the table for its whole namespace)."""
    for name, namespace, pattern in walk():
        if namespace.split(":")[0] != ADMIN_NAMESPACE:
            yield name, pattern


def test_every_named_route_has_an_entry_in_the_access_table() -> None:
    names = {name for name, _ in portal_routes() if name}
    missing = sorted(names - set(ROUTES))
    assert not missing, f"Routes without an entry in tests/route_access_table.py: {missing}"
    gone = sorted(set(ROUTES) - names)
    assert not gone, f"Entries in tests/route_access_table.py for routes that no longer exist: {gone}"


def test_every_portal_route_is_named() -> None:
    # An unnamed route could not be looked up in the table.
    unnamed = [str(pattern.pattern) for name, pattern in portal_routes() if not name]
    assert not unnamed, f"Name these routes (and add them to tests/route_access_table.py): {unnamed}"


# --- The objects the URLs name ------------------------------------------------------------------


def _build_world() -> dict[str, Any]:
    from approvals.services import RequestInput, request_create, request_decide, request_submit
    from approvals.services.policy import policy_active, policy_propose
    from catalog.access import access_request_create
    from catalog.models import Release
    from catalog.pipeline import pipeline_run
    from conftest import PASSWORD, SAFE_COLUMNS, csv_upload, small_flchain_csv
    from generation.models import SynthesisJob
    from generation.public_declarations import FLCHAIN
    from generation.services import dataset_register, dataset_sign_off, dataset_update_columns
    from portal.auth_tokens import token_mint
    from portal.services import user_create
    from portal.services.changes import account_reset_propose

    users = {
        n: user_create(username=n, password=PASSWORD, role=r, team_name=t) for n, (r, t) in TEAMS.items()
    }
    sam, alice, olivia, ada = users["sam"], users["alice"], users["olivia"], users["ada"]
    source = csv_upload(small_flchain_csv())
    dataset = dataset_register(actor=sam, name="flchain", uploaded_file=source, epsilon_cap="1.0")
    dataset_update_columns(actor=sam, dataset_id=dataset.pk, changes=FLCHAIN)
    dataset = dataset_sign_off(actor=sam, dataset_id=dataset.pk)

    def draft() -> Any:
        data = RequestInput(
            dataset_id=dataset.pk,
            title="Readmission model prototype",
            purpose="Prototype a 30-day mortality model",
            intended_use="Feature engineering in a notebook",
            audience="internal",
            columns=SAFE_COLUMNS,
            synthesizer="gaussian_copula",
            rows=300,
            epsilon=None,
        )
        return request_create(actor=alice, data=data)

    published = request_submit(actor=alice, request_id=draft().pk)
    request_decide(actor=olivia, request_id=published.pk, decision="approve")
    published.refresh_from_db()
    SynthesisJob.objects.filter(pk=published.job_id).update(seed=20240601)
    assert pipeline_run(job_id=published.job_id) == "published"
    release = Release.objects.get(request=published)
    active = policy_active()
    assert active is not None
    proposal = policy_propose(
        actor=ada, source=active.source + "\n# proposed by the route access test\n", base_number=active.number
    )
    objects = {
        "request": request_submit(actor=alice, request_id=draft().pk).pk,  # in review
        "draft": draft().pk,
        "dataset": dataset.pk,
        "release": release.pk,
        "job": published.job_id,
        "token": token_mint(user=alice).token.pk,
        "bob": users["bob"].pk,
        "change": account_reset_propose(actor=ada, user_id=users["bob"].pk, kind="password_reset").pk,
        "proposal": proposal.pk,
        "policy": active.number,
        # charlie (Oncology) finds alice's release and asks to use it.
        "access": access_request_create(
            actor=users["charlie"],
            release_id=release.pk,
            purpose="Validate the mortality model on oncology patients",
            expires_at=timezone.now() + timedelta(days=30),
        ).pk,
    }
    objects["study"] = _federated_study(sam, alice, dataset)
    keys = {name: token_mint(user=user).key for name, user in users.items()}
    return {"users": users, "objects": objects, "keys": keys}


def _federated_study(sam: Any, alice: Any, dataset: Any) -> Any:
    """alice's submitted federated study over two sites whose steward is sam (federation)."""
    from conftest import csv_upload, small_flchain_csv
    from federation.services import StudyInput, site_register, study_file, study_submit
    from generation.public_declarations import FLCHAIN
    from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

    second = dataset_register(
        actor=sam, name="flchain second site", uploaded_file=csv_upload(small_flchain_csv()), epsilon_cap="50"
    )
    dataset_update_columns(actor=sam, dataset_id=second.pk, changes=FLCHAIN)
    second = dataset_sign_off(actor=sam, dataset_id=second.pk)
    sites = [site_register(actor=sam, name=n, dataset_id=d.pk) for n, d in (("A", dataset), ("B", second))]
    study = study_file(
        actor=alice,
        data=StudyInput(
            title="Federated mortality",
            purpose="Route access",
            site_ids=[s.pk for s in sites],
            features=["age", "kappa"],
            target="death",
            rounds=2,
            min_sites=2,
            clipping_norm=1.0,
            noise_multiplier=2.0,
        ),
    )
    return study_submit(actor=alice, study_id=study.pk).pk


@pytest.fixture(scope="module")
def world(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Built once, in a transaction rolled back after the module; each test runs in a savepoint."""
    folder = tmp_path_factory.mktemp("route-access")
    with (
        django_db_blocker.unblock(),
        override_settings(
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            SYNTHGATE_MFA_REQUIRED=False,
            SYNTHGATE_STORAGE_DIR=folder / "storage",
            SYNTHGATE_AUDIT_CHECKPOINT_DIR=folder / "checkpoints",
        ),
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr("generation.services.datasets.new_holdout_seed", lambda: 20240601)
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield _build_world()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


DEFAULTS = {
    "access_request_id": "access",
    "request_id": "request",
    "dataset_id": "dataset",
    "release_id": "release",
    "job_id": "job",
    "token_id": "token",
    "number": "policy",
    "study_id": "study",
}
LITERALS = {"kind": "password_reset", "column": "age", "uidb64": "MQ", "token": "set-password"}


def url_of(name: str, route: Route, world: dict[str, Any]) -> str:
    pattern = dict(portal_routes())[name]
    kwargs: dict[str, Any] = {}
    for key in pattern.pattern.converters:
        if key in route.objects:
            kwargs[key] = world["objects"][route.objects[key]]
        elif key in DEFAULTS:
            kwargs[key] = world["objects"][DEFAULTS[key]]
        else:
            kwargs[key] = LITERALS[key]
    return reverse(name, kwargs=kwargs)


# --- Asking, and what a request left behind -------------------------------------------------------


def ask(route: Route, world: dict[str, Any], persona: str | None, method: str, url: str) -> Any:
    if route.kind == "api":
        api = APIClient()
        if persona:
            api.credentials(HTTP_AUTHORIZATION=f"Token {world['keys'][persona]}")
        return getattr(api, method)(url, {}, format="multipart" if route.multipart else "json")
    client = Client()
    if persona:
        client.force_login(world["users"][persona])
    return getattr(client, method)(url, {}) if method != "get" else client.get(url)


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the apps users act on, but sign-in bookkeeping."""
    state = {}
    for model in apps.get_models():
        if model._meta.app_label not in SNAPSHOT_APPS:
            continue
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in VOLATILE_FIELDS]
        state[model._meta.label] = sorted(map(repr, model.objects.values_list(*fields)))
    return state


def denials(persona: str) -> int:
    from audit.models import AuditEvent

    return AuditEvent.objects.filter(outcome="denied", actor_name=persona).count()


def refused(
    route: Route, world: dict[str, Any], persona: str, method: str, url: str, expected: int
) -> list[str]:
    """Problems with one refusal: its status, a change it made, a missing audit row."""
    before = snapshot() if method != "get" else None
    denied = denials(persona)
    response = ask(route, world, persona, method, url)
    said = f"{persona} {method.upper()}"
    if response.status_code != expected:
        where = f" -> {response['Location']}" if response.status_code == 302 else ""
        return [f"{said}: {response.status_code}{where}, expected {expected}"]
    problems = []
    if before is not None:
        after = snapshot()
        changed = sorted(label for label in before if before[label] != after[label])
        if changed:
            problems.append(f"{said}: the refused request changed {changed}")
    written = denials(persona) - denied
    if written != 1:
        problems.append(f"{said}: {written} denied audit rows, expected 1")
    return problems


# --- The checks ------------------------------------------------------------------------------------


def check_anonymous(name: str, route: Route, world: dict[str, Any], url: str) -> list[str]:
    if route.kind == "public":
        method, expected = route.anonymous
        status = ask(route, world, None, method, url).status_code
        return [] if status == expected else [f"anonymous {method.upper()}: {status}, expected {expected}"]
    method = "get" if route.get else route.write
    response = ask(route, world, None, method, url)
    if route.kind == "api":
        return [] if response.status_code == 401 else [f"anonymous: {response.status_code}, expected 401"]
    location = response.get("Location", "")
    if response.status_code == 302 and location.startswith(LOGIN):
        return []
    return [f"anonymous {method.upper()}: {response.status_code} {location}, expected 302 to {LOGIN}"]


def _personas(route: Route) -> list[str]:
    return [p for p in PERSONAS if not (route.team_scoped and p == OTHER_TEAM)]


def check_get(name: str, route: Route, world: dict[str, Any], url: str) -> list[str]:
    problems = []
    for persona in _personas(route):
        expected = route.expected_get(persona)
        if expected != route.ok:
            problems += refused(route, world, persona, "get", url, expected)
            continue
        status = ask(route, world, persona, "get", url).status_code
        if status != expected:
            problems.append(f"{persona} GET: {status}, expected {expected}")
    return problems


def check_write(name: str, route: Route, world: dict[str, Any], url: str) -> list[str]:
    assert route.acts is not None
    problems = []
    for persona in _personas(route):
        if persona not in route.acts:
            problems += refused(route, world, persona, route.write, url, route.expected_refusal(persona))
    return problems


def check_other_team(name: str, route: Route, world: dict[str, Any], url: str) -> list[str]:
    problems = []
    if route.get:
        problems += refused(route, world, OTHER_TEAM, "get", url, 404)
    if route.acts is not None:
        problems += refused(route, world, OTHER_TEAM, route.write, url, 404)
    return problems


CHECKS = {
    "anonymous": check_anonymous,
    "get": check_get,
    "write": check_write,
    "other_team": check_other_team,
}


def _applies(check: str, route: Route) -> bool:
    if route.kind == "public":
        return check == "anonymous"
    if check == "get":
        return route.get
    if check == "write":
        return route.acts is not None and any(p not in route.acts for p in PERSONAS)
    if check == "other_team":
        return route.team_scoped
    return True


def _cases() -> Iterator[Any]:
    for name, route in ROUTES.items():
        for check in CHECKS:
            if not _applies(check, route):
                continue
            marks = []
            if check in route.outliers:
                marks.append(pytest.mark.xfail(strict=True, reason=route.outliers[check]))
            yield pytest.param(name, check, id=f"{name}-{check}", marks=marks)


@pytest.mark.parametrize(("name", "check"), list(_cases()))
def test_route_access(world: dict[str, Any], db: Any, name: str, check: str) -> None:
    route = ROUTES[name]
    problems = CHECKS[check](name, route, world, url_of(name, route, world))
    assert not problems, f"{name} ({check}): " + "; ".join(problems)


def test_the_snapshot_sees_what_a_write_changes(world: dict[str, Any], db: Any) -> None:
    # The "changes nothing" half of every write check is only as good as the snapshot.
    from approvals.models import GenerationRequest

    before = snapshot()
    GenerationRequest.objects.filter(pk=world["objects"]["request"]).update(title="Renamed")
    after = snapshot()
    assert [label for label in before if before[label] != after[label]] == ["approvals.GenerationRequest"]


def test_django_admin_sends_anonymous_visitors_and_portal_users_to_its_sign_in(
    world: dict[str, Any], db: Any
) -> None:
    index = reverse(f"{ADMIN_NAMESPACE}:index")
    admin_login = reverse(f"{ADMIN_NAMESPACE}:login")
    client = Client()
    assert client.get(index)["Location"].startswith(admin_login)
    client.force_login(world["users"]["ada"])  # a portal admin, but not Django staff
    assert client.get(index)["Location"].startswith(admin_login)
