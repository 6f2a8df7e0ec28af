"""Persisted documents: Apollo's automatic persisted queries, and trusted documents from an
Apollo persisted-query manifest (docs/architecture.md, "Persisted documents")."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    parse,
    print_ast,
)
from graphql.language import Visitor, visit

from app.auth.identity import Identity
from app.core.permissions import Permission
from app.graphql.operations import RequestError
from app.service import DocumentStore, document_hash

Mode = Literal["off", "apq", "trusted"]
MANIFEST_FORMAT = "apollo-persisted-query-manifest"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """A trusted-documents manifest the gateway cannot use; says which part and why."""


class PersistedDocuments:
    """Fills in a request's document from its `extensions.persistedQuery` hash, registers a
    document sent with its hash (mode `apq`), and in mode `trusted` runs only the manifest's
    documents, free text only for the admin scope."""

    def __init__(
        self,
        mode: Mode,
        store: DocumentStore,
        parse_document: Callable[[str], DocumentNode],
        manifest: Mapping[str, str] | None = None,
    ) -> None:
        if mode == "trusted" and not manifest:
            raise ManifestError("trusted documents need a manifest with at least one operation")
        self.mode = mode
        self.store = store
        self.manifest = dict(manifest or {})
        self._parse = parse_document

    def known(self, extensions: object) -> str | None:
        """The document a hash-only request names, if it is at hand without waiting (for the
        stored-answer path); None otherwise, and the app's path looks further."""
        sha256 = _hash_of(extensions)
        if sha256 is None or self.mode == "off":
            return None
        return self.manifest.get(sha256) or (
            self.store.known(sha256) if self.mode == "apq" else None
        )

    async def resolve(
        self, query: object, extensions: object, identity: Identity | None
    ) -> str | None:
        """The document to run (the query itself, or the one its hash names); raises
        RequestError for an unknown hash, a mismatched text or, in trusted mode, a
        document not in the manifest."""
        persisted = _persisted_query(extensions)
        if persisted is None:
            if self.mode == "trusted" and isinstance(query, str):
                self._require_trusted(query, identity)
            return query if isinstance(query, str) else None
        if self.mode == "off":
            raise RequestError(
                400, "persisted queries are turned off", code="PERSISTED_QUERY_NOT_SUPPORTED"
            )
        sha256 = persisted
        if not isinstance(query, str):
            return await self._find(sha256)
        if document_hash(query) != sha256:
            raise RequestError(
                400, "provided sha does not match query", code="PERSISTED_QUERY_HASH_MISMATCH"
            )
        if self.mode == "trusted":
            self._require_trusted(query, identity)
        elif self._parses(query):
            self.store.keep(sha256, query)
        return query

    async def _find(self, sha256: str) -> str:
        text = self.manifest.get(sha256)
        if text is None and self.mode == "apq":
            text = await self.store.find(sha256)
        if text is None:
            # Apollo's PersistedQueryLink sends the text again when it sees this code.
            raise RequestError(
                400, "PersistedQueryNotFound", code="PERSISTED_QUERY_NOT_FOUND", legacy_status=200
            )
        return text

    def _require_trusted(self, query: str, identity: Identity | None) -> None:
        if identity is not None and identity.allows(Permission.ADMIN):
            return
        if document_hash(query) not in self.manifest:
            raise RequestError(
                403,
                "only trusted documents run here: send the sha256 of a document in the "
                "gateway's manifest (extensions.persistedQuery)",
                code="TRUSTED_DOCUMENT_REQUIRED",
            )

    def _parses(self, query: str) -> bool:
        # Only a document that parses is worth keeping; its parse is remembered for the run.
        try:
            self._parse(query)
        except GraphQLError:
            return False
        return True


def _persisted_query(extensions: object) -> str | None:
    if not isinstance(extensions, dict) or "persistedQuery" not in extensions:
        return None
    persisted = extensions["persistedQuery"]
    if (
        not isinstance(persisted, dict)
        or persisted.get("version") != 1
        or not isinstance(persisted.get("sha256Hash"), str)
        or not _SHA256.fullmatch(persisted["sha256Hash"])
    ):
        raise RequestError(
            400, "extensions.persistedQuery must be {version: 1, sha256Hash: <64 hex digits>}"
        )
    sha256: str = persisted["sha256Hash"]
    return sha256


def _hash_of(extensions: object) -> str | None:
    try:
        return _persisted_query(extensions)
    except RequestError:
        return None


def load_manifest(path: Path) -> dict[str, str]:
    """An Apollo persisted-query manifest as sha256 → document; every id is checked against its
    body, so a tampered or stale manifest fails at start-up, not on a request."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ManifestError(f"{path}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path}: not an {MANIFEST_FORMAT} (format field)")
    if manifest.get("version") != 1:
        raise ManifestError(f"{path}: manifest version must be 1")
    documents: dict[str, str] = {}
    for index, operation in enumerate(manifest.get("operations") or []):
        body = operation.get("body") if isinstance(operation, dict) else None
        sha256 = operation.get("id") if isinstance(operation, dict) else None
        if not isinstance(body, str) or not isinstance(sha256, str):
            raise ManifestError(f"{path}: operations[{index}] needs a string id and body")
        if document_hash(body) != sha256:
            raise ManifestError(f"{path}: operations[{index}] id is not the sha256 of its body")
        documents[sha256] = body
    return documents


def build_manifest(sources: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A manifest of every operation in `sources` (name, text), each with the fragments it
    spreads, printed as graphql-core prints it; raises ManifestError naming a bad file."""
    operations: list[OperationDefinitionNode] = []
    fragments: dict[str, FragmentDefinitionNode] = {}
    for name, text in sources:
        try:
            document = parse(text)
        except GraphQLError as error:
            raise ManifestError(f"{name}: {error.message}") from None
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                operations.append(definition)
            elif isinstance(definition, FragmentDefinitionNode):
                fragments[definition.name.value] = definition
    entries = []
    for operation in operations:
        if operation.name is None:
            raise ManifestError("every operation in a manifest needs a name")
        used = _fragments_of(operation, fragments)
        body = print_ast(DocumentNode(definitions=(operation, *used)))
        entries.append(
            {
                "id": document_hash(body),
                "name": operation.name.value,
                "type": operation.operation.value,
                "body": body,
            }
        )
    return {"format": MANIFEST_FORMAT, "version": 1, "operations": entries}


def _fragments_of(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> list[FragmentDefinitionNode]:
    """The fragments an operation spreads, directly or through others, each once, sorted."""
    used: dict[str, FragmentDefinitionNode] = {}
    pending: list[Any] = [operation]

    class Spreads(Visitor):
        def enter_fragment_spread(self, node: FragmentSpreadNode, *_: object) -> None:
            name = node.name.value
            if name not in used:
                if name not in fragments:
                    raise ManifestError(f"unknown fragment {name!r}")
                used[name] = fragments[name]
                pending.append(fragments[name])

    while pending:
        visit(pending.pop(), Spreads())
    return [used[name] for name in sorted(used)]
