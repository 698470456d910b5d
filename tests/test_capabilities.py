"""Capabilities are named once, in core/roles.py, each with the reason its roles hold it.

A module that keeps its own tuple of roles drifts from the others (three `_OVERSIGHT` tuples once
had three different memberships), so production code may not spell a group of two or more roles:
no `(Role.A, Role.B)` tuple, list or set, and no `has_role(user, Role.A, Role.B)`. It names the
capability instead: `has_role(user, *SEES_EVERY_RELEASE)`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
APPS = ("audit", "generation", "validation", "approvals", "catalog", "portal", "core")
HOME = Path("core/roles.py")


def _is_role_member(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Role"


def role_groups(tree: ast.AST) -> Iterator[int]:
    """Line of every literal group of two or more `Role.X`, or has_role call naming two or more."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            members = node.elts
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "has_role":
            members = node.args
        else:
            continue
        if sum(_is_role_member(member) for member in members) >= 2:
            yield node.lineno


def groups_in(source: str, relative: Path) -> list[str]:
    if relative == HOME:
        return []
    return [f"{relative.as_posix()}:{line}" for line in role_groups(ast.parse(source))]


def production_files(root: Path) -> Iterator[Path]:
    for app in APPS:
        for path in sorted((root / app).rglob("*.py")):
            relative = path.relative_to(root)
            if "tests" not in relative.parts and relative.name != "conftest.py":
                yield relative


def check(root: Path) -> None:
    found = [
        where
        for relative in production_files(root)
        for where in groups_in((root / relative).read_text(encoding="utf-8"), relative)
    ]
    assert not found, (
        "Role groups spelled outside core/roles.py; use (or add, with its reason) a capability there:\n"
        + "\n".join(found)
    )


def test_production_code_names_capabilities_instead_of_listing_roles() -> None:
    check(BASE_DIR)


def test_every_capability_says_why_on_the_line_above() -> None:
    lines = (BASE_DIR / HOME).read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    capabilities = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple) and node.value.elts
    ]
    assert len(capabilities) >= 10
    unexplained = [
        ast.unparse(node.targets[0]) for node in capabilities if not lines[node.lineno - 2].startswith("#")
    ]
    assert not unexplained, f"Capabilities without a reason on the line above: {unexplained}"


# --- the check itself can fail ---------------------------------------------------------------------

SPELLED = """from core.roles import Role, has_role

OVERSIGHT = (Role.PRIVACY_OFFICER, Role.AUDITOR)
ONE = (Role.ADMIN,)
USERS = [("steward", Role.DATA_STEWARD), ("admin", Role.ADMIN)]


def may(user, role):
    if role in {Role.ADMIN, Role.AUDITOR}:
        return True
    return has_role(user, Role.DATA_STEWARD, Role.ADMIN) or has_role(user, Role.ADMIN)
"""


def test_the_check_names_file_and_line_of_each_spelled_group() -> None:
    assert groups_in(SPELLED, Path("catalog/x.py")) == ["catalog/x.py:3", "catalog/x.py:9", "catalog/x.py:11"]
    assert groups_in(SPELLED, HOME) == []


def test_a_spelled_group_on_disk_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "portal" / "tests").mkdir(parents=True)
    (tmp_path / "portal" / "tests" / "test_x.py").write_text("X = (Role.ADMIN, Role.AUDITOR)\n")
    check(tmp_path)  # tests may spell roles: they state the expectation the capability must meet
    (tmp_path / "portal" / "leak.py").write_text("\n\nX = [Role.ADMIN, Role.AUDITOR]\n")
    with pytest.raises(AssertionError, match=r"portal/leak\.py:3"):
        check(tmp_path)
