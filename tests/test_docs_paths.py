"""The documents name only code that exists.

docs/architecture.md once sent readers to `approvals/policies.py`, a file that was never there, and
docs/validation.md to pipeline functions that had moved to another module. Every reference a checked
document writes in backticks, or inside a diagram's code block, must resolve:

- a path ending .py, .html, .yaml or .md (globs allowed) is a file under the repository root; a bare
  file name (`dp_base.py`, read in the context of the sentence) is some file in the repository;
- a folder path (ending /) rooted in a source folder is a folder; runtime folders (`var/test/`)
  are not in a clone and are not checked;
- a dotted name rooted in an app (`catalog.pipeline.pipeline_run`) imports: its longest importable
  prefix is a module and the rest are attributes of it.

Moving or renaming code a document names fails here, naming document, line and reference, until the
document moves with it.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
# Documents held to the rule. A document joins once every reference in it resolves (docs/policy.md
# is not yet held to it: it names approvals.services.requests.facts_for, which is in tiering).
CHECKED_DOCS = (
    "docs/architecture.md",
    "docs/validation.md",
    "docs/security.md",
    "docs/deploy.md",
    "docs/synthesizers.md",
    "docs/benchmarks.md",
    "docs/policy.md",
    "docs/models.md",
    "docs/federation.md",
    "README.md",
)
# Top-level packages a dotted name may start with (a dotted name starting elsewhere, such as
# `Role.ADMIN` or `transaction.on_commit`, is not ours to check).
PACKAGES = ("audit", "generation", "validation", "approvals", "catalog", "federation", "portal", "core")
# Folders of the clone; a folder reference rooted elsewhere is made at run time (var/, storage/).
SOURCE_FOLDERS = (*PACKAGES, "templates", "static", "tests", "docs", "scripts", "policies", "bench")
# Dotted words that are not code: audit action names that start like an app. Each says why.
NOT_CODE = {
    "validation.complete": "the audit action validation_run records",
}
# Not walked when looking for a bare file name: tools' caches and run-time output.
_NOT_SOURCE = {".git", ".venv", "var", "test-artifacts", "node_modules", "__pycache__", "staticfiles"}

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_INLINE = re.compile(r"`([^`\n]+)`")
_EXTENSION = r"\.(?:py|html|yaml|md)"
_FILE = re.compile(rf"^[\w*.-]+(?:/[\w*.-]+)*{_EXTENSION}$")
_FOLDER = re.compile(r"^[\w.-]+(?:/[\w.-]+)*/$")
_DOTTED = re.compile(rf"^(?:{'|'.join(PACKAGES)})(?:\.\w+)+$")
# Inside a code block (a diagram) references are words among other words.
_FILE_IN_TEXT = re.compile(rf"(?<![\w/.])[\w-]+(?:/[\w*.-]+)+{_EXTENSION}\b")
_DOTTED_IN_TEXT = re.compile(rf"(?<![\w.])(?:{'|'.join(PACKAGES)})(?:\.\w+)+")


@dataclass(frozen=True)
class Reference:
    text: str
    line: int


def references(markdown: str) -> list[Reference]:
    """Every path and dotted name the text cites, with its line, in order of appearance."""
    found: list[tuple[int, str]] = []
    for block in _FENCE.finditer(markdown):
        for pattern in (_FILE_IN_TEXT, _DOTTED_IN_TEXT):
            found += [(block.start(1) + m.start(), m.group(0)) for m in pattern.finditer(block.group(1))]
    # Blank the code blocks (keeping their lines) so their backticks are not read as inline code.
    prose = _FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), markdown)
    for m in _INLINE.finditer(prose):
        token = m.group(1).strip().removesuffix("()")
        if _FILE.match(token) or _FOLDER.match(token) or _DOTTED.match(token):
            found.append((m.start(1), token))
    return [Reference(text, markdown.count("\n", 0, offset) + 1) for offset, text in sorted(found)]


def resolution_error(reference: str) -> str:
    """'' when the reference resolves (or is not ours to check), else what is missing."""
    if reference in NOT_CODE:
        return ""
    if reference.endswith("/"):
        if reference.split("/")[0] not in SOURCE_FOLDERS:
            return ""
        return "" if (BASE_DIR / reference).is_dir() else "no such folder"
    if re.search(rf"{_EXTENSION}$", reference):
        return _file_error(reference)
    return _attribute_error(reference)


def _file_error(path: str) -> str:
    if "/" not in path:
        return "" if any(Path(name).match(path) for name in _file_names()) else "no file of that name"
    if "*" in path:
        return "" if any(BASE_DIR.glob(path)) else "no file matches"
    return "" if (BASE_DIR / path).is_file() else "no such file"


@cache
def _file_names() -> frozenset[str]:
    names: set[str] = set()
    for _root, folders, files in os.walk(BASE_DIR):
        folders[:] = [f for f in folders if f not in _NOT_SOURCE and not f.startswith(".")]
        names.update(files)
    return frozenset(names)


def _attribute_error(dotted: str) -> str:
    parts = dotted.split(".")
    # The longest importable prefix is the module; the rest must be attributes of it.
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            target: object = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # a module that exists failed to import: a real error, not a stale name
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return f"{name} has no attribute {attribute!r}"
            target = getattr(target, attribute)
        return ""
    return "no such module"


def test_the_extractor_finds_paths_and_names_and_flags_missing_ones() -> None:
    text = (
        "Rules: `approvals/policies.py` and `approvals/rules.py`, `approvals/services/`, a glob\n"
        "`approvals/policies/*.py`, `catalog.pipeline._claim()`, `catalog.services._pipeline_steps`,\n"
        "not ours: `Role.ADMIN`, `transaction.on_commit`, `/audit/verify/`, `make test`, `var/test/`.\n"
        "```mermaid\nflowchart LR\n  a[catalog/pipeline.py] --> b[approvals.services.request_follow_job]\n```\n"
        "Bare names: `dp_base.py`, `nowhere.py`.\n"
    )
    refs = references(text)
    assert [(r.line, r.text) for r in refs] == [
        (1, "approvals/policies.py"),
        (1, "approvals/rules.py"),
        (1, "approvals/services/"),
        (2, "approvals/policies/*.py"),
        (2, "catalog.pipeline._claim"),
        (2, "catalog.services._pipeline_steps"),
        (3, "var/test/"),
        (6, "catalog/pipeline.py"),
        (6, "approvals.services.request_follow_job"),
        (8, "dp_base.py"),
        (8, "nowhere.py"),
    ]
    errors = {r.text: error for r in refs if (error := resolution_error(r.text))}
    assert errors == {
        "approvals/policies.py": "no such file",
        "catalog.services._pipeline_steps": "catalog.services has no attribute '_pipeline_steps'",
        "nowhere.py": "no file of that name",
    }
    assert resolution_error("approvals/nothing/") == "no such folder"
    assert resolution_error("approvals/nothing_*.py") == "no file matches"
    assert resolution_error("approvals.nothing.here") == "approvals has no attribute 'nothing'"


@pytest.mark.parametrize("doc", CHECKED_DOCS)
def test_every_path_and_name_the_document_cites_exists(doc: str) -> None:
    refs = references((BASE_DIR / doc).read_text(encoding="utf-8"))
    broken = [f"{doc}:{r.line}: `{r.text}`: {error}" for r in refs if (error := resolution_error(r.text))]
    assert not broken, "The document names code that is not there:\n" + "\n".join(broken)


def test_the_architecture_document_is_checked_in_earnest() -> None:
    # A pattern broken so that it matched nothing would pass the test above vacuously.
    refs = {r.text for r in references((BASE_DIR / "docs/architecture.md").read_text(encoding="utf-8"))}
    assert len(refs) >= 60
    assert {"approvals/workflow.py", "catalog.pipeline._advance", "tests/route_access_table.py"} <= refs
