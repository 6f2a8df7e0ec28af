"""`maas-gateway serve`: the gateway under uvicorn, against MAAS or, in demo mode, against the
simulator it starts."""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

from app.cli.reporting import describe_settings_error, fail
from app.core.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from app.cli.server import BackgroundServer


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="run the gateway (starts the simulator when no MAAS URL is set)"
    )
    serve.add_argument("--host", help="address to listen on (MAAS_GATEWAY_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (MAAS_GATEWAY_PORT)")
    serve.add_argument("--seed", type=int, default=0, help="demo-mode simulator seed")
    serve.set_defaults(handler=run)


def load_settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from app.observability.logs import configure_logging
    from app.observability.tracing import TracingUnavailable, check_tracing

    try:
        settings = load_settings(host=args.host, port=args.port)
    except ValidationError as error:
        return fail(describe_settings_error(error))
    try:
        check_tracing(settings)
    except TracingUnavailable as error:
        return fail(str(error))
    configure_logging(settings.log_level, settings.log_format)
    simulator = None
    if settings.maas_url is None:
        simulator, settings = _demo(settings, args.seed)
    elif settings.maas_api_key is None and settings.auth_mode == "service":
        return fail(
            f"invalid setting {ENV_PREFIX}MAAS_API_KEY: required when MAAS_URL is set "
            "(unless MAAS_GATEWAY_AUTH_MODE=passthrough)"
        )
    try:
        return _serve(settings)
    finally:
        if simulator is not None:
            simulator.stop()


def _demo(settings: Settings, seed: int) -> tuple[BackgroundServer, Settings]:
    # Demo mode: the only place the gateway starts the simulator (docs/architecture.md,
    # "The simulator").
    from app.cli.server import BackgroundServer
    from app.simulator import SimulatorConfig, create_simulator

    config = SimulatorConfig(seed=seed)
    simulator = BackgroundServer(create_simulator(config)).start()
    api_key = config.resolved_admin_key()
    settings = settings.model_copy(
        update={"maas_url": f"{simulator.url}/MAAS", "maas_api_key": SecretStr(api_key)}
    )
    print(f"MAAS simulator: {simulator.url}/MAAS/  (demo mode: no MAAS_GATEWAY_MAAS_URL set)")
    print(f"Simulator admin API key: {api_key}")
    return simulator, _demo_access(settings, config.resolved_user_key())


def _demo_access(settings: Settings, user_key: str) -> Settings:
    """Demo mode works out of the box: anonymous callers may read and write, unless access
    was configured (a tokens file, anonymous scopes, or passthrough)."""
    if settings.auth_mode == "passthrough":
        print(f"Simulator user API key:  {user_key}")
        print("Passthrough mode: send a simulator key as 'Authorization: Bearer <key>'")
        return settings
    if settings.tokens_file is not None or "anonymous_scopes" in settings.model_fields_set:
        return settings
    print(
        "Demo mode: anonymous callers may read and write "
        f"(set {ENV_PREFIX}TOKENS_FILE to require gateway tokens)"
    )
    return settings.model_copy(update={"anonymous_scopes": "read,write"})


def _serve(settings: Settings) -> int:
    import uvicorn

    from app.cli.server import GatewayServer, app_options
    from app.main import create_app

    base = f"http://{settings.host}:{settings.port}"
    print(f"Gateway: {base}/  GraphiQL: {base}/graphql  REST: {base}/api/v1/")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Logging is ours (app.observability.logs), and so is the access line, with more in it.
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        **app_options(app),
    )
    server = GatewayServer(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    # uvicorn's exit status when the app failed to start (its lifespan raised).
    return 0 if server.started else 3
