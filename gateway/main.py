"""Run the gateway: ``sandan gateway``.

Listens on ``SANDAN_GATEWAY_HOST``:``SANDAN_GATEWAY_PORT``. SIGTERM or SIGINT stops it
gracefully: it stops accepting connections, ends the long-polls, lets the requests in flight
finish (up to 30 s), then flushes and stops the producer.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web

from gateway.app import create_app
from gateway.keys import KeyStore
from streams.logmask import install
from streams.settings import Settings

__all__ = ("run", "serve")

log = logging.getLogger("gateway")

SHUTDOWN_TIMEOUT = 30.0


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (default: until SIGTERM or SIGINT)."""
    keys = KeyStore.load(settings.gateway_keys)  # a broken keys file stops us at start
    app = create_app(settings, keys)
    # No access log: a formatted line per request cost the gateway ~8 % of its CPU (py-spy);
    # /metrics counts requests by route and status.
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
    await runner.setup()
    # What is left for the collector is start-up objects (frozen) and per-request garbage:
    # collect the young generation less often, as the worker does.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port)
    await site.start()
    log.info(
        "gateway listening on http://%s:%d (brokers %s, %d keys)",
        settings.gateway_host,
        settings.gateway_port,
        settings.brokers,
        len(keys.keyring.entries),
    )
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("stopping: no new connections; finishing the requests in flight")
    finally:
        await runner.cleanup()
        log.info("gateway stopped")


class _OncePerInterval(logging.Filter):
    """Let each message template of a logger through at most once per ``interval`` seconds.

    aiokafka logs every failed connection attempt, several per second per client while the
    broker is down; one line per template every 10 s says as much. DEBUG records all pass:
    whoever asks for DEBUG asks for every request and response.
    """

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        key = (record.name, record.msg)
        last = self._last.get(key)
        if last is not None and record.created - last < self.interval:
            return False
        self._last[key] = record.created
        return True


def run(settings: Settings, loglevel: str = "info") -> None:
    """Serve with logging to stderr at ``loglevel``, personal data masked (streams.logmask)."""
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet = _OncePerInterval()
    for handler in logging.getLogger().handlers:
        handler.addFilter(
            lambda record: not record.name.startswith("aiokafka") or quiet.filter(record)
        )
    install(settings)  # after: the rate limit above goes by the message template
    # Every receipts page assigns partitions to a pooled consumer: aiokafka logs each at INFO.
    logging.getLogger("aiokafka.consumer.subscription_state").setLevel(logging.WARNING)
    asyncio.run(serve(settings))
