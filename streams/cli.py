"""The ``sandan`` command: ``worker``, ``topics``, ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import sys

from streams.settings import SETTINGS_HELP, Settings, SettingsError

__all__ = ("main",)

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"sandan: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _limit_malloc_arenas() -> None:
    """RocksDB's threads each get a glibc malloc arena of their own, and freed memtables stay
    scattered over them: two arenas keep the worker's RSS near what it uses."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 2)


def _worker(args: argparse.Namespace) -> None:
    _limit_malloc_arenas()  # before any thread starts
    import faust  # noqa: PLC0415 - only the worker needs faust

    from streams.app import create_app  # noqa: PLC0415

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel)
    worker.execute_from_commandline()


def _topics(args: argparse.Namespace) -> None:
    from streams.topics import create_topics  # noqa: PLC0415

    settings = _settings()
    created = asyncio.run(create_topics(settings))
    print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))


def _demo(args: argparse.Namespace) -> None:
    from loadtest.demo import run_demo  # noqa: PLC0415

    settings = _settings()
    raise SystemExit(asyncio.run(run_demo(settings, tickets=args.tickets, seed=args.seed)))


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
    demo = commands.add_parser("demo", help="produce a demo load and print what came out")
    demo.add_argument("--tickets", type=int, default=200)
    demo.add_argument("--seed", type=int, default=None, help="default: from the clock")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    args.run(args)
