"""`maas-gateway simulate`: the MAAS simulator alone, for tests, benchmarks and other clients."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.reporting import fail


def register(commands: Any) -> None:
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
    simulate.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from app.cli.server import BackgroundServer
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
        return fail(f"invalid simulator option: {error}")
    try:
        server = BackgroundServer(create_simulator(config), host=args.host, port=args.port)
    except OSError as error:
        return fail(f"cannot listen on {args.host}:{args.port}: {error.strerror}")
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
