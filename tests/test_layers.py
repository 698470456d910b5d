"""Dependencies point one way: `audit <- generation <- validation <- approvals <- catalog <- portal`.

An app imports itself and apps to its left; `core` (roles, errors, ids) imports no app, so every
layer can use it. The rule is read from the source with `ast`, so imports inside functions (the
usual way round a circular import) count as much as those at the top of a module. Test files are
held to the same rule except where ALLOWED_TEST_CROSSINGS says why a test needs a higher layer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
LAYERS = (
    "notifications",
    "audit",
    "generation",
    "validation",
    "approvals",
    "catalog",
    "federation",
    "portal",
)
CORE = "core"
# The cross-app tests (tests/) and the root conftest.py (the shared personas and factories) drive the
# assembled stack end to end, so they sit above portal and may import any app.
STACK = "stack"
RANK = {app: rank for rank, app in enumerate((*LAYERS, STACK))}

# (test file, higher app it imports, why). Anything not listed here is a violation; an entry no
# longer needed fails too, so the list only shrinks.
ALLOWED_TEST_CROSSINGS: dict[tuple[str, str], str] = {
    ("approvals/tests/test_workflow_dead_ends.py", "catalog"): (
        "the request page's validation steps are recorded by catalog's pipeline, which the test runs"
    ),
    ("notifications/tests/test_events.py", "approvals"): (
        "submitting, deciding and proposing overrides through approvals' services are the events that notify"
    ),
    ("notifications/tests/test_events.py", "catalog"): (
        "the release pipeline's final job states are the events that notify the requester"
    ),
    ("audit/tests/test_api.py", "portal"): "a role change through user_update is the audited event read back",
    (
        "audit/tests/test_attacks.py",
        "portal",
    ): "user_update writes the real events the tampering attacks edit",
    ("audit/tests/test_chain.py", "portal"): "user_update writes the real events whose hash chain is checked",
    ("audit/tests/test_views.py", "portal"): "a role change through user_update is the event the page lists",
    ("generation/tests/test_classification.py", "approvals"): (
        "a request naming a direct identifier is refused: the classification's effect on filing"
    ),
    ("generation/tests/test_conformance.py", "validation"): (
        "the validation metrics are the yardstick the synthesizers' output conforms to"
    ),
    ("generation/tests/test_conformance.py", "approvals"): "files and approves a request to run a real job",
    ("generation/tests/test_conformance.py", "catalog"): "runs the release pipeline and keeps its output",
    ("federation/tests/test_run_bookkeeping.py", "portal"): (
        "asserts the reconciler is on the beat and routed to its queue by the Celery app portal owns"
    ),
    ("generation/tests/test_declarations.py", "portal"): (
        "patches the Celery app's send_task and seeds the demo data, both owned by portal"
    ),
    ("generation/tests/test_holdout_and_crypto.py", "approvals"): (
        "an approved request is what carves the holdout and encrypts the job's output"
    ),
    ("generation/tests/test_dp_joint_missingness.py", "validation"): (
        "the release gate's missingness metric scores the DP synthesizers' missing-cell patterns"
    ),
    ("generation/tests/test_joint_missingness.py", "validation"): (
        "the validation missingness metric measures what the synthesizer preserves"
    ),
    (
        "validation/tests/test_services.py",
        "approvals",
    ): "an approved request yields the job whose output is validated",
    ("approvals/tests/conftest.py", "portal"): "gives personas e-mail addresses on the portal User model",
    ("approvals/tests/test_budget_and_cancel.py", "catalog"): (
        "the budget is spent by the release pipeline, which lives in catalog"
    ),
    (
        "approvals/tests/test_views.py",
        "catalog",
    ): "a decision's conditions are shown on the release it produced",
}


def imports_of(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every absolute import anywhere in the tree, nested ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and _imports_by_name(node):
            yield node.lineno, node.args[0].value  # type: ignore[attr-defined]


def _imports_by_name(call: ast.Call) -> bool:
    # importlib.import_module("x.y") / __import__("x.y") with a literal name imports just the same.
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return (
        name in ("import_module", "__import__")
        and bool(call.args)
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    )


def app_of(relative: Path) -> str | None:
    top = relative.parts[0]
    if top in (*LAYERS, CORE):
        return top
    if top == "tests" or relative == Path("conftest.py"):
        return STACK
    return None


def may_import(importer: str, imported: str) -> bool:
    if imported == CORE or importer == imported:
        return True
    if importer == CORE:
        return False
    return RANK[imported] <= RANK[importer]


def violations_in(source: str, relative: Path) -> list[tuple[str, int, str, str]]:
    """(path, line, importing app, imported app) for each import of a higher layer."""
    importer = app_of(relative)
    if importer is None:
        return []
    found = []
    for line, module in imports_of(ast.parse(source, filename=str(relative))):
        imported = module.split(".")[0]
        if imported in (*LAYERS, CORE) and not may_import(importer, imported):
            found.append((relative.as_posix(), line, importer, imported))
    return found


def is_test_file(relative: Path) -> bool:
    return "tests" in relative.parts or relative.name == "conftest.py"


def python_files(root: Path) -> Iterator[Path]:
    for top in (*LAYERS, CORE, "tests"):
        yield from (path.relative_to(root) for path in sorted((root / top).rglob("*.py")))
    if (root / "conftest.py").exists():
        yield Path("conftest.py")


def scan(root: Path, *, tests: bool) -> list[tuple[str, int, str, str]]:
    found = []
    for relative in python_files(root):
        if is_test_file(relative) == tests:
            found += violations_in((root / relative).read_text(encoding="utf-8"), relative)
    return found


def describe(violations: list[tuple[str, int, str, str]]) -> str:
    return "\n".join(
        f"{path}:{line}: {importer} imports higher-layer {imported}"
        for path, line, importer, imported in violations
    )


def check_production(root: Path) -> None:
    violations = scan(root, tests=False)
    assert not violations, (
        f"Imports against `{' <- '.join(LAYERS)}` (core imports no app). Move the code to the "
        f"higher app, or pass what it needs in as an argument:\n{describe(violations)}"
    )


def check_tests(root: Path, allowed: dict[tuple[str, str], str]) -> None:
    violations = scan(root, tests=True)
    unexplained = [v for v in violations if (v[0], v[3]) not in allowed]
    assert not unexplained, (
        "Tests importing a higher layer without a reason; add one to ALLOWED_TEST_CROSSINGS or move "
        f"the test to the higher app's tests:\n{describe(unexplained)}"
    )
    stale = set(allowed) - {(v[0], v[3]) for v in violations}
    assert not stale, f"ALLOWED_TEST_CROSSINGS entries no longer needed: {sorted(stale)}"


def test_production_code_imports_only_its_own_layer_and_below() -> None:
    check_production(BASE_DIR)


def test_tests_cross_layers_only_where_a_reason_is_given() -> None:
    check_tests(BASE_DIR, ALLOWED_TEST_CROSSINGS)


def test_every_allowed_crossing_says_why() -> None:
    assert all(len(reason) > 20 for reason in ALLOWED_TEST_CROSSINGS.values())


# --- the checker itself can fail --------------------------------------------------------------------

LEAKY = '''"""An audit module reaching up."""
from audit.models import AuditEvent
import core.roles


def lazy():
    from portal.models import User
    import catalog.services
    return User


def by_name():
    import importlib
    return importlib.import_module("approvals.services")
'''


def test_the_checker_names_file_and_line_of_upward_imports_nested_ones_included() -> None:
    assert violations_in(LEAKY, Path("audit/leaky.py")) == [
        ("audit/leaky.py", 7, "audit", "portal"),
        ("audit/leaky.py", 8, "audit", "catalog"),
        ("audit/leaky.py", 14, "audit", "approvals"),
    ]


def test_core_may_import_no_app_and_the_top_may_import_all() -> None:
    assert violations_in("from audit.models import AuditEvent\n", Path("core/x.py")) == [
        ("core/x.py", 1, "core", "audit")
    ]
    assert violations_in(LEAKY, Path("portal/x.py")) == []
    assert violations_in(LEAKY, Path("tests/test_x.py")) == []
    assert violations_in("import portal\n", Path("bench/x.py")) == []  # not an app


def test_a_violating_file_on_disk_fails_the_checks(tmp_path: Path) -> None:
    (tmp_path / "generation" / "tests").mkdir(parents=True)
    (tmp_path / "generation" / "leak.py").write_text("def f():\n    from validation import metrics\n")
    (tmp_path / "generation" / "tests" / "test_leak.py").write_text("import catalog\n")

    with pytest.raises(
        AssertionError, match=r"generation/leak\.py:2: generation imports higher-layer validation"
    ):
        check_production(tmp_path)
    with pytest.raises(
        AssertionError, match=r"generation/tests/test_leak\.py:1: generation imports higher-layer"
    ):
        check_tests(tmp_path, {})
    check_tests(tmp_path, {("generation/tests/test_leak.py", "catalog"): "a reason"})
    with pytest.raises(AssertionError, match="no longer needed"):
        check_tests(tmp_path, {("generation/tests/test_leak.py", "catalog"): "x", ("a.py", "portal"): "x"})
