"""Run the dashboard: ``sandan dashboard``.

Listens on 127.0.0.1:``SANDAN_DASHBOARD_PORT``. It needs no worker and no broker to start: it
shows what it finds, and that the brokers do not answer when they do not. SIGTERM or SIGINT
stops it: the event streams end, the rounds stop, the admin client and the HTTP client close.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from dashboard.app import Collector, create_app
from dashboard.discovery import Discovery
from dashboard.scrape import Scraper
from streams.logmask import install
from streams.settings import Settings

__all__ = ("HOST", "run", "serve")

log = logging.getLogger("dashboard")

HOST = "127.0.0.1"
SHUTDOWN_TIMEOUT = 5.0


def timeouts(interval: float) -> tuple[float, float]:
    """How long a describe and a scrape may take: short, so that a round fits its interval
    (a describe at least 1 s, a scrape at least 0.2 s)."""
    return min(max(interval, 1.0), 5.0), min(max(interval / 2, 0.2), 2.0)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (default: until SIGTERM or SIGINT)."""
    describe_timeout, scrape_timeout = timeouts(settings.dashboard_interval)
    scraper = Scraper(scrape_timeout)
    await scraper.start()
    collector = Collector(settings, Discovery(settings, describe_timeout), scraper)
    # No access log: the log holds what changed (dashboard.app), not who looked.
    runner = web.AppRunner(
        create_app(collector), shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, settings.dashboard_port)
        await site.start()
        log.info(
            "dashboard on http://%s:%d (brokers %s, group %s, every %gs)",
            HOST,
            settings.dashboard_port,
            settings.brokers,
            settings.topic("sandan"),
            settings.dashboard_interval,
        )
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        await scraper.close()
        log.info("dashboard stopped")


def run(settings: Settings, loglevel: str = "info") -> None:
    """Serve with logging to stderr at ``loglevel``, personal data masked (streams.logmask)."""
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install(settings)
    asyncio.run(serve(settings))
