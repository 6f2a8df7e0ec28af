"""The simulated regiond API: URL routes, piston dispatch, permissions and the boot handlers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from app.simulator import representation as rep
from app.simulator.auth import Credentials, NonceStore, User, authenticate
from app.simulator.config import MaasVersion
from app.simulator.describe import describe_document
from app.simulator.forms import validate_boot_resource, validate_boot_source, validate_selection
from app.simulator.parsing import FormData, MalformedBody, parse_body
from app.simulator.responses import (
    BARE_TEXT,
    BadRequest,
    Forbidden,
    MAASError,
    MethodNotAllowed,
    ModelValidationError,
    NotFound,
    PistonBadRequest,
    Response,
    ServerError,
    UnknownEndpoint,
    emit,
    text,
)
from app.simulator.state import (
    GENERATED,
    SYNCED,
    UPLOADED,
    BootResource,
    BootSource,
    BootSourceSelection,
    MaasState,
)

API_PREFIX = "/MAAS/api/2.0/"
CAPABILITIES: tuple[str, ...] = (
    "networks-management",
    "static-ipaddresses",
    "ipv6-deployment-ubuntu",
    "devices-management",
    "storage-deployment-ubuntu",
    "network-deployment-ubuntu",
    "bridging-interface-ubuntu",
    "bridging-automatic-ubuntu",
    "authenticate-api",
)
ADMIN_ONLY = "This method is reserved for admin users."
NOT_ALLOWED = "User is not allowed access to this API."
_EDIT_DENIED = (
    "User does not have permission to perform this operation. The user should have permission '{}'"
)


@dataclass
class ApiRequest:
    """What a handler sees of one request."""

    method: str
    path: str
    scheme: str
    host: str
    headers: dict[str, str]
    query: FormData
    body: bytes
    now: float
    kwargs: dict[str, str] = field(default_factory=dict)
    user: User | None = None
    _form: FormData | None = None

    @property
    def form(self) -> FormData:
        """request.POST/request.data: parsed only for POST and PUT, as Django and piston do."""
        if self._form is None:
            if self.method in ("POST", "PUT"):
                content_type = self.headers.get("content-type", "")
                try:
                    self._form = parse_body(content_type, self.body)
                except MalformedBody as exc:
                    if "json" in content_type.lower():
                        raise PistonBadRequest() from exc
                    # Django's MultiPartParserError escapes piston: the middleware's 500.
                    raise ServerError(str(exc)) from exc
            else:
                self._form = FormData()
        return self._form

    def post_params(self) -> FormData | None:
        """The form fields piston merges into the OAuth parameters (POST only, not JSON)."""
        if self.method != "POST":
            return None
        try:
            form = self.form
        except MAASError:
            return None
        return None if form.is_json else form


Handler = Callable[["Region", ApiRequest], Response]


@dataclass(frozen=True)
class Resource:
    """A piston resource: its handler's exports and who may reach it."""

    name: str
    exports: dict[tuple[str, str | None], Handler]
    admin_restricted: bool = False
    anonymous: bool = False

    @property
    def allowed_methods(self) -> tuple[str, ...]:
        return tuple(sorted({method for method, _ in self.exports}))


def _object_id(value: str, version: MaasVersion) -> int:
    """Django's int conversion of a `[^/]+` URL argument; a non-number is a 500 (maas-api.md §9)."""
    try:
        return int(value)
    except ValueError:
        if version.django_int_error:
            raise ServerError(f"Field 'id' expected a number but got {value!r}.") from None
        raise ServerError(f"invalid literal for int() with base 10: {value!r}") from None


class Region:
    """One region controller's API over the shared state; the caller holds the lock."""

    def __init__(
        self,
        state: MaasState,
        version: MaasVersion,
        credentials: Credentials,
        nonces: NonceStore,
        import_duration: Callable[[], float],
    ) -> None:
        self.state = state
        self.version = version
        self.credentials = credentials
        self.nonces = nonces
        self.import_duration = import_duration
        self.routes = self._build_routes()

    # -- routing -----------------------------------------------------------------------------

    @staticmethod
    def _boot_resource_handlers() -> tuple[Resource, Resource, Resource]:
        """(collection, one resource, file upload)."""
        resources = Resource(
            "BootResourcesHandler",
            {
                ("GET", None): Region.list_resources,
                ("POST", None): Region.create_resource,
                ("POST", "import"): Region.import_resources,
                ("POST", "stop_import"): Region.stop_import,
                ("GET", "is_importing"): Region.is_importing,
            },
        )
        resource = Resource(
            "BootResourceHandler",
            {("GET", None): Region.read_resource, ("DELETE", None): Region.delete_resource},
        )
        upload = Resource("BootResourceFileUploadHandler", {("PUT", None): Region.upload_chunk})
        return resources, resource, upload

    @staticmethod
    def _boot_source_handlers() -> tuple[Resource, Resource, Resource, Resource]:
        """(sources, one source, selections, one selection), all admin-restricted."""
        sources = Resource(
            "BootSourcesHandler",
            {("GET", None): Region.list_sources, ("POST", None): Region.create_source},
            admin_restricted=True,
        )
        source = Resource(
            "BootSourceHandler",
            {
                ("GET", None): Region.read_source,
                ("PUT", None): Region.update_source,
                ("DELETE", None): Region.delete_source,
            },
            admin_restricted=True,
        )
        selections = Resource(
            "BootSourceSelectionsHandler",
            {("GET", None): Region.list_selections, ("POST", None): Region.create_selection},
            admin_restricted=True,
        )
        selection = Resource(
            "BootSourceSelectionHandler",
            {
                ("GET", None): Region.read_selection,
                ("PUT", None): Region.update_selection,
                ("DELETE", None): Region.delete_selection,
            },
            admin_restricted=True,
        )
        return sources, source, selections, selection

    def _build_routes(self) -> list[tuple[re.Pattern[str], Resource | None]]:
        resources, resource, upload = self._boot_resource_handlers()
        sources, source, selections, selection = self._boot_source_handlers()
        version = Resource("VersionHandler", {("GET", None): Region.read_version}, anonymous=True)
        routes: list[tuple[str, Resource | None]] = [
            (r"describe/", None),
            (r"version/", version),
            (r"boot-resources/", resources),
        ]
        if self.version.op_path_suffix:
            # 3.3+ also routes `<collection>/op-<name>` for each exported op (urls_api.re_path).
            routes.append((r"boot-resources/op-(?P<op>import|stop_import|is_importing)", resources))
        routes += [
            (r"boot-resources/(?P<id>[^/]+)/", resource),
            (r"boot-resources/(?P<id>[^/]+)/upload/(?P<file_id>[^/]+)/", upload),
            (r"boot-sources/", sources),
            (r"boot-sources/(?P<id>[^/]+)/", source),
            (r"boot-sources/(?P<boot_source_id>[^/]+)/selections/", selections),
            (r"boot-sources/(?P<boot_source_id>[^/]+)/selections/(?P<id>[^/]+)/", selection),
        ]
        return [(re.compile(pattern), target) for pattern, target in routes]

    def handle(self, request: ApiRequest) -> Response:
        """Answer one /MAAS/ request, turning MAAS errors into their responses."""
        try:
            return self._handle(request)
        except MAASError as error:
            return error.to_response(self.version)

    def _handle(self, request: ApiRequest) -> Response:
        path = request.path
        if path == "/MAAS/api/version/":
            return text("2.0", content_type=BARE_TEXT)
        if path.startswith("/MAAS/api/1.0/"):
            return text(
                "The 1.0 API is no longer available. Please use API version 2.0.",
                410,
                BARE_TEXT,
            )
        if not path.startswith(API_PREFIX):
            return Response(404, b"<h1>Not Found</h1>", "text/html; charset=utf-8")
        tail = path[len(API_PREFIX) :]
        for pattern, target in self.routes:
            match = pattern.fullmatch(tail)
            if match is None:
                continue
            if target is None:
                base_uri = f"{request.scheme}://{request.host}"
                return Response(200, describe_document(self.version, base_uri), "application/json")
            request.kwargs = {k: v for k, v in match.groupdict().items() if v is not None}
            return self._dispatch(target, request)
        raise UnknownEndpoint(path)

    def _dispatch(self, resource: Resource, request: ApiRequest) -> Response:
        """piston Resource.__call__ then OperationsHandlerMixin.dispatch (maas-api.md §3)."""
        if not resource.anonymous:
            request.user = authenticate(
                method=request.method,
                absolute_url=f"{request.scheme}://{request.host}{request.path}",
                authorization=request.headers.get("authorization", ""),
                query=request.query,
                post=request.post_params(),
                credentials=self.credentials,
                nonces=self.nonces,
                version=self.version,
                now=request.now,
            )
            if (
                resource.admin_restricted
                and not self.version.entitlements
                and not request.user.is_superuser
            ):
                raise Forbidden(NOT_ALLOWED)
        if request.method not in resource.allowed_methods:
            raise MethodNotAllowed(resource.allowed_methods)
        form_op: str | None = None
        if request.method in ("POST", "PUT"):
            # piston's translate_mime parses the body before dispatch; a JSON body leaves
            # request.POST empty, so its `op` is not seen.
            form = request.form
            form_op = None if form.is_json else form.get("op")
        path_op = request.kwargs.pop("op", None)
        op = request.query.get("op") or form_op
        if op is None:
            op = path_op
        function = resource.exports.get((request.method, op))
        if function is None:
            raise BadRequest(f"Unrecognised signature: method={request.method} op={op}")
        return function(self, request)

    # -- permissions ---------------------------------------------------------------------------

    def _require_edit(self, request: ApiRequest) -> None:
        """@admin_method (≤3.7) or can_edit_boot_entities (3.8) (maas-api.md §4.4)."""
        assert request.user is not None
        if request.user.is_superuser:
            return
        if self.version.entitlements:
            raise Forbidden(_EDIT_DENIED.format("can_edit_boot_entities"))
        raise Forbidden(ADMIN_ONLY)

    def _require_view_sources(self, request: ApiRequest) -> None:
        # ≤3.7 already refused non-admins in AdminRestrictedResource.authenticate.
        assert request.user is not None
        if self.version.entitlements and not request.user.is_superuser:
            raise Forbidden(_EDIT_DENIED.format("can_view_boot_entities"))

    # -- version -------------------------------------------------------------------------------

    def read_version(self, request: ApiRequest) -> Response:
        return emit(
            {
                "capabilities": list(CAPABILITIES),
                "version": self.version.version_string,
                "subversion": self.version.subversion,
            }
        )

    # -- boot resources ------------------------------------------------------------------------

    def _resource(self, request: ApiRequest, key: str = "id") -> BootResource:
        resource_id = _object_id(request.kwargs[key], self.version)
        resource = self.state.resources.get(resource_id)
        if resource is None:
            raise NotFound("BootResource")
        return resource

    def list_resources(self, request: ApiRequest) -> Response:
        self.state.advance()
        mapping = {"synced": SYNCED, "uploaded": UPLOADED}
        if self.version.has_generated_type:
            mapping = {"synced": SYNCED, "generated": GENERATED, "uploaded": UPLOADED}
        rtype = request.query.get("type") if "type" in request.query else "all"
        if rtype == "all":
            resources = sorted(
                self.state.resources.values(), key=lambda r: (r.rtype, r.name, r.architecture)
            )
        elif rtype in mapping:
            resources = sorted(
                (r for r in self.state.resources.values() if r.rtype == mapping[rtype]),
                key=lambda r: (r.name, r.architecture),
            )
        else:
            raise BadRequest(
                f"'{rtype}' is not a valid boot resource type. Available types: {list(mapping)}"
            )
        return emit([rep.resource_dict(r, self.version, with_sets=False) for r in resources])

    def read_resource(self, request: ApiRequest) -> Response:
        self.state.advance()
        resource = self._resource(request)
        return emit(rep.resource_dict(resource, self.version, with_sets=True))

    def create_resource(self, request: ApiRequest) -> Response:
        self._require_edit(request)
        self.state.advance()
        upload = validate_boot_resource(request.form, self.state, self.version)
        if not upload.content_complete and self.state.file_size_conflict(
            upload.sha256, upload.size
        ):
            raise ModelValidationError("File already exists with sha256 that is of different size.")
        resource = self.state.create_uploaded(
            name=upload.name,
            architecture=upload.architecture,
            title=upload.title,
            base_image=upload.base_image,
            filetype=upload.filetype,
            sha256=upload.sha256,
            size=upload.size,
            keep_old=upload.keep_old,
            # Up to 3.4 files are shared large objects: known content makes the new file
            # complete. 3.5+ stores files apart, so it must be uploaded again (maas-api.md §0).
            complete=upload.content_complete
            or (
                not self.version.at_least(3, 5)
                and self.state.content_stored(upload.sha256, upload.size)
            ),
        )
        return emit(rep.resource_dict(resource, self.version, with_sets=True), 201)

    def delete_resource(self, request: ApiRequest) -> Response:
        self._require_edit(request)
        resource_id = _object_id(request.kwargs["id"], self.version)
        resource = self.state.resources.get(resource_id)
        if resource is None:
            # BootResource.objects.get, not get_object_or_404: a 500 (maas-api.md §5.6).
            raise ServerError("BootResource matching query does not exist.")
        self.state.delete_resource(resource)
        return text("", 204, BARE_TEXT, api=True)

    def import_resources(self, request: ApiRequest) -> Response:
        self._require_edit(request)
        self.state.start_import(self.import_duration())
        return text("Import of boot resources started")

    def stop_import(self, request: ApiRequest) -> Response:
        self._require_edit(request)
        self.state.stop_import()
        return text("Import of boot resources is being stopped")

    def is_importing(self, request: ApiRequest) -> Response:
        return emit(self.state.is_importing())

    def upload_chunk(self, request: ApiRequest) -> Response:
        """BootResourceFileUploadHandler.update, every check in MAAS's order (maas-api.md §5.5)."""
        self._require_edit(request)
        resource = self._resource(request)
        # The file is looked up by id alone, whatever resource the URL names.
        rfile = self.state.files.get(_object_id(request.kwargs["file_id"], self.version))
        if rfile is None:
            raise NotFound("BootResourceFile")
        try:
            size = int(request.headers.get("content-length", "0"))
        except ValueError:
            size = 0
        data = request.body
        if size == 0:
            raise BadRequest("Missing data.")
        if size != len(data):
            spelled = "received" if self.version.at_least(3, 3) else "recieved"
            raise BadRequest(f"Content-Length doesn't equal size of {spelled} data.")
        allowed = (UPLOADED,) if self.version.local_file_store else (UPLOADED, GENERATED)
        if resource.rtype not in allowed:
            raise Forbidden(f"Cannot upload to a resource of type: {resource.rtype}.")
        if rfile.complete:
            raise BadRequest("Cannot upload to a complete file.")
        if rfile.received + size > rfile.size:
            raise BadRequest("Too much data received.")
        hasher = rfile.hasher.copy() if rfile.hasher is not None else hashlib.sha256()
        hasher.update(data)
        if rfile.received + size == rfile.size and hasher.hexdigest() != rfile.sha256:
            # The transaction rolls back, so the failing chunk is not kept.
            raise BadRequest("Saved content does not match given SHA256 value.")
        rfile.hasher = None if rfile.received + size == rfile.size else hasher
        rfile.received += size
        return text("OK", content_type=BARE_TEXT, api=True)

    # -- boot sources --------------------------------------------------------------------------

    def _source(self, request: ApiRequest, key: str = "id") -> BootSource:
        source = self.state.sources.get(_object_id(request.kwargs[key], self.version))
        if source is None:
            raise NotFound("BootSource")
        return source

    def list_sources(self, request: ApiRequest) -> Response:
        self._require_view_sources(request)
        return emit(
            [
                rep.source_dict(s, self.version)
                for s in sorted(self.state.sources.values(), key=lambda s: s.id)
            ]
        )

    def create_source(self, request: ApiRequest) -> Response:
        self._require_edit(request)
        changes = validate_boot_source(request.form, self.state, self.version, None)
        source = self.state.create_source(
            url=changes.url,
            keyring_filename=changes.keyring_filename,
            keyring_data=changes.keyring_data,
            name=changes.name,
            priority=changes.priority,
            enabled=changes.enabled,
            skip_keyring_verification=changes.skip_keyring_verification,
        )
        return emit(rep.source_dict(source, self.version), 201)

    def read_source(self, request: ApiRequest) -> Response:
        self._require_view_sources(request)
        return emit(rep.source_dict(self._source(request), self.version))

    def update_source(self, request: ApiRequest) -> Response:
        self._require_edit(request)
        source = self._source(request)
        changes = validate_boot_source(request.form, self.state, self.version, source)
        source.url = changes.url
        source.keyring_filename = changes.keyring_filename
        source.keyring_data = changes.keyring_data
        if self.version.entitlements:
            source.name = changes.name
            if changes.priority is not None:
                source.priority = changes.priority
            source.enabled = changes.enabled
            source.skip_keyring_verification = changes.skip_keyring_verification
        self.state.touch(source)
        return emit(rep.source_dict(source, self.version))

    def delete_source(self, request: ApiRequest) -> Response:
        self._require_edit(request)
        self.state.delete_source(self._source(request))
        return text("", 204, BARE_TEXT, api=True)

    # -- boot source selections ----------------------------------------------------------------

    def _selection(self, request: ApiRequest, source: BootSource) -> BootSourceSelection:
        selection = self.state.selections.get(_object_id(request.kwargs["id"], self.version))
        if selection is None or selection.boot_source_id != source.id:
            raise NotFound("BootSourceSelection")
        return selection

    def list_selections(self, request: ApiRequest) -> Response:
        self._require_view_sources(request)
        source = self._source(request, "boot_source_id")
        return emit([rep.selection_dict(s) for s in self.state.selections_of(source.id)])

    def create_selection(self, request: ApiRequest) -> Response:
        self._require_edit(request)
        source = self._source(request, "boot_source_id")
        changes = validate_selection(request.form, self.state, source, None)
        selection = self.state.add_selection(
            source.id,
            changes.os,
            changes.release,
            changes.arches,
            changes.subarches,
            changes.labels,
        )
        # Selections answer 200 on create, not 201 (maas-api.md §4.2).
        return emit(rep.selection_dict(selection))

    def read_selection(self, request: ApiRequest) -> Response:
        self._require_view_sources(request)
        source = self._source(request, "boot_source_id")
        return emit(rep.selection_dict(self._selection(request, source)))

    def update_selection(self, request: ApiRequest) -> Response:
        self._require_edit(request)
        source = self._source(request, "boot_source_id")
        selection = self._selection(request, source)
        changes = validate_selection(request.form, self.state, source, selection)
        selection.os = changes.os
        selection.release = changes.release
        selection.arches = changes.arches
        selection.subarches = changes.subarches
        selection.labels = changes.labels
        return emit(rep.selection_dict(selection))

    def delete_selection(self, request: ApiRequest) -> Response:
        self._require_edit(request)
        source = self._source(request, "boot_source_id")
        selection = self._selection(request, source)
        if (
            self.version.refuses_commissioning_delete
            and selection.os == "ubuntu"
            and selection.release == self.version.commissioning_release
        ):
            purpose = (
                "used for commissioning"
                if self.version.at_least(3, 0)
                else "used in ephemeral environments"
            )
            raise ModelValidationError(
                f"Unable to delete {selection.os} {selection.release}. "
                f"It is the operating system {purpose}."
            )
        del self.state.selections[selection.id]
        return text("", 204, BARE_TEXT, api=True)
