"""`actor` is the user model, not `Any`.

Services in the lower apps cannot import portal (tests/test_layers.py), so they annotate `actor`
with `core.roles.PortalUser`: for mypy the AUTH_USER_MODEL class (portal.User), at runtime the
protocol `PortalUserShape`. `PortalUser | None` means a trusted system caller (a worker, a
management command). This file is in the mypy stage of `make test` (MYPY_CHECKED in
scripts/test.sh), so the assignments below are checked statically as well as run.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser

from core.errors import PermissionDenied
from core.roles import PortalUser, PortalUserShape, Role, acting_user
from portal.models import User

BASE_DIR = Path(__file__).resolve().parent.parent

# Production files whose `actor` parameters are still `Any`, with why. An entry no longer needed
# fails, so the list only shrinks (it is empty: keep it so, and type a new actor from the start).
PENDING: dict[str, str] = {}


def _as_actor(user: User) -> PortalUser:
    # mypy: the user model is what services take as `actor` (the `_User` alias expands to it).
    return user


def _shape_of(user: User) -> PortalUserShape:
    # mypy: the user model has every member the runtime protocol names, with compatible types.
    return user


def test_the_user_model_is_an_actor() -> None:
    user = User(username="alice", role=Role.DATA_STEWARD, team_id=None)
    actor = _as_actor(user)
    assert actor.role == Role.DATA_STEWARD and actor.get_username() == "alice"
    assert isinstance(_shape_of(user), PortalUserShape)
    assert user.is_authenticated is True and user.is_active is True and user.team_id is None


def test_an_anonymous_user_is_not_an_actor() -> None:
    # No role and no team: services must never be handed one (views guard with login).
    assert not isinstance(AnonymousUser(), PortalUserShape)


def _request_user(user: User | AnonymousUser) -> User | AnonymousUser:
    return user  # what django-stubs calls `request.user`


def test_a_view_hands_services_its_signed_in_user() -> None:
    user = User(username="bob", role=Role.DATA_SCIENTIST)
    actor: PortalUser = acting_user(_request_user(user))
    assert actor is user


def test_a_view_that_lost_its_login_guard_is_refused() -> None:
    with pytest.raises(PermissionDenied):
        acting_user(_request_user(AnonymousUser()))


def checked_paths() -> list[str]:
    """The mypy stage's list, read from scripts/test.sh so it is kept in one place."""
    text = (BASE_DIR / "scripts" / "test.sh").read_text(encoding="utf-8")
    match = re.search(r"^MYPY_CHECKED=\(([^)]*)\)", text, re.MULTILINE)
    assert match, "scripts/test.sh defines MYPY_CHECKED=(...)"
    return match.group(1).split()


def test_this_file_is_type_checked() -> None:
    assert "tests/test_actor_type.py" in checked_paths()


def _production_files(paths: list[str]) -> Iterator[Path]:
    for entry in paths:
        path = BASE_DIR / entry
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            parts = file.relative_to(BASE_DIR).parts
            if "tests" not in parts and "migrations" not in parts:
                yield file


def _untyped_actors(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, annotation) of every `actor` parameter typed as Any, object or not at all."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = node.args
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
            if arg.arg != "actor":
                continue
            annotation = ast.unparse(arg.annotation) if arg.annotation else ""
            names = (
                {n.id for n in ast.walk(arg.annotation) if isinstance(n, ast.Name)}
                if arg.annotation
                else set()
            )
            if not annotation or names & {"Any", "object"}:
                yield node.lineno, annotation or "<none>"


def app_packages() -> list[str]:
    """Every top-level package of the project but the cross-app tests: the production code, whether
    or not the mypy stage checks it yet (views and APIs take `actor` too)."""
    return sorted(
        path.name
        for path in BASE_DIR.iterdir()
        if path.is_dir() and path.name != "tests" and (path / "__init__.py").is_file()
    )


def untyped_actors_by_file(paths: list[str]) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for file in _production_files(paths):
        hits = list(_untyped_actors(ast.parse(file.read_text(encoding="utf-8"))))
        if hits:
            found[file.relative_to(BASE_DIR).as_posix()] = hits
    return found


def test_no_actor_is_any_in_production_code() -> None:
    found = untyped_actors_by_file(app_packages())
    unexpected = {path: hits for path, hits in found.items() if path not in PENDING}
    assert not unexpected, f"type `actor` as core.roles.PortalUser (| None for system callers): {unexpected}"
    stale = sorted(set(PENDING) - set(found))
    assert not stale, f"no untyped actor left in {stale}: remove them from PENDING"


def test_the_scan_covers_every_app_and_the_checked_list() -> None:
    packages = app_packages()
    for app in (
        "core",
        "notifications",
        "audit",
        "generation",
        "validation",
        "approvals",
        "catalog",
        "portal",
    ):
        assert app in packages
    # Whatever the mypy stage checks lies inside the scanned packages (or is this test file).
    outside = [
        p for p in checked_paths() if p.split("/")[0] not in packages and p != "tests/test_actor_type.py"
    ]
    assert not outside, f"MYPY_CHECKED names paths the scan misses: {outside}"


@pytest.mark.parametrize(
    "path", ["approvals/rules.py", "approvals/services/overrides.py", "portal/auth_tokens.py"]
)
def test_the_actor_modules_are_type_checked(path: str) -> None:
    # Typing `actor` is only worth its name where mypy reads the calls: these modules are checked.
    checked = checked_paths()
    assert path in checked or any(path.startswith(f"{entry}/") for entry in checked)


def test_the_scan_sees_an_untyped_actor() -> None:
    tree = ast.parse(
        "def f(*, actor: Any, x: int) -> None: ...\ndef g(actor: PortalUser | None) -> None: ..."
    )
    assert list(_untyped_actors(tree)) == [(1, "Any")]
