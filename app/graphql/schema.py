"""The GraphQL schema: queries, mutations, the import-progress subscription and its limits."""

from __future__ import annotations

import hashlib
import logging
import operator
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
)
from typing import Annotated, Any, TypeVar

import strawberry
from graphql import (
    ASTValidationRule,
    BooleanValueNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    InlineFragmentNode,
)
from opentelemetry.trace import Tracer
from starlette.datastructures import UploadFile
from strawberry.extensions import (
    AddValidationRules,
    SchemaExtension,
)
from strawberry.file_uploads import Upload
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StreamResult
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types import ExecutionContext, Info
from strawberry.types.execution import PreExecutionError
from strawberry.types.field import StrawberryField

from app.auth.messages import unauthenticated_message, without_input_values
from app.core import models
from app.core.errors import Conflict, GatewayError, NotFound, Unauthenticated, ValidationFailed
from app.graphql import types
from app.graphql.authorization import Authorize
from app.graphql.context import GraphQLContext
from app.graphql.cost import CostModel, Estimator
from app.graphql.events import shared_event_executor
from app.graphql.limits import Documents, Limits, hides_suggestions
from app.graphql.plans import Plans
from app.graphql.telemetry import OperationTelemetry, resolver_spans
from app.observability.context import note_cache
from app.service import CacheOutcome, ImagesResult, ReadLog, images_document, track_reads

log = logging.getLogger(__name__)

T = TypeVar("T")
GInfo = Info[GraphQLContext, None]

# Failures a caller can act on come back as typed `errors` in a mutation's payload.
EXPECTED = (ValidationFailed, NotFound, Conflict)


@strawberry.type
class Query:
    @strawberry.field(
        graphql_type=list[types.BootResource], description="Boot resources, optionally filtered."
    )
    async def boot_resources(
        self, info: GInfo, filter: types.BootResourceFilter | None = None
    ) -> list[models.BootResource]:
        ctx = info.context
        wanted = filter.to_model() if filter is not None else None
        resources = await ctx.service.list_boot_resources(ctx.caller, wanted)
        if not _selects(info, DETAIL_FIELDS):
            return resources
        # The details are known to be needed: read them all now, concurrently, so nested
        # fields resolve synchronously instead of one awaitable per resource. When they are
        # all deferred, the reads are sent after the list goes out (docs/architecture.md,
        # "Incremental delivery"): only when nothing else in the operation could wait on them.
        settle = _selects(info, DETAIL_FIELDS, deferred=False) or not _alone(info)
        return await ctx.loaders.prefetch_boot_resources(resources, settle=settle)

    @strawberry.field(
        graphql_type=types.BootResource | None, description="One boot resource, with its sets."
    )
    async def boot_resource(self, info: GInfo, id: strawberry.ID) -> models.BootResource | None:
        resource_id = _parse_id(id)
        try:
            return await info.context.loaders.boot_resource.load(resource_id)
        except NotFound:
            return None

    @strawberry.field(graphql_type=list[types.BootSource], description="Every boot source.")
    async def boot_sources(self, info: GInfo) -> list[models.BootSource]:
        return await info.context.service.list_boot_sources(info.context.caller)

    @strawberry.field(graphql_type=types.BootSource | None, description="One boot source.")
    async def boot_source(self, info: GInfo, id: strawberry.ID) -> models.BootSource | None:
        try:
            return await info.context.loaders.boot_source.load(_parse_id(id))
        except NotFound:
            return None

    @strawberry.field(
        graphql_type=types.ImportStatus,
        description="Whether MAAS is importing, with the resources still incomplete.",
    )
    async def import_status(self, info: GInfo) -> models.ImportStatus:
        return await info.context.service.import_status(info.context.caller)


# Fields of a boot resource that need its detail read (MAAS's list is shallow, maas-api.md §9.11).
DETAIL_FIELDS = frozenset({"sets", "latestSet", "complete"})


def _selects(info: GInfo, names: frozenset[str], *, deferred: bool = True) -> bool:
    """Whether this field's sub-selection asks for any of `names`, through fragments (read
    from the parsed document: strawberry's `selected_fields` builds objects on every call);
    with `deferred` False, not counting those under a fragment marked @defer."""
    raw = info._raw_info
    pending = [node.selection_set for node in raw.field_nodes]
    entered: set[str] = set()  # each fragment once: a fan-out of spreads costs no more
    while pending:
        selection_set = pending.pop()
        if selection_set is None:
            continue
        for child in selection_set.selections:
            if isinstance(child, FieldNode):
                if child.name.value in names:
                    return True
            elif not deferred and _is_deferred(child):
                continue
            elif isinstance(child, FragmentSpreadNode):
                fragment = raw.fragments.get(child.name.value)
                if fragment is not None and child.name.value not in entered:
                    entered.add(child.name.value)
                    pending.append(fragment.selection_set)
            elif isinstance(child, InlineFragmentNode):
                pending.append(child.selection_set)
    return False


def _alone(info: GInfo) -> bool:
    """Whether this is the operation's only root field (bar __typename)."""
    fields = info._raw_info.operation.selection_set.selections
    named = [f for f in fields if not (isinstance(f, FieldNode) and f.name.value == "__typename")]
    return len(named) == 1 and named[0] in info._raw_info.field_nodes


def _is_deferred(node: FragmentSpreadNode | InlineFragmentNode | Any) -> bool:
    # `@defer(if: false)` or a variable for `if` may still run now: those count as not deferred.
    for directive in node.directives or ():
        if directive.name.value == "defer":
            arguments = directive.arguments or ()
            condition = next((a.value for a in arguments if a.name.value == "if"), None)
            return condition is None or (
                isinstance(condition, BooleanValueNode) and condition.value
            )
    return False


MAX_ID = 2**63 - 1
"""The REST API's bound too (app/rest/deps.py): a larger id only makes MAAS's database fail."""


def _parse_id(value: str) -> int:
    # Plain decimal digits only: int() would also take " 7", "+7" and "1_000".
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_ID)):
        raise ValidationFailed(
            f"{value!r} is not a valid id", fields={"id": ["must be an integer"]}
        )
    number = int(value)
    if not 0 < number <= MAX_ID:
        raise ValidationFailed(
            f"{value!r} is not a valid id", fields={"id": [f"must be from 1 to {MAX_ID}"]}
        )
    return number


def _declared(input: types.CreateBootSourceSelectionInput) -> dict[str, Any]:
    """A selection input as the service's keywords (create and ensure take the same)."""
    return {
        "os": input.os,
        "release": input.release,
        "arches": input.arches,
        "subarches": input.subarches,
        "labels": input.labels,
    }


async def _attempt(call: Callable[[], Awaitable[T]]) -> tuple[T | None, list[types.UserError]]:
    """Run a mutation's work; failures a caller can act on (bad ids and input included, raised
    while building the call) become its typed `errors`."""
    try:
        return await call(), []
    except EXPECTED as error:
        return None, types.user_errors(error)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a boot source.")
    async def create_boot_source(
        self, info: GInfo, input: types.CreateBootSourceInput
    ) -> types.BootSourcePayload:
        ctx = info.context
        source, errors = await _attempt(
            lambda: ctx.service.create_boot_source(
                ctx.caller,
                url=input.url,
                keyring_filename=input.keyring_filename,
                keyring_data=types.decode_keyring(input.keyring_data),
                options=input.options(),
            )
        )
        return types.BootSourcePayload(boot_source=source, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Change a boot source; absent fields keep their values.")
    async def update_boot_source(
        self, info: GInfo, id: strawberry.ID, input: types.UpdateBootSourceInput
    ) -> types.BootSourcePayload:
        ctx = info.context
        source, errors = await _attempt(
            lambda: ctx.service.update_boot_source(
                ctx.caller,
                _parse_id(id),
                url=input.url,
                keyring_filename=input.keyring_filename,
                keyring_data=types.decode_keyring(input.keyring_data),
                options=input.options(),
            )
        )
        return types.BootSourcePayload(boot_source=source, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Delete a boot source and its selections.")
    async def delete_boot_source(self, info: GInfo, id: strawberry.ID) -> types.DeletePayload:
        ctx = info.context
        return await _delete(
            lambda source_id: ctx.service.delete_boot_source(ctx.caller, source_id), id
        )

    @strawberry.mutation(description="Add a selection to a boot source.")
    async def create_boot_source_selection(
        self,
        info: GInfo,
        boot_source_id: strawberry.ID,
        input: types.CreateBootSourceSelectionInput,
    ) -> types.BootSourceSelectionPayload:
        ctx = info.context
        selection, errors = await _attempt(
            lambda: ctx.service.create_selection(
                ctx.caller, _parse_id(boot_source_id), **_declared(input)
            )
        )
        return types.BootSourceSelectionPayload(
            boot_source_selection=selection,  # type: ignore[arg-type]
            errors=errors,
        )

    @strawberry.mutation(
        description="Make a source's selection of an os and release have these lists: create "
        "it, update it, or leave it (no MAAS write) when it already matches."
    )
    async def ensure_boot_source_selection(
        self,
        info: GInfo,
        boot_source_id: strawberry.ID,
        input: types.EnsureBootSourceSelectionInput,
    ) -> types.EnsureBootSourceSelectionPayload:
        ctx = info.context
        ensured, errors = await _attempt(
            lambda: ctx.service.ensure_selection(
                ctx.caller, _parse_id(boot_source_id), **_declared(input)
            )
        )
        selection, outcome = ensured if ensured is not None else (None, None)
        return types.EnsureBootSourceSelectionPayload(
            boot_source_selection=selection,  # type: ignore[arg-type]
            outcome=outcome,
            errors=errors,
        )

    @strawberry.mutation(
        description="Plan, and unless dryRun carry out, a declared set of boot sources and "
        "selections, then start the import; the plan is empty when nothing would change."
    )
    async def apply_images(
        self, info: GInfo, input: types.ImagesInput, dry_run: bool = False, prune: bool = False
    ) -> types.ApplyImagesPayload:
        ctx = info.context

        async def run() -> ImagesResult:
            desired = images_document(input.document())
            return await ctx.service.apply_images(ctx.caller, desired, prune=prune, dry_run=dry_run)

        result, errors = await _attempt(run)
        if result is None:
            return types.ApplyImagesPayload(
                plan=[], applied=False, import_started=False, errors=errors
            )
        plan = [
            types.PlanStep(
                action=s.action,
                url=s.url,
                selection=s.selection,
                description=s.describe(),
                changes=s.changes,  # type: ignore[arg-type]
            )
            for s in result.plan
        ]
        return types.ApplyImagesPayload(
            plan=plan, applied=result.applied, import_started=result.import_started, errors=[]
        )

    @strawberry.mutation(description="Change a selection; absent fields keep their values.")
    async def update_boot_source_selection(
        self,
        info: GInfo,
        boot_source_id: strawberry.ID,
        id: strawberry.ID,
        input: types.UpdateBootSourceSelectionInput,
    ) -> types.BootSourceSelectionPayload:
        ctx = info.context
        selection, errors = await _attempt(
            lambda: ctx.service.update_selection(
                ctx.caller,
                _parse_id(boot_source_id),
                _parse_id(id),
                os=input.os,
                release=input.release,
                arches=input.arches,
                subarches=input.subarches,
                labels=input.labels,
            )
        )
        return types.BootSourceSelectionPayload(
            boot_source_selection=selection,  # type: ignore[arg-type]
            errors=errors,
        )

    @strawberry.mutation(description="Remove a selection from a boot source.")
    async def delete_boot_source_selection(
        self, info: GInfo, boot_source_id: strawberry.ID, id: strawberry.ID
    ) -> types.DeletePayload:
        ctx = info.context
        return await _delete(
            lambda source_id, selection_id: ctx.service.delete_selection(
                ctx.caller, source_id, selection_id
            ),
            boot_source_id,
            id,
        )

    @strawberry.mutation(description="Start importing the selected images.")
    async def start_import(self, info: GInfo) -> types.ImportPayload:
        ctx = info.context
        _, errors = await _attempt(lambda: ctx.service.start_import(ctx.caller))
        return types.ImportPayload(importing=not errors, errors=errors)

    @strawberry.mutation(description="Stop a running import.")
    async def stop_import(self, info: GInfo) -> types.ImportPayload:
        ctx = info.context
        _, errors = await _attempt(lambda: ctx.service.stop_import(ctx.caller))
        return types.ImportPayload(importing=False, errors=errors)

    @strawberry.mutation(
        description="Upload a custom image (multipart request; needs a preflight header)."
    )
    async def upload_boot_resource(
        self, info: GInfo, file: Upload, input: types.UploadBootResourceInput
    ) -> types.BootResourcePayload:
        upload: object = file
        if not isinstance(upload, UploadFile):
            # The Upload scalar takes any literal too; only a multipart part is a file.
            raise ValidationFailed(
                "file must be a multipart file part", fields={"file": ["must be a file"]}
            )
        try:
            return await _upload(info.context, upload, input)
        finally:
            # Starlette spools big parts to a temporary file; release it now, not at GC.
            await upload.close()

    @strawberry.mutation(description="Delete a boot resource and its files.")
    async def delete_boot_resource(self, info: GInfo, id: strawberry.ID) -> types.DeletePayload:
        ctx = info.context
        return await _delete(
            lambda resource_id: ctx.service.delete_boot_resource(ctx.caller, resource_id), id
        )


UPLOAD_BLOCK = 1024 * 1024


async def _upload(
    ctx: GraphQLContext, upload: UploadFile, input: types.UploadBootResourceInput
) -> types.BootResourcePayload:
    try:
        size, sha256 = await _measure(upload)
        if input.sha256 is not None and input.sha256.lower() != sha256:
            raise ValidationFailed(
                "the file does not match the declared sha256",
                fields={"sha256": [f"the file hashes to {sha256}"]},
            )
    except ValidationFailed as error:
        return types.BootResourcePayload(boot_resource=None, errors=types.user_errors(error))
    resource, errors = await _attempt(
        lambda: ctx.service.upload_boot_resource(
            ctx.caller,
            name=input.name,
            architecture=input.architecture,
            content=_chunks(upload),
            size=size,
            sha256=sha256,
            title=input.title,
            filetype=input.filetype,
            base_image=input.base_image,
        )
    )
    return types.BootResourcePayload(boot_resource=resource, errors=errors)  # type: ignore[arg-type]


async def _measure(upload: UploadFile) -> tuple[int, str]:
    """Size and sha256 of a spooled upload, read once in blocks (memory stays flat)."""
    digest = hashlib.sha256()
    size = 0
    await upload.seek(0)
    while block := await upload.read(UPLOAD_BLOCK):
        digest.update(block)
        size += len(block)
    await upload.seek(0)
    if size == 0:
        raise ValidationFailed("the file is empty", fields={"file": ["must not be empty"]})
    return size, digest.hexdigest()


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while block := await upload.read(UPLOAD_BLOCK):
        yield block


async def _delete(delete: Callable[..., Awaitable[None]], *raw_ids: str) -> types.DeletePayload:
    """Parse the ids in order (the last names what is deleted), then delete."""
    ids: list[int] = []

    async def run() -> None:
        ids.extend(_parse_id(raw) for raw in raw_ids)
        await delete(*ids)

    _, errors = await _attempt(run)
    deleted = None if errors else strawberry.ID(str(ids[-1]))
    return types.DeletePayload(deleted_id=deleted, errors=errors)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Import state and per-resource progress, pushed when it changes."
    )
    async def import_progress(
        self,
        info: GInfo,
        until_import_ends: Annotated[
            bool,
            strawberry.argument(
                description="Complete after the first snapshot in which nothing is importing "
                "(start the import first: a subscription opened before it completes at once)."
            ),
        ] = False,
    ) -> AsyncGenerator[types.ImportProgress, None]:
        ctx = info.context
        # Checked here, not in the stream: an error before its first snapshot would end the
        # subscription with a bare `complete`, while this one is an error frame with its code.
        ctx.service.progress.check_room(ctx.caller)
        return _progress(ctx, until_import_ends)  # type: ignore[return-value]

    @strawberry.subscription(
        description="The filter's images as they import; completes once every one's newest set "
        "is complete. Fails with IMPORT_STALLED when nothing changed for stallSeconds."
    )
    async def boot_resources_ready(
        self,
        info: GInfo,
        filter: types.ImageFilter | None = None,
        stall_seconds: Annotated[
            float, strawberry.argument(description="Seconds without any change before failing.")
        ] = 600.0,
    ) -> AsyncGenerator[types.Readiness, None]:
        ctx = info.context
        if not 0 < stall_seconds <= 86400:
            raise ValidationFailed(
                "stallSeconds must be from 0 to 86400",
                fields={"stallSeconds": ["must be > 0 and at most 86400"]},
            )
        selector = (filter or types.ImageFilter()).to_model()
        async for readiness in ctx.service.progress.until_ready(
            ctx.caller, selector, stall=stall_seconds
        ):
            yield readiness  # type: ignore[misc]


async def _progress(
    ctx: GraphQLContext, until_import_ends: bool
) -> AsyncGenerator[models.ImportProgress, None]:
    async for snapshot in ctx.service.progress.subscribe(ctx.caller):
        yield snapshot
        if until_import_ends and not snapshot.importing:
            return


class GatewayErrors(SchemaExtension):
    """Give every error a stable `extensions.code`; never leak internals (docs/architecture.md,
    "Errors")."""

    def __init__(self) -> None:
        self.reads: ReadLog | None = None

    def on_operation(self) -> Iterator[None]:
        # Errors raised before execution (e.g. a token limit in the parser cache) skip this; the
        # HTTP view codes those (GatewayGraphQL.process_result).
        with track_reads() as reads:
            self.reads = reads
            yield
        hide = hides_suggestions(self.execution_context.context)
        code_errors(self.execution_context.result, hide_suggestions=hide)
        if reads.outcome is not None:
            note_cache(reads.outcome.value)

    def get_results(self) -> dict[str, Any]:
        # Only a stale answer is flagged: fresh ones stay byte-identical, so they can be stored.
        reads = self.reads
        if reads is None or reads.outcome is not CacheOutcome.STALE:
            return {}
        return {"cache": {"stale": True, "staleAgeSeconds": round(reads.stale_age, 3)}}


def code_errors(result: Any, *, hide_suggestions: bool = False) -> None:
    """Replace a result's errors with coded ones (idempotent: coded errors pass unchanged);
    with `hide_suggestions`, graphql-core's "Did you mean ...?" is cut (variable coercion
    adds it at execution, past validation's hide_suggestions)."""
    errors = getattr(result, "errors", None)
    if result is not None and errors:
        result.errors = [_coded(error, hide_suggestions) for error in errors]


_SUGGESTION = re.compile(r"\s*Did you mean .*\?$", re.DOTALL)


def _coded(error: GraphQLError, hide_suggestions: bool = False) -> GraphQLError:
    original = error.original_error
    if isinstance(original, Unauthenticated):
        message, extensions = unauthenticated_message(original), {"code": original.code}
    elif isinstance(original, GatewayError):
        # graphql-core already copied the code from the error's `extensions`.
        message, extensions = original.message, original.extensions
    elif original is None:
        message = without_input_values(error.message)
        extensions = {"code": "GRAPHQL_VALIDATION", **(error.extensions or {})}
    elif isinstance(original, ValueError | TypeError | GraphQLError) and error.path is None:
        # Variable coercion problems (a Long out of range, a list for a String) are the
        # caller's input; the value itself is not repeated (it may be a keyring or a key).
        message, extensions = without_input_values(error.message), {"code": "BAD_USER_INPUT"}
    else:
        log.error("unexpected error in a resolver", exc_info=original)
        message, extensions = "Internal error.", {"code": "INTERNAL"}
    if hide_suggestions:
        message = _SUGGESTION.sub("", message)
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class GatewaySchema(strawberry.Schema):
    documents: Documents
    estimator: Estimator
    plans: Plans

    def _get_execute_function(self) -> Callable[..., Any]:
        # The one execution step of every operation, inside the same extensions (Authorize,
        # GatewayErrors, OperationTelemetry): a compiled plan where there is one, else
        # graphql-core (docs/architecture.md, "Compiled plans").
        return self.plans.execute

    async def stream(self, query: str | None, *args: Any, **kwargs: Any) -> StreamResult:
        return _pre_execution_errors(await super().stream(query, *args, **kwargs))

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # strawberry would log every error with the request's text around it, which may hold
        # a keyring or a key; GatewayErrors codes them all and logs the unexpected ones.
        return


async def _pre_execution_errors(results: StreamResult) -> AsyncGenerator[Any, None]:
    """The results, where a document the parse refused (DocumentChecks.on_parse raises, past
    strawberry's handling) is the stream's first result rather than an exception: over a
    WebSocket that exception would end the operation with a bare `complete`."""
    try:
        async for result in results:
            yield result
    except GraphQLError as error:
        yield PreExecutionError(data=None, errors=[error])
    finally:
        await results.aclose()


def build_schema(
    *,
    max_depth: int = 10,
    max_aliases: int = 30,
    max_tokens: int = 2000,
    max_cost: int = 1000,
    cost_model: CostModel | None = None,
    introspection: bool = True,
    tracer: Tracer | None = None,
    max_plans: int = 512,
) -> GatewaySchema:
    """Build the schema once per app. A document is checked cheapest first: its size (the
    pipeline's body limit), its tokens (while it parses), the limits, its estimated cost, then
    graphql-core's rules."""
    rules: list[type[ASTValidationRule]] = []
    if not introspection:
        from graphql.validation import NoSchemaIntrospectionCustomRule

        rules.append(NoSchemaIntrospectionCustomRule)
    estimator = Estimator(cost_model or CostModel(), max_cost)
    documents = Documents(
        Limits(max_depth, max_aliases), max_tokens=max_tokens, costs=estimator.errors
    )
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        lambda: AddValidationRules(rules),
        documents.checks,
        # Before GatewayErrors: it exits after it, so it sees the error codes.
        OperationTelemetry,
        GatewayErrors,
        lambda: Authorize(estimator),
    ]
    if tracer is not None:
        extensions.append(resolver_spans(tracer))
    schema = GatewaySchema(
        # @defer and @stream (docs/architecture.md, "Incremental delivery").
        config=StrawberryConfig(
            scalar_map=types.SCALARS, enable_experimental_incremental_execution=True
        ),
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=shared_event_executor(),
        types=[types.ImportProgress, types.ResourceProgress],
    )
    schema.documents = documents
    schema.estimator = estimator
    schema.plans = Plans(max_plans)
    _plain_attribute_resolvers(schema)
    return schema


def _plain_attribute_resolvers(schema: strawberry.Schema) -> None:
    """Resolve fields without a resolver by plain attribute access.

    Strawberry wraps every field, plain ones too; over a nested list of resources that
    wrapper is most of the CPU a warm request spends (docs/architecture.md, "Performance model").
    Fields with resolvers, permissions or extensions keep strawberry's wrapper.
    """
    backref = GraphQLCoreConverter.DEFINITION_BACKREF
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        if graphql_type.name in {"Query", "Mutation", "Subscription"}:
            continue
        for name, graphql_field in graphql_type.fields.items():
            field = (graphql_field.extensions or {}).get(backref)
            if not isinstance(field, StrawberryField) or not field.is_basic_field:
                continue
            if field.extensions or field.permission_classes or field.directives:
                continue
            python_name = field.python_name
            # graphql-core's default resolver reads the attribute named like the field.
            graphql_field.resolve = None if python_name == name else _attribute(python_name)


def _attribute(name: str) -> Callable[..., Any]:
    get = operator.attrgetter(name)

    def resolve(source: Any, _info: Any) -> Any:
        return get(source)

    # Compiled plans read the attribute themselves (app/graphql/plans.py).
    resolve.attribute = name  # type: ignore[attr-defined]
    return resolve
