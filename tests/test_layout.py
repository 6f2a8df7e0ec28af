"""The house rules the layout keeps: few loose modules, short functions, and citations that lead
to a document (and a section) in the repo."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "app"
MAX_FUNCTION_LINES = 60
MAX_LOOSE_MODULES = 6
# A citation of a document in the repo, optionally with a quoted section: docs/x.md, "Section".
_CITATION = re.compile(r"\b((?:docs/)?[\w-]+\.md)(?:,[\s#]*\"([^\"]+)\")?")
# maas-api.md is the MAAS contract the code cites by section number (maas-api.md §N); it lives
# beside the project, not in it.
_OUTSIDE = {"maas-api.md"}


def _python_files() -> list[Path]:
    return sorted(path for path in APP.rglob("*.py") if "static" not in path.parts)


def test_the_top_of_app_has_few_loose_modules() -> None:
    loose = sorted(path.name for path in APP.glob("*.py"))
    assert len(loose) <= MAX_LOOSE_MODULES, loose


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                lines = (node.end_lineno or node.lineno) - first + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines})")
    assert not long


def test_every_document_the_code_cites_is_in_the_repo() -> None:
    missing = []
    for path in [*_python_files(), REPO / "pyproject.toml", REPO / "Makefile"]:
        text = path.read_text(encoding="utf-8")
        for document, section in _CITATION.findall(text):
            if document in _OUTSIDE:
                continue
            target = REPO / document if "/" in document else REPO / "docs" / document
            if not target.is_file() and not (REPO / document).is_file():
                missing.append(f"{path.relative_to(REPO)}: {document}")
            elif section and not _has_section(target, " ".join(section.split())):
                missing.append(f"{path.relative_to(REPO)}: {document}, {section!r}")
    assert not missing


def _has_section(document: Path, section: str) -> bool:
    headings = re.findall(r"^#+\s+(.+?)\s*$", document.read_text(encoding="utf-8"), re.M)
    return section in headings
