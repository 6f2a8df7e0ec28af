"""`maas-gateway export`: the committed contracts, OpenAPI (REST) and SDL (GraphQL) rendered from
the app, and the configuration reference rendered from the settings; all checked for drift."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import BreakingChange, find_breaking_changes
from graphql import build_schema as parse_sdl

from app.cli.configuration_doc import CONFIGURATION_DOC, render_configuration
from app.core.settings import Settings

OPENAPI_FILE = "openapi.json"
SDL_FILE = "schema.graphql"


@dataclass(frozen=True)
class Contracts:
    openapi: str
    sdl: str


def render() -> Contracts:
    """Build the app from default settings (no environment) and print both contracts."""
    from app.graphql.schema import build_schema
    from app.main import create_app

    app = create_app(Settings.model_construct())
    openapi = json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    sdl = build_schema().as_str().rstrip() + "\n"
    return Contracts(openapi=openapi, sdl=sdl)


def write(directory: Path, docs_directory: Path | None = None) -> list[str]:
    """Write both contracts (and the configuration reference into `docs_directory`); return
    the breaking GraphQL changes against the file replaced."""
    contracts = render()
    if docs_directory is not None:
        docs_directory.mkdir(parents=True, exist_ok=True)
        (docs_directory / CONFIGURATION_DOC).write_text(render_configuration(), encoding="utf-8")
    directory.mkdir(parents=True, exist_ok=True)
    sdl_path = directory / SDL_FILE
    changes = []
    if sdl_path.exists():
        old = sdl_path.read_text(encoding="utf-8")
        changes = [c.description for c in breaking_changes(old, contracts.sdl)]
    (directory / OPENAPI_FILE).write_text(contracts.openapi, encoding="utf-8")
    sdl_path.write_text(contracts.sdl, encoding="utf-8")
    return changes


def check(directory: Path, docs_directory: Path | None = None) -> list[str]:
    """Problems with the committed contracts: drift from the app, and breaking GraphQL changes."""
    contracts = render()
    problems = []
    files = [(directory / OPENAPI_FILE, contracts.openapi), (directory / SDL_FILE, contracts.sdl)]
    if docs_directory is not None:
        files.append((docs_directory / CONFIGURATION_DOC, render_configuration()))
    for path, text in files:
        if not path.exists():
            problems.append(f"{path} is missing: run `maas-gateway export`")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path} differs from the app: run `maas-gateway export`")
    sdl_path = directory / SDL_FILE
    if sdl_path.exists():
        problems.extend(
            f"breaking GraphQL change against {sdl_path}: {change.description}"
            for change in breaking_changes(sdl_path.read_text(encoding="utf-8"), contracts.sdl)
        )
    return problems


def breaking_changes(old_sdl: str, new_sdl: str) -> list[BreakingChange]:
    return list(find_breaking_changes(parse_sdl(old_sdl), parse_sdl(new_sdl)))


def register(commands: Any) -> None:
    export = commands.add_parser(
        "export", help="write openapi.json, schema.graphql and the configuration reference"
    )
    export.add_argument("--directory", default="openapi", help="where the contracts live")
    export.add_argument("--docs-directory", default="docs", help="where configuration.md lives")
    export.add_argument(
        "--check", action="store_true", help="fail when the files differ from the app"
    )
    export.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    docs = Path(args.docs_directory)
    if args.check:
        problems = check(directory, docs)
        for problem in problems:
            print(f"maas-gateway: {problem}", file=sys.stderr)
        return 1 if problems else 0
    for change in write(directory, docs):
        print(f"maas-gateway: breaking GraphQL change: {change}", file=sys.stderr)
    written = [directory / OPENAPI_FILE, directory / SDL_FILE, docs / CONFIGURATION_DOC]
    print(f"wrote {', '.join(str(path) for path in written)}")
    return 0
