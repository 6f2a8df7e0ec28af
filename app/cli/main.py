"""The `maas-gateway` command: serve the gateway, run the simulator alone, export contracts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr, ValidationError

from app.config import ENV_PREFIX, Settings


def _fail(message: str) -> int:
    print(f"maas-gateway: {message}", file=sys.stderr)
    return 2


def describe_settings_error(error: ValidationError) -> str:
    """One line per bad setting, named as the operator sets it; never the rejected value."""
    lines = []
    for item in error.errors():
        name = ENV_PREFIX + "_".join(str(part) for part in item["loc"]).upper()
        reason = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"invalid setting {name}: {reason}")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.logs import configure_logging
    from app.main import create_app
    from app.serving import GatewayServer
    from app.tracing import TracingUnavailable, check_tracing

    try:
        settings = load_settings(host=args.host, port=args.port)
    except ValidationError as error:
        return _fail(describe_settings_error(error))
    try:
        check_tracing(settings)
    except TracingUnavailable as error:
        return _fail(str(error))
    configure_logging(settings.log_level, settings.log_format)

    simulator = None
    if settings.maas_url is None:
        # Demo mode: the only place the gateway starts the simulator (DESIGN.md, "The simulator").
        from app.serving import BackgroundServer
        from app.simulator import SimulatorConfig, create_simulator

        sim_config = SimulatorConfig(seed=args.seed)
        simulator = BackgroundServer(create_simulator(sim_config)).start()
        api_key = sim_config.resolved_admin_key()
        settings = settings.model_copy(
            update={"maas_url": f"{simulator.url}/MAAS", "maas_api_key": SecretStr(api_key)}
        )
        print(f"MAAS simulator: {simulator.url}/MAAS/  (demo mode: no MAAS_GATEWAY_MAAS_URL set)")
        print(f"Simulator admin API key: {api_key}")
        settings = _demo_access(settings, sim_config.resolved_user_key())
    elif settings.maas_api_key is None and settings.auth_mode == "service":
        return _fail(
            f"invalid setting {ENV_PREFIX}MAAS_API_KEY: required when MAAS_URL is set "
            "(unless MAAS_GATEWAY_AUTH_MODE=passthrough)"
        )

    base = f"http://{settings.host}:{settings.port}"
    print(f"Gateway: {base}/  GraphiQL: {base}/graphql  REST: {base}/api/v1/")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Logging is ours (app.logs), and so is the access line, with more in it.
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    server = GatewayServer(config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if simulator is not None:
            simulator.stop()
    # uvicorn's exit status when the app failed to start (its lifespan raised).
    return 0 if server.started else 3


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


def _token(args: argparse.Namespace) -> int:
    from app.security import new_token, parse_scopes, token_line

    try:
        token = new_token()
        line = token_line(token, args.name, parse_scopes(args.scopes))
    except ValueError as error:
        return _fail(str(error))
    print("Token, shown only now (the caller sends 'Authorization: Bearer <token>'):")
    print(token)
    print(f"Line for the tokens file ({ENV_PREFIX}TOKENS_FILE), which holds only the hash:")
    print(line)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from app.serving import BackgroundServer
    from app.simulator import SimulatorConfig, create_simulator

    try:
        config = SimulatorConfig(
            admin_key=args.admin_key,
            user_key=args.user_key,
            latency_ms=args.latency_ms,
            jitter_ms=args.jitter_ms,
            seed=args.seed,
            maas_version=args.maas_version,
            import_duration_s=args.import_duration,
            extra_resources=args.extra_resources,
        )
        config.resolved_admin_key()
    except ValueError as error:
        return _fail(f"invalid simulator option: {error}")
    try:
        server = BackgroundServer(create_simulator(config), host=args.host, port=args.port)
    except OSError as error:
        return _fail(f"cannot listen on {args.host}:{args.port}: {error.strerror}")
    print(f"MAAS simulator (MAAS {config.maas_version}): {server.url}/MAAS/", flush=True)
    print(f"Admin API key: {config.resolved_admin_key()}", flush=True)
    print(f"User API key:  {config.resolved_user_key()}", flush=True)
    print(f"Control: {server.url}/_simulator/", flush=True)
    server.start()
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app import contracts
    from app.docs import CONFIGURATION_DOC

    directory = Path(args.directory)
    docs = Path(args.docs_directory)
    if args.check:
        problems = contracts.check(directory, docs)
        for problem in problems:
            print(f"maas-gateway: {problem}", file=sys.stderr)
        return 1 if problems else 0
    for change in contracts.write(directory, docs):
        print(f"maas-gateway: breaking GraphQL change: {change}", file=sys.stderr)
    written = [
        directory / contracts.OPENAPI_FILE,
        directory / contracts.SDL_FILE,
        docs / CONFIGURATION_DOC,
    ]
    print(f"wrote {', '.join(str(path) for path in written)}")
    return 0


def _upload(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.uploader import UploadFailed, progress_bar, upload_file

    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such file")
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    try:
        resource = upload_file(
            args.gateway,
            path,
            name=args.name,
            architecture=args.architecture,
            title=args.title,
            filetype=args.filetype,
            base_image=args.base_image,
            progress=None if args.quiet else progress_bar(path.name),
            headers=headers,
        )
    except UploadFailed as error:
        return _fail(f"upload failed: {error}")
    except OSError as error:
        return _fail(f"{path}: {error.strerror}")
    print(
        f"uploaded boot resource {resource['id']} ({resource['name']} {resource['architecture']})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maas-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the gateway (starts the simulator when no MAAS URL is set)"
    )
    serve.add_argument("--host", help="address to listen on (MAAS_GATEWAY_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (MAAS_GATEWAY_PORT)")
    serve.add_argument("--seed", type=int, default=0, help="demo-mode simulator seed")
    serve.set_defaults(handler=_serve)

    simulate = commands.add_parser("simulate", help="run the MAAS simulator alone")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=5240)
    simulate.add_argument("--admin-key", help="fixed admin API key (consumer:token:secret)")
    simulate.add_argument("--user-key", help="fixed non-admin API key (consumer:token:secret)")
    simulate.add_argument("--latency-ms", type=float, default=0.0, help="latency per request")
    simulate.add_argument("--jitter-ms", type=float, default=0.0, help="random extra latency")
    simulate.add_argument("--seed", type=int, default=0, help="seed for state and keys")
    simulate.add_argument("--maas-version", default="3.5", help="MAAS version to behave as")
    simulate.add_argument(
        "--import-duration", type=float, default=10.0, help="seconds an image import takes"
    )
    simulate.add_argument(
        "--extra-resources", type=int, default=0, help="extra uploaded boot resources to seed"
    )
    simulate.set_defaults(handler=_simulate)

    upload = commands.add_parser(
        "upload", help="stream a custom image to MAAS through the gateway's REST API"
    )
    upload.add_argument("file", help="the image file (e.g. a root tarball)")
    upload.add_argument("--name", required=True, help="boot resource name, e.g. custom/alma9")
    upload.add_argument("--architecture", required=True, help="arch/subarch, e.g. amd64/generic")
    upload.add_argument("--title", help="title shown in MAAS")
    upload.add_argument("--filetype", default="tgz", help="MAAS upload type (tgz, ddraw, ...)")
    upload.add_argument("--base-image", help="os/series the custom image is based on")
    upload.add_argument("--gateway", default="http://127.0.0.1:8000", help="the gateway's base URL")
    upload.add_argument("--token", help="a gateway bearer token, when the gateway needs one")
    upload.add_argument("--quiet", action="store_true", help="no progress bar")
    upload.set_defaults(handler=_upload)

    token = commands.add_parser("token", help="gateway tokens for service mode")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser(
        "create", help="make a random token; print it once, and its line for the tokens file"
    )
    create.add_argument("--name", required=True, help="who the token is for (logs, metrics)")
    create.add_argument(
        "--scopes", default="read", help="comma-separated: read, write, admin (default: read)"
    )
    create.set_defaults(handler=_token)

    export = commands.add_parser(
        "export", help="write openapi.json, schema.graphql and the configuration reference"
    )
    export.add_argument("--directory", default="openapi", help="where the contracts live")
    export.add_argument("--docs-directory", default="docs", help="where configuration.md lives")
    export.add_argument(
        "--check", action="store_true", help="fail when the files differ from the app"
    )
    export.set_defaults(handler=_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
