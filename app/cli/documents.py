"""`maas-gateway documents`: build a trusted-documents manifest (Apollo's persisted-query
manifest format) from a folder of .graphql files, each checked against the gateway's schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from graphql import parse, validate

from app.graphql.persisted import ManifestError, build_manifest
from app.graphql.schema import build_schema


def register(commands: Any) -> None:
    documents = commands.add_parser(
        "documents", help="build a trusted-documents manifest from a folder of .graphql files"
    )
    documents.add_argument("folder", help="where the .graphql files are (searched recursively)")
    documents.add_argument(
        "-o", "--output", default="-", help="the manifest to write (default: standard output)"
    )
    documents.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    files = sorted(folder.rglob("*.graphql"))
    if not files:
        print(f"maas-gateway: no .graphql files in {folder}", file=sys.stderr)
        return 2
    try:
        manifest = build_manifest((str(p), p.read_text(encoding="utf-8")) for p in files)
        _check(manifest)
    except (ManifestError, OSError) as error:
        print(f"maas-gateway: {error}", file=sys.stderr)
        return 1
    text = json.dumps(manifest, indent=2) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(manifest['operations'])} operations to {args.output}", file=sys.stderr)
    return 0


def _check(manifest: dict[str, Any]) -> None:
    """Every operation must validate against the schema the gateway serves."""
    schema = build_schema()._schema
    names: set[str] = set()
    for operation in manifest["operations"]:
        if operation["name"] in names:
            raise ManifestError(f"two operations are named {operation['name']!r}")
        names.add(operation["name"])
        errors = validate(schema, parse(operation["body"]))
        if errors:
            raise ManifestError(f"operation {operation['name']!r}: {errors[0].message}")
