"""The ``gateway`` command (DESIGN.md "Commands")."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Callable, Sequence

from config.settings import ConfigError, Settings, load_settings

log = logging.getLogger("gateway")

# Extra sub-commands registered by feature modules: name -> (configure parser, run).
EXTRA_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def _logging(settings: Settings | None) -> None:
    level = (settings.log_level if settings else "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Provider SDKs log each request at INFO: Twilio with the recipient's number in the query,
    # httpx (python-telegram-bot) with the bot token in the URL. Only their warnings are kept.
    for noisy in ("twilio", "httpx", "httpcore", "telegram.ext"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))


def _migrate_if_sqlite(settings: Settings) -> None:
    from store.migrate import upgrade

    if settings.effective_database_url.startswith("sqlite"):
        upgrade(settings.effective_database_url)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from gateway.app import create_app
    from gateway.context import build_gateway

    _migrate_if_sqlite(settings)
    mode = "RQ on Redis" if settings.redis_url else "in-process"
    processes = args.processes

    def serve(sock: object | None, index: int) -> None:
        gateway = build_gateway(settings)
        app = create_app(gateway, services=index == 0)
        if index == 0:
            sandbox = [name for name, adapter in gateway.adapters.items() if getattr(adapter, "sandbox", False)]
            print(f"gateway: listening on http://{args.host}:{args.port} (database: "
                  f"{gateway.db.engine.dialect.name}, delivery: {mode}"
                  + (f", sandbox: {', '.join(sandbox)}" if sandbox else "")
                  + (f", {processes} processes" if processes > 1 else "") + ")", flush=True)
        where = {"sock": sock} if sock is not None else {"host": args.host, "port": args.port}
        web.run_app(app, **where, print=None, shutdown_timeout=30, access_log=None)  # type: ignore[arg-type]

    if processes <= 1:
        serve(None, 0)
        return 0
    from gateway.processes import listening_sockets, serve_processes

    return serve_processes(processes, listening_sockets(args.host, args.port, processes), serve)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.worker import run_worker

    run_worker(settings, burst=args.burst)
    return 0


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from store.migrate import upgrade

    upgrade(settings.effective_database_url)
    print("database is up to date")
    return 0


def cmd_route(args: argparse.Namespace, settings: Settings) -> int:
    from config.loader import load_config
    from conversations.routing import cli as routing_cli

    config = load_config(settings.config)
    if args.action == "evaluate":
        if not args.file:
            print("gateway route evaluate FILE: name a labelled JSONL file", file=sys.stderr)
            return 2
        return routing_cli.evaluate_main(config, args.file, sys.stdout, cv=args.cv, errors=args.errors)
    if not args.jsonl:
        print("gateway route --jsonl FILE: name the JSONL file to route", file=sys.stderr)
        return 2
    return routing_cli.route_jsonl(config, args.jsonl, sys.stdout)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from channels.sms.parse import tel_urn
    from conversations.messages import InboundMessage
    from gateway.context import build_gateway

    _migrate_if_sqlite(settings)
    gateway = build_gateway(settings)
    text = " ".join(args.text)
    inbound = InboundMessage(channel="sms", provider_message_id=f"SIM{uuid.uuid4().hex}",
                             sender=tel_urn(args.sender, settings.country), service_address=settings.sms_number,
                             text=text, received_at=gateway.core.clock.now())

    async def run() -> list[str]:
        result = gateway.core.ingest_in_session(inbound)
        await gateway.delivery.deliver_ids(list(result.outbox_ids))
        from sqlmodel import select

        from store.models import Message

        with gateway.db.session() as session:
            rows = session.exec(select(Message).where(Message.direction == "out",
                                                      Message.id.in_(  # type: ignore[attr-defined]
                                                          [m for m in _message_ids(gateway, result.outbox_ids)]))).all()
            texts = [f"[{row.status}] {row.text}" for row in rows]
        await gateway.close()
        return texts

    for line in asyncio.run(run()):
        print(line)
    return 0


def _message_ids(gateway: object, outbox_ids: Sequence[int]) -> list[int]:
    from sqlmodel import select

    from store.models import Outbox

    with gateway.db.session() as session:  # type: ignore[attr-defined]
        return list(session.exec(select(Outbox.message_id).where(Outbox.id.in_(list(outbox_ids)))).all())  # type: ignore[attr-defined]


def cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.users import add_user_command

    _migrate_if_sqlite(settings)
    return add_user_command(settings, args)


def cmd_citizen(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.citizens import run

    _migrate_if_sqlite(settings)
    return run(args, settings)


def cmd_clocks(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.clocks_service import cli_run

    _migrate_if_sqlite(settings)
    return cli_run(args, settings)


def cmd_scheduler(args: argparse.Namespace, settings: Settings) -> int:
    """``gateway scheduler --once``: the same as ``gateway clocks tick``."""
    args.action = "tick"
    return cmd_clocks(args, settings)


def cmd_telegram(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.telegram_cli import set_webhook_command

    return set_webhook_command(settings, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Omnichannel complaints gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server (and in-process delivery, polling, scheduler)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--processes", type=int, default=1, metavar="N",
                       help="server processes sharing the port (default 1; as many as cores under load)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a delivery worker on Redis/RQ (needs GATEWAY_REDIS_URL)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db)

    route = sub.add_parser("route", help="route messages: --jsonl FILE, or `evaluate FILE`")
    route.add_argument("action", nargs="?", choices=["evaluate"], help="evaluate a labelled file")
    route.add_argument("file", nargs="?")
    route.add_argument("--jsonl", help="JSONL file of {id, text, channel?}")
    route.add_argument("--cv", type=int, default=0, help="evaluate: k-fold cross-validation of the learned part")
    route.add_argument("--errors", action="store_true", help="evaluate: list the misses")
    route.set_defaults(func=cmd_route)

    simulate = sub.add_parser("simulate", help="play the citizen in the sandbox")
    sim_sub = simulate.add_subparsers(dest="channel", required=True)
    sms = sim_sub.add_parser("sms", help="send an SMS as a citizen and print the reply")
    sms.add_argument("--from", dest="sender", required=True, help="the citizen's number")
    sms.add_argument("text", nargs="+")
    sms.set_defaults(func=cmd_simulate)

    scheduler = sub.add_parser("scheduler", help="one pass of the clocks (reminders, overdue, escalation, "
                                                 "auto-close); serve runs it every minute by itself")
    scheduler.add_argument("--once", action="store_true", default=True)
    scheduler.set_defaults(func=cmd_scheduler)

    user = sub.add_parser("user", help="console/API users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user; the password is read from stdin or generated")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=["agent", "officer", "supervisor", "admin"])
    add.add_argument("--administration")
    add.set_defaults(func=cmd_user)

    from gateway import citizens

    citizen = sub.add_parser("citizen", help="one citizen's personal data: export it, or erase it")
    citizens.configure(citizen)
    citizen.set_defaults(func=cmd_citizen)

    clocks = sub.add_parser("clocks", help="deadline scheduler: `tick` runs one pass, `run` runs forever")
    clocks.add_argument("action", choices=["tick", "run"], help="tick: one pass and exit; run: forever")
    clocks.set_defaults(func=cmd_clocks)

    telegram = sub.add_parser("telegram", help="Telegram bot administration")
    tg_sub = telegram.add_subparsers(dest="telegram_command", required=True)
    set_webhook = tg_sub.add_parser("set-webhook", help="register GATEWAY_PUBLIC_URL/webhooks/telegram with "
                                    "the secret token (setWebhook)")
    set_webhook.add_argument("--max-connections", type=int, default=None, help="Telegram's max_connections (1-100)")
    set_webhook.set_defaults(func=cmd_telegram)

    for name, (configure, run) in EXTRA_COMMANDS.items():
        extra = sub.add_parser(name)
        configure(extra)
        extra.set_defaults(func=lambda a, s, run=run: run(a))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        _logging(settings)
        return int(args.func(args, settings) or 0)
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
