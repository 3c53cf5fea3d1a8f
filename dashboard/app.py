"""The dashboard's routes (aiohttp.web) and the collector that feeds them.

    GET /               the page: one HTML document, its CSS and script inline
    GET /api/overview   the overview as of the last round (JSON, dashboard.models.Overview)
    GET /api/events     the same, pushed at every round (Server-Sent Events)
    GET /healthz        200 while the rounds run, 503 once they stall

The :class:`Collector` runs one round per ``SANDAN_DASHBOARD_INTERVAL``: describe the group,
scrape its workers, fold the round (dashboard.aggregate) and encode the overview once. Page
views, overview requests and event streams only hand those bytes out, so watching the page
costs the dashboard nothing per view. Nothing here logs per request; the collector logs only
changes (the brokers lost or back, a worker unreachable or back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Protocol

import msgspec
from aiohttp import web

from dashboard.aggregate import Deployment
from dashboard.models import GroupView, WorkerScrape
from streams.settings import Settings

__all__ = ("COLLECTOR", "Collector", "Describer", "Scrapes", "create_app", "page")

log = logging.getLogger("dashboard")

HEARTBEAT = 15.0  # seconds between two keep-alive comments on an idle event stream
STALLED_ROUNDS = 5  # /healthz fails when no round ended for this many intervals (plus timeouts)

_ENCODER = msgspec.json.Encoder()


class Describer(Protocol):
    async def describe(self) -> GroupView: ...


class Scrapes(Protocol):
    async def scrape_all(self, urls: list[str]) -> list[WorkerScrape]: ...


def page() -> bytes:
    """The page, read once."""
    return resources.files("dashboard").joinpath("page.html").read_bytes()


class Collector:
    """One round per interval; the overview of the last one, encoded, for every reader."""

    def __init__(
        self,
        settings: Settings,
        discovery: Describer,
        scraper: Scrapes,
        *,
        clock: Callable[[], float] = time.time,
        stall_after: float | None = None,
    ) -> None:
        self.interval = settings.dashboard_interval
        self.deployment = Deployment(
            group=settings.topic("sandan"),
            bootstrap=[b.strip() for b in settings.brokers.split(",")],
            interval=self.interval,
        )
        self.discovery = discovery
        self.scraper = scraper
        self.clock = clock
        self.stall_after = stall_after or STALLED_ROUNDS * self.interval + 10.0
        self.overview = _ENCODER.encode(self.deployment.overview())
        self.seq = 0
        self.closed = False
        self._changed = asyncio.Event()
        self._ended_at = time.monotonic()  # the last round's end (the start before any)
        self._connected: bool | None = None
        self._unreachable: set[str] = set()

    @property
    def healthy(self) -> bool:
        return not self.closed and time.monotonic() - self._ended_at < self.stall_after

    async def run(self) -> None:
        """Rounds, one per interval (a round that overran its interval skips the ticks it
        covered), until cancelled."""
        started = time.monotonic()
        while True:
            try:
                await self.round()
            except Exception:
                log.exception("a round failed; trying again at the next")
            elapsed = time.monotonic() - started
            await asyncio.sleep(self.interval - elapsed % self.interval)

    async def round(self) -> None:
        """Describe, scrape, fold, publish."""
        group = await self.discovery.describe()
        members = group.members if group.ok else self.deployment.members
        urls = sorted({m.url for m in members if m.url is not None})
        scrapes = await self.scraper.scrape_all(urls)
        self.deployment.ingest(self.clock(), group, scrapes)
        self.overview = _ENCODER.encode(self.deployment.overview())
        self.seq = self.deployment.seq
        self._ended_at = time.monotonic()
        self._wake()
        self._log_changes(group, scrapes)

    async def wait_newer(self, seq: int, seconds: float) -> bool:
        """Until a round newer than ``seq`` (True), or ``seconds`` pass or the collector closes
        (False)."""
        if self.seq > seq:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        return self.seq > seq and not self.closed

    def close(self) -> None:
        """End the event streams (at shutdown)."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _log_changes(self, group: GroupView, scrapes: list[WorkerScrape]) -> None:
        if group.ok != self._connected:
            if group.ok:
                log.info("brokers answer: group %s, %d members", group.state, len(group.members))
            else:
                log.warning("brokers do not answer: %s", group.error)
            self._connected = group.ok
        unreachable = {s.url for s in scrapes if s.samples is None}
        for scrape in scrapes:
            if scrape.url in unreachable - self._unreachable:
                log.warning("worker %s unreachable: %s", scrape.url, scrape.error)
            elif scrape.url in self._unreachable - unreachable:
                log.info("worker %s answers again", scrape.url)
        self._unreachable = unreachable


COLLECTOR: web.AppKey[Collector] = web.AppKey("collector", Collector)
PAGE: web.AppKey[bytes] = web.AppKey("page", bytes)


async def _page(request: web.Request) -> web.StreamResponse:
    return web.Response(
        body=request.app[PAGE],
        content_type="text/html",
        charset="utf-8",
        headers={
            "Cache-Control": "no-cache",
            # Inline script and style only; the page fetches nothing but its own API.
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        },
    )


async def _overview(request: web.Request) -> web.StreamResponse:
    return web.Response(
        body=request.app[COLLECTOR].overview,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _events(request: web.Request) -> web.StreamResponse:
    """The overview at once, then at every round; a comment line when idle, so that a gone
    reader is noticed."""
    collector = request.app[COLLECTOR]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    seq = -1
    try:
        await response.write(f"retry: {round(collector.interval * 1000)}\n\n".encode())
        while not collector.closed:
            if collector.seq > seq:
                seq = collector.seq
                await response.write(b"data: " + collector.overview + b"\n\n")
            elif not await collector.wait_newer(seq, HEARTBEAT) and not collector.closed:
                await response.write(b": idle\n\n")
    except ConnectionResetError:
        pass  # the reader left
    return response


async def _healthz(request: web.Request) -> web.StreamResponse:
    collector = request.app[COLLECTOR]
    body = {"status": "ok" if collector.healthy else "stalled", "seq": collector.seq}
    return web.json_response(body, status=200 if collector.healthy else 503)


def create_app(collector: Collector, *, run_rounds: bool = True) -> web.Application:
    """The dashboard application; with ``run_rounds`` the collector's rounds start and stop
    with it."""
    app = web.Application()
    app[COLLECTOR] = collector
    app[PAGE] = page()
    app.router.add_get("/", _page, allow_head=False)
    app.router.add_get("/api/overview", _overview, allow_head=False)
    app.router.add_get("/api/events", _events, allow_head=False)
    app.router.add_get("/healthz", _healthz, allow_head=False)
    if run_rounds:
        app.cleanup_ctx.append(_rounds)
    app.on_shutdown.append(_end_streams)
    return app


async def _rounds(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[COLLECTOR].run(), name="dashboard-rounds")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _end_streams(app: web.Application) -> None:
    app[COLLECTOR].close()
