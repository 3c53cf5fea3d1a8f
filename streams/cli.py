"""The ``sandan`` command: ``worker``, ``topics``, ``gateway``, ``dashboard``, ``key``, ``audit``,
``inspect``, ``review``. (The demo load of ``make run`` is the load generator's:
``python -m loadtest.demo``; the product never imports ``loadtest``.)"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import sys

from streams.settings import SETTINGS_HELP, Settings, SettingsError

__all__ = ("log_to_stderr", "main", "require_brokers", "settings_or_exit")

_M_ARENA_MAX = -8  # glibc's mallopt parameter number
_LOG_LEVELS = ("debug", "info", "warning", "error")


def settings_or_exit() -> Settings:
    """The settings from the environment; exit 2 with one line naming what is wrong."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"sandan: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def log_to_stderr(settings: Settings) -> None:
    """Warnings and errors of a short command to stderr, personal data masked."""
    from streams.logmask import install  # noqa: PLC0415

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install(settings)


def _limit_malloc_arenas() -> None:
    """RocksDB's threads each get a glibc malloc arena of their own, and freed memtables stay
    scattered over them: two arenas keep the worker's RSS near what it uses."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 2)


def _worker(args: argparse.Namespace) -> None:
    _limit_malloc_arenas()  # before any thread starts
    import faust  # noqa: PLC0415 - only the worker needs faust

    from streams.app import EXIT_DATA_DIR, create_app, data_dir_stop  # noqa: PLC0415
    from streams.logmask import install  # noqa: PLC0415
    from streams.store import as_data_dir_error  # noqa: PLC0415

    settings = settings_or_exit()
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        app = create_app(settings)  # opens the local state
    except OSError as exc:
        error = as_data_dir_error(exc, settings.data_dir)
        if error is None:
            raise
        print(f"sandan: {data_dir_stop(settings, error)}", file=sys.stderr)
        raise SystemExit(EXIT_DATA_DIR) from None

    class _Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            install(settings, logger)  # on the handlers faust has just made

    worker = _Worker(app, loglevel=args.loglevel)
    worker.execute_from_commandline()


def require_brokers(settings: Settings) -> None:
    """A one-shot command facing brokers it cannot reach: one line saying why, exit 1 (aiokafka
    only says that it could not bootstrap, with a traceback)."""
    from streams.kafka_security import connection_problem  # noqa: PLC0415

    problem = asyncio.run(connection_problem(settings))
    if problem is not None:
        print(f"sandan: cannot connect to the brokers: {problem}", file=sys.stderr)
        raise SystemExit(1)


def _topics(args: argparse.Namespace) -> None:
    from streams.topics import create_topics  # noqa: PLC0415

    settings = settings_or_exit()
    log_to_stderr(settings)
    require_brokers(settings)
    created = asyncio.run(create_topics(settings))
    print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))


def _gateway(args: argparse.Namespace) -> None:
    from gateway.keys import KeysFileError  # noqa: PLC0415 - only the gateway needs aiohttp
    from gateway.main import run  # noqa: PLC0415

    settings = settings_or_exit()
    try:
        run(settings, args.loglevel)
    except KeysFileError as exc:
        print(f"sandan: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _dashboard(args: argparse.Namespace) -> None:
    from dashboard.main import run  # noqa: PLC0415 - only the dashboard needs it

    run(settings_or_exit(), args.loglevel)


def _audit(args: argparse.Namespace) -> None:
    from streams.audit import history, read_ticket_records, render_json, render_text  # noqa: PLC0415
    from streams.topics import Topics  # noqa: PLC0415

    settings = settings_or_exit()
    log_to_stderr(settings)
    require_brokers(settings)
    try:
        records = read_ticket_records(settings, args.ticket, args.timeout)
    except (ValueError, LookupError, TimeoutError) as exc:
        print(f"sandan: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    events = history(args.ticket, Topics(settings), records)
    print((render_json if args.json else render_text)(args.ticket, events))


def _inspect(args: argparse.Namespace) -> None:
    import msgspec  # noqa: PLC0415

    from streams.inspect import render_error, render_quota, render_ticket  # noqa: PLC0415
    from streams.owners import WorkerUnreachableError, ask_worker, lookup_path  # noqa: PLC0415

    settings = settings_or_exit()
    log_to_stderr(settings)
    if args.year is not None and args.buyer is None:
        print("sandan: --year goes with --buyer", file=sys.stderr)
        raise SystemExit(2)
    worker = (args.worker or f"http://127.0.0.1:{settings.web_port}").rstrip("/")
    path = lookup_path(args.ticket, args.buyer, args.year)
    try:
        status, body = asyncio.run(ask_worker(worker, path, args.timeout))
        if status != 200:  # noqa: PLR2004
            print(f"sandan: {render_error(worker, status, body)}", file=sys.stderr)
            raise SystemExit(1)
        text = (
            body.decode() if args.json else (render_ticket if args.ticket else render_quota)(body)
        )
    except WorkerUnreachableError as exc:
        print(f"sandan: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        print(f"sandan: the worker at {worker} answered without a lookup answer", file=sys.stderr)
        raise SystemExit(1) from None
    print(text)


EXIT_REFUSED, EXIT_PENDING = 1, 3  # sandan review: refused; no result within --wait


def _review(args: argparse.Namespace) -> None:
    from confluent_kafka import KafkaException  # noqa: PLC0415

    from schemas.errors import SchemaError  # noqa: PLC0415
    from streams.review import new_review, submit_review  # noqa: PLC0415

    settings = settings_or_exit()
    log_to_stderr(settings)
    try:
        review = new_review(
            args.ticket,
            args.revision,
            args.action.upper().replace("-", "_"),
            args.reviewer,
            args.note,
            args.review_id,
            settings.max_document_bytes,
        )
    except SchemaError as exc:
        print(f"sandan: not a review: {exc.detail}", file=sys.stderr)
        raise SystemExit(2) from None
    require_brokers(settings)
    try:
        result = submit_review(settings, review, args.wait)
    except KafkaException as exc:
        print(f"sandan: the review was not taken: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if result is None:
        print(
            f"sandan: review {review.reviewId} is on the review topic; no result within "
            f"{args.wait:g} s (it comes on the review-result topic once a worker applies it)",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_PENDING)
    if args.json:
        import msgspec  # noqa: PLC0415

        print(msgspec.json.encode(result).decode())
    elif result.code is None:
        print(
            f"review {result.reviewId}: APPLIED: {result.decision} revision "
            f"{result.decisionRevision} of {result.ticketId} ({result.detail})"
        )
    else:
        print(f"review {result.reviewId}: REFUSED {result.code}: {result.detail}")
    if result.code is not None:
        raise SystemExit(EXIT_REFUSED)


def _key(args: argparse.Namespace) -> None:
    from pathlib import Path  # noqa: PLC0415

    from gateway.keys import KeysFileError, add_key  # noqa: PLC0415

    path = Path(args.file) if args.file else settings_or_exit().gateway_keys
    codes = [code.strip() for code in (args.codes or "").split(",") if code.strip()]
    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    try:
        key = add_key(path, args.name, codes, roles)
    except KeysFileError as exc:
        print(f"sandan: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    declares = f" for {', '.join(codes)}" if codes else ""
    print(
        f"added a key for {args.name!r} ({', '.join(roles)}{declares}) to {path}", file=sys.stderr
    )
    print(key)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sandan",
        description="Three-document matching for cross-border e-commerce customs clearance.",
        epilog="settings (environment): "
        + "; ".join(
            f"{name} (default {default}): {text}" for name, (default, text) in SETTINGS_HELP.items()
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run a worker (joins the others on the brokers)")
    worker.add_argument("-l", "--loglevel", default="info", help="log level (default info)")
    worker.set_defaults(run=_worker)
    topics = commands.add_parser("topics", help="create the topics that do not exist yet")
    topics.set_defaults(run=_topics)
    gateway = commands.add_parser("gateway", help="run the HTTP gateway for firms without Kafka")
    gateway.add_argument(
        "-l", "--loglevel", default="info", choices=_LOG_LEVELS, help="log level (default info)"
    )
    gateway.set_defaults(run=_gateway)
    dashboard = commands.add_parser(
        "dashboard", help="serve a live status page of every worker (SANDAN_DASHBOARD_PORT)"
    )
    dashboard.add_argument(
        "-l", "--loglevel", default="info", choices=_LOG_LEVELS, help="log level (default info)"
    )
    dashboard.set_defaults(run=_dashboard)
    key = commands.add_parser(
        "key", help="make an API key for the gateway: adds its digest, prints the key once"
    )
    key.add_argument("--name", required=True, help="who the key is for, e.g. tenpay")
    key.add_argument(
        "--codes", help="enterprise codes it declares for: A,B (a declarer needs at least one)"
    )
    key.add_argument(
        "--roles",
        default="declarer",
        help="declarer (declares documents, reads their receipts), reviewer (acts on tickets "
        "as --name), or both: declarer,reviewer (default declarer)",
    )
    key.add_argument("--file", help="the keys file (default: SANDAN_GATEWAY_KEYS)")
    key.set_defaults(run=_key)
    audit = commands.add_parser(
        "audit", help="a ticket's whole history (documents, rejections, decisions, receipts)"
    )
    audit.add_argument("--ticket", required=True, help="the ticket id: {ebpCode}:{orderNo}")
    audit.add_argument("--json", action="store_true", help="print JSON instead of lines")
    audit.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to read the topics (default 60)"
    )
    audit.set_defaults(run=_audit)
    inspect = commands.add_parser(
        "inspect", help="ask a worker for a ticket (its documents, status, decisions) or a quota"
    )
    target = inspect.add_mutually_exclusive_group(required=True)
    target.add_argument("ticket", nargs="?", help="the ticket id: {ebpCode}:{orderNo}")
    target.add_argument("--buyer", help="a buyer id (buyerIdNumber): their annual quota")
    inspect.add_argument("--year", help="the quota's year (default: this year, China time)")
    inspect.add_argument(
        "--worker", help="any worker's URL (default http://127.0.0.1:{SANDAN_WEB_PORT})"
    )
    inspect.add_argument("--json", action="store_true", help="print the worker's JSON answer")
    inspect.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)"
    )
    inspect.set_defaults(run=_inspect)
    review = commands.add_parser(
        "review",
        help="act on a diverted ticket (release, confirm, request-correction) and wait for the "
        "result; exit 0 applied, 1 refused, 3 no result yet",
    )
    review.add_argument("ticket", help="the ticket id: {ebpCode}:{orderNo}")
    review.add_argument(
        "--revision", type=int, required=True, help="the diverted revision you reviewed"
    )
    review.add_argument(
        "--action",
        required=True,
        choices=("release", "confirm", "request-correction"),
        help="release (override), confirm (the divert stands; closes the ticket), "
        "request-correction (stays open for corrected documents)",
    )
    review.add_argument("--reviewer", required=True, help="who you are (your reviewer id)")
    review.add_argument("--note", required=True, help="why (1 to 1000 characters)")
    review.add_argument("--review-id", help="your id for this action (default: a new uuid4)")
    review.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the result (default 30)"
    )
    review.add_argument("--json", action="store_true", help="print the result record")
    review.set_defaults(run=_review)
    args = parser.parse_args(argv)
    args.run(args)
