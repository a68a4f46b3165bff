"""`ketenbroker`: the command line.

ketenbroker keys init [--if-missing] [--alg EdDSA|ES256] [--dir DIR]
ketenbroker demo                       the main job, on the embedded default
ketenbroker serve [--no-adapters] [--workers N]  broker (and adapters) until Ctrl-C
ketenbroker adapter --partner ID       one partner's adapter (used by docker/)
ketenbroker policy eval ENTRYPOINT --input FILE
ketenbroker policy test                Rego unit tests, with pass/fail counts
ketenbroker policy bundle [--out PATH]  the signed OPA bundle (var/policy-bundle.tar.gz)
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from broker.commands import access_report as access_report_commands
from broker.commands import audit as audit_commands
from broker.commands import dpo as dpo_commands
from broker.commands import keys as keys_commands
from broker.commands import policy as policy_commands
from broker.commands import restore_check as restore_check_commands
from broker.commands import retention as retention_commands
from broker.convenant import load_convenant
from broker.keys import KeyStore
from broker.logging_setup import configure_logging
from broker.retention.scheduler import RetentionScheduler, scheduler_for
from broker.services import Services, build_services
from broker.settings import Settings

BROKER_PORT = 8400
FIRST_ADAPTER_PORT = 8501


def _keys_init(args: argparse.Namespace, settings: Settings) -> int:
    convenant = load_convenant(settings.convenant_path)
    store = KeyStore(Path(args.dir) if args.dir else settings.keys_dir)
    made = store.init(
        ["broker", *convenant.principal_ids()], alg=args.alg, if_missing=args.if_missing
    )
    if made:
        print(f"made key pairs for {', '.join(made)} in {store.root}")
    else:
        print(f"all key pairs present in {store.root}")
    return 0


def _demo(_args: argparse.Namespace, settings: Settings) -> int:
    from broker.demo import run_demo

    return run_demo(settings)


def _start_retention(services: Services) -> RetentionScheduler:
    # R7: the retention job runs hourly in `serve`, with the broker's own clock.
    scheduler = scheduler_for(
        cases=services.cases,
        audit=services.audit,
        convenant=services.convenant,
        clock=services.clock,
    )
    scheduler.start()
    return scheduler


def _shared_state_missing(settings: Settings) -> list[str]:
    """What several broker processes would not share under `settings` (empty: all shared)."""
    missing = []
    if settings.storage_backend != "postgres":
        missing.append(f"storage_backend={settings.storage_backend} (needs postgres)")
    if settings.cache_backend != "redis":
        missing.append(f"cache_backend={settings.cache_backend} (needs redis)")
    return missing


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from broker.api.app import create_app
    from broker.api.factory import FACTORY_PATH
    from broker.stack import start_local_stack

    if args.workers < 1 or (args.workers > 1 and not args.no_adapters):
        print("--workers needs --no-adapters and a count >= 1", file=sys.stderr)
        return 2
    if args.workers > 1 and (missing := _shared_state_missing(settings)):
        # Fail closed: with an in-process replay cache each worker would
        # accept a jti another worker already saw (RFC 9449 §11.1).
        print(f"--workers {args.workers} refused: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.no_adapters:
        # The supervising process reconciles and runs the hourly retention
        # job; with several workers each one builds its own services from the
        # same environment (broker.api.factory).
        services = build_services(settings)
        retention = _start_retention(services)
        try:
            if args.workers > 1:
                uvicorn.run(
                    FACTORY_PATH,
                    factory=True,
                    workers=args.workers,
                    host=args.host,
                    port=args.port,
                    log_level="info",
                    log_config=None,
                    access_log=False,
                )
            else:
                app = create_app(settings, services=services)
                uvicorn.run(
                    app,
                    host=args.host,
                    port=args.port,
                    log_level="info",
                    log_config=None,
                    access_log=False,
                )
        finally:
            retention.stop()  # before the services it uses are closed
            services.close()
        return 0
    ports = {
        partner.id: FIRST_ADAPTER_PORT + n
        for n, partner in enumerate(load_convenant(settings.convenant_path).partners)
    }
    stack = start_local_stack(
        base=settings.model_dump(exclude={"issuer", "adapter_urls"}),
        broker_port=args.port,
        adapter_ports=ports,
    )
    print(f"broker  {stack.broker_url}")
    for partner, url in stack.adapter_urls.items():
        print(f"adapter {partner:<26} {url}")
    retention = _start_retention(stack.services)
    print("serving until Ctrl-C; the retention job runs every hour")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        retention.stop()  # before the services it uses are closed
        stack.stop()
    return 0


def _adapter(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from adapters.registry import adapter_for_partner

    convenant = load_convenant(settings.convenant_path)
    kind = adapter_for_partner(convenant, args.partner)
    app = kind.build_app(
        partner_id=args.partner, keys=KeyStore(settings.keys_dir), broker_issuer=settings.issuer
    )
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="info", log_config=None, access_log=False
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ketenbroker", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    keys = commands.add_parser("keys", help="development key pairs").add_subparsers(
        dest="keys_command", required=True
    )
    init = keys.add_parser("init", help="make key pairs for the broker and every principal")
    init.add_argument("--if-missing", action="store_true", help="keep existing key pairs")
    init.add_argument("--alg", choices=["EdDSA", "ES256"], default="EdDSA")
    init.add_argument("--dir", help="key folder (default: the settings' keys_dir)")
    init.set_defaults(handler=_keys_init)

    commands.add_parser("demo", help="play the story of a complex case").set_defaults(handler=_demo)

    serve = commands.add_parser("serve", help="run the broker (and adapters) on loopback")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=BROKER_PORT)
    serve.add_argument("--no-adapters", action="store_true", help="the broker alone")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="broker processes on this port (needs --no-adapters, PostgreSQL and Redis)",
    )
    serve.set_defaults(handler=_serve)

    adapter = commands.add_parser("adapter", help="run one partner's adapter")
    adapter.add_argument("--partner", required=True)
    adapter.add_argument("--host", default="127.0.0.1")
    adapter.add_argument("--port", type=int, default=FIRST_ADAPTER_PORT)
    adapter.set_defaults(handler=_adapter)

    policy_commands.register(commands)

    for group in (
        audit_commands,
        retention_commands,
        access_report_commands,
        dpo_commands,
        keys_commands,
        restore_check_commands,
    ):
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    if args.command in ("serve", "adapter"):
        # Servers log in the operator's format (docs/operations.md, Logs).
        configure_logging(settings)
    else:
        # The other commands print their results; warnings only, beside them.
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    code: int = args.handler(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
