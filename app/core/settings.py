"""Gateway settings, read from MAAS_GATEWAY_* environment variables or a .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.permissions import format_permissions, parse_permissions

ENV_PREFIX = "MAAS_GATEWAY_"


def parse_api_key(value: str) -> tuple[str, str, str]:
    """Split a MAAS API key into (consumer key, token key, token secret) (maas-api.md §2.1)."""
    parts = value.strip().split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError("must be three non-empty parts: consumer_key:token_key:token_secret")
    return parts[0], parts[1], parts[2]


def read_api_key_file(path: str) -> SecretStr:
    """The MAAS API key a file holds (surrounding whitespace dropped); ValueError when it
    cannot be read or is no key, with a reason that never quotes the file's content."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "not text"
        raise ValueError(f"cannot read {path}: {reason}") from None
    key = text.strip()
    try:
        parse_api_key(key)
    except ValueError as error:
        raise ValueError(f"{path} holds no MAAS API key: {error}") from None
    return SecretStr(key)


PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class Settings(BaseSettings):
    """Everything the gateway can be told; the defaults suit a demo against the simulator."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    maas_url: str | None = Field(
        default=None,
        description="MAAS base URL (http://host:5240/MAAS); unset runs the embedded simulator.",
    )
    maas_api_key: SecretStr | None = Field(
        default=None, description="MAAS API key, consumer_key:token_key:token_secret."
    )
    maas_api_key_file: str | None = Field(
        default=None,
        description="File holding the MAAS API key instead (e.g. a mounted Secret), read once "
        "at start-up; set it or maas_api_key, not both.",
    )
    maas_ca_bundle: str | None = Field(
        default=None, description="Path to a CA bundle for TLS to MAAS (certificates are verified)."
    )
    maas_connect_timeout: PositiveFloat = Field(default=5.0, description="Seconds to connect.")
    maas_timeout: PositiveFloat = Field(
        default=30.0, description="Seconds for one upstream request (read/write/pool)."
    )
    maas_max_connections: PositiveInt = Field(
        default=100, description="Upstream connection pool size."
    )
    maas_max_concurrency: PositiveInt = Field(
        default=64, description="Upper bound on upstream requests in flight at once."
    )
    maas_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=2, description="Retries for idempotent reads and connection failures."
    )
    maas_retry_backoff: Annotated[float, Field(ge=0)] = Field(
        default=0.1, description="Base backoff in seconds between retries (with jitter)."
    )
    maas_breaker_threshold: Annotated[int, Field(ge=0)] = Field(
        default=5,
        description="Consecutive failed MAAS calls (no answer, or a 5xx) that open an endpoint "
        "family's circuit breaker; 0 turns the breakers off.",
    )
    maas_breaker_cooldown: PositiveFloat = Field(
        default=10.0,
        description="Seconds an open circuit breaker fails calls fast before one probe call.",
    )
    upload_chunk_size: Annotated[int, Field(ge=64 * 1024, le=10 * 1024 * 1024)] = Field(
        default=4 * 1024 * 1024,
        description="Bytes per upload chunk to MAAS (at most 10 MiB: MAAS's nginx limit).",
    )
    max_upload_bytes: PositiveInt = Field(
        default=64 * 1024**3, description="Largest custom image accepted, in bytes."
    )
    cache_ttl_boot_resources: PositiveFloat = Field(
        default=30.0, description="Seconds a boot-resource list stays fresh."
    )
    cache_ttl_boot_resource: PositiveFloat = Field(
        default=60.0, description="Seconds one boot resource's sets and files stay fresh."
    )
    cache_ttl_boot_sources: PositiveFloat = Field(
        default=120.0, description="Seconds boot sources stay fresh."
    )
    cache_ttl_selections: PositiveFloat = Field(
        default=120.0, description="Seconds a boot source's selections stay fresh."
    )
    cache_ttl_import_status: PositiveFloat = Field(
        default=5.0, description="Seconds the import status stays fresh."
    )
    cache_ttl_while_importing: PositiveFloat = Field(
        default=2.0, description="Boot-resource TTL while an import runs (progress moves)."
    )
    cache_stale_ttl: Annotated[float, Field(ge=0)] = Field(
        default=300.0, description="Seconds past expiry an entry may be served when MAAS fails."
    )
    cache_max_entries: PositiveInt = Field(
        default=10_000, description="Entries the entity cache holds at most."
    )
    response_cache_ttl: Annotated[float, Field(ge=0)] = Field(
        default=30.0, description="Seconds a full GraphQL response is reused (0 turns it off)."
    )
    response_cache_max_bytes: PositiveInt = Field(
        default=64 * 1024 * 1024, description="Bytes the full-response cache holds at most."
    )
    fanout_concurrency: PositiveInt = Field(
        default=64, description="Detail reads one request may have in flight at once."
    )
    max_fanout: PositiveInt = Field(
        default=500, description="Detail reads one request may make in all."
    )
    import_poll_interval: PositiveFloat = Field(
        default=1.0, description="Seconds between import-progress polls while someone listens."
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis shared by the replicas (redis://host:6379/0): writes invalidate every "
        "replica's caches at once and reads share a second-level cache. Unset: no Redis.",
    )
    redis_password: SecretStr | None = Field(
        default=None, description="Password for redis_url (the chart reads it from a Secret)."
    )
    redis_shared_cache: bool = Field(
        default=True,
        description="With redis_url: share MAAS answers between replicas in Redis (never boot "
        "sources, which hold keyrings).",
    )
    redis_timeout: PositiveFloat = Field(
        default=0.25,
        description="Seconds any Redis call may take before it counts as Redis being down; "
        "also how long a write waits for the other replicas to apply it.",
    )
    redis_degraded_ttl: PositiveFloat = Field(
        default=2.0,
        description="While Redis is unreachable, the longest any cache entry stays fresh "
        "(other replicas' writes cannot reach this one).",
    )
    graphql_max_depth: PositiveInt = Field(default=10, description="Deepest GraphQL document.")
    graphql_max_aliases: PositiveInt = Field(default=30, description="Aliases per document.")
    graphql_max_tokens: PositiveInt = Field(default=2000, description="Tokens per document.")
    graphql_max_cost: PositiveInt = Field(
        default=1000,
        description="Largest estimated cost of one GraphQL operation: the MAAS reads it can "
        "trigger, each list assumed to hold graphql_cost_list_size items.",
    )
    graphql_cost_list_size: PositiveInt = Field(
        default=50, description="Items a list is assumed to hold when estimating cost."
    )
    graphql_max_plans: Annotated[int, Field(ge=0)] = Field(
        default=512,
        description="Compiled execution plans kept, one per query document and operation "
        "name (least recently used go first); 0 runs every operation on graphql-core.",
    )
    cost_budget: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="Estimated cost a principal's GraphQL operations may spend per "
        "cost_budget_window, on top of the request rate (0 turns it off). Stored answers "
        "cost nothing.",
    )
    cost_budget_window: PositiveFloat = Field(
        default=60.0, description="Seconds in which cost_budget refills."
    )
    graphql_persisted_documents: Literal["off", "apq", "trusted"] = Field(
        default="apq",
        description="off: documents come as text only; apq: Apollo's automatic persisted "
        "queries, shared through Redis when configured; trusted: only the manifest's documents "
        "run, free text only for the admin scope.",
    )
    graphql_trusted_documents: str | None = Field(
        default=None,
        description="Apollo persisted-query manifest (maas-gateway documents builds one); "
        "needed for trusted, and its documents are known by hash in apq too.",
    )
    graphql_ws_max_pending: PositiveInt = Field(
        default=1000,
        description="GraphQL WebSockets that may be open and not yet signed in, in all; more "
        "are refused at the handshake.",
    )
    graphql_ws_max_pending_per_client: PositiveInt = Field(
        default=50,
        description="The same, per client address.",
    )
    graphql_max_subscriptions_per_principal: PositiveInt = Field(
        default=1000,
        description="Subscriptions one principal may hold open at once, over all its sockets.",
    )
    graphql_ws_compression: bool = Field(
        default=False,
        description="permessage-deflate on GraphQL WebSockets: less bandwidth for about 50 KiB "
        "more memory per socket, and CPU for every frame sent.",
    )
    graphql_ws_init_timeout: PositiveFloat = Field(
        default=10.0,
        description="Seconds a GraphQL WebSocket may stay open without connection_init before "
        "it is closed with 4408.",
    )
    auth_mode: Literal["service", "passthrough"] = Field(
        default="service",
        description="service: callers present gateway tokens and the gateway signs with its key; "
        "passthrough: callers present their own MAAS API key.",
    )
    passthrough_key_ttl: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="Seconds a MAAS key MAAS confirmed is remembered (passthrough mode); a key "
        "not confirmed gets a 401 before its GraphQL document is parsed.",
    )
    tokens_file: str | None = Field(
        default=None,
        description="File of hashed gateway tokens (service mode), re-read when it changes.",
    )
    anonymous_scopes: str = Field(
        default="",
        description="Scopes callers without a credential get in service mode (e.g. read); "
        "empty: none.",
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated browser origins allowed to call (CORS and websockets).",
    )
    max_request_bytes: PositiveInt = Field(
        default=1024 * 1024, description="Largest request body outside uploads, in bytes."
    )
    rate_limit_per_second: Annotated[float, Field(ge=0)] = Field(
        default=100.0,
        description="Requests a second each principal may make (0 turns it off); with redis_url, "
        "counted across every replica.",
    )
    rate_limit_burst: PositiveInt = Field(
        default=200, description="Requests a principal may make at once above that rate."
    )
    graphql_introspection: bool = Field(
        default=True, description="Allow introspection to every caller (else admin scope only)."
    )
    graphiql: bool = Field(default=True, description="Serve the GraphiQL page at GET /graphql.")
    host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(default=8000, description="Port.")
    log_level: str = Field(default="info", description="Log level (debug, info, warning, error).")
    log_format: str = Field(
        default="json", description="Log lines as JSON objects (json) or plain text (text)."
    )
    shutdown_timeout: PositiveInt = Field(
        default=20,
        description="Seconds in-flight requests get to finish after SIGTERM before they are "
        "cancelled; keep it below the pod's termination grace period minus its preStop sleep.",
    )
    readiness_window: PositiveFloat = Field(
        default=60.0,
        description="Seconds since MAAS last answered within which /readyz reports ready "
        "(afterwards only while the cache can still serve).",
    )
    readiness_probe_interval: PositiveFloat = Field(
        default=10.0,
        description="Seconds between MAAS version checks while no request has reached MAAS.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector URL (e.g. http://otel-collector:4318); setting it turns "
        "tracing on (needs the otel extra).",
    )
    otel_service_name: str = Field(
        default="maas-gateway", description="service.name of the gateway's spans."
    )

    @model_validator(mode="after")
    def _check_trusted_documents(self) -> Settings:
        if self.graphql_persisted_documents == "trusted" and not self.graphql_trusted_documents:
            raise ValueError(
                "graphql_persisted_documents=trusted needs graphql_trusted_documents (a manifest)"
            )
        return self

    @field_validator("maas_api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_api_key(value.get_secret_value())
        return value

    @field_validator("maas_api_key_file")
    @classmethod
    def _check_api_key_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        if info.data.get("maas_api_key") is not None:
            raise ValueError("set it or MAAS_GATEWAY_MAAS_API_KEY, not both")
        read_api_key_file(value)
        return value

    @model_validator(mode="after")
    def _load_api_key_file(self) -> Settings:
        # Checked above, where an error names the setting; read here, so every consumer keeps
        # reading maas_api_key.
        if self.maas_api_key_file is not None and self.maas_api_key is None:
            self.maas_api_key = read_api_key_file(self.maas_api_key_file)
        return self

    @field_validator("maas_url", "otel_exporter_otlp_endpoint")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("must be redis://host[:port][/db] or rediss://...")
        if parts.password is not None:
            # Settings are printed and rendered into a ConfigMap; the password is a Secret.
            raise ValueError("must not hold a password: set redis_password instead")
        return value

    @field_validator("anonymous_scopes")
    @classmethod
    def _check_anonymous_scopes(cls, value: str) -> str:
        return format_permissions(parse_permissions(value))

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str) -> str:
        return ",".join(_origin(part) for part in value.split(",") if part.strip())

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if self.auth_mode == "passthrough" and (self.anonymous_scopes or self.tokens_file):
            raise ValueError(
                "auth_mode=passthrough takes each caller's MAAS key: tokens_file and "
                "anonymous_scopes apply to auth_mode=service only"
            )
        return self

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(self.cors_origins.split(",")) if self.cors_origins else ()

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        return _choice(value, ("debug", "info", "warning", "error", "critical"))

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        return _choice(value, ("json", "text"))


def _choice(value: str, options: tuple[str, ...]) -> str:
    chosen = value.strip().lower()
    if chosen not in options:
        raise ValueError(f"must be one of {', '.join(options)}")
    return chosen


def _origin(value: str) -> str:
    """An origin as browsers send it (scheme://host[:port], lower case), or `*`."""
    value = value.strip()
    if value == "*":
        return value
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("an origin has an invalid port") from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise ValueError("each origin must be scheme://host[:port] (no path), or *")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")
