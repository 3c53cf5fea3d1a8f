"""Scraping the workers: ``GET {url}/metrics`` (Prometheus text) and ``GET {url}/status``
(JSON), both at once, with a short timeout each.

A worker that does not answer, answers an error status or something that does not parse is
*unreachable* this round (:attr:`WorkerScrape.error` says why), never an exception: the other
workers' numbers still count. ``/status`` is optional: a worker whose ``/metrics`` answers is
reachable even if its ``/status`` does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import aiohttp
import msgspec

from dashboard.models import WorkerScrape
from dashboard.promtext import parse

__all__ = ("MAX_BODY", "Scraper")

MAX_BODY = 8 * 1024 * 1024  # bytes of one answer, at most

_STATUS = msgspec.json.Decoder(dict[str, Any])


class _BadAnswerError(Exception):
    """An answer that is not what a worker serves."""


class Scraper:
    """One HTTP client session for every scrape (opened by ``start()``, closed by
    ``close()``)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 1.0))
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=self.timeout,
            headers={"Accept": "text/plain, application/json", "User-Agent": "sandan-dashboard"},
            connector=aiohttp.TCPConnector(limit=64, limit_per_host=4),
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def scrape_all(self, urls: Iterable[str]) -> list[WorkerScrape]:
        """Every worker at once."""
        return list(await asyncio.gather(*(self.scrape(url) for url in urls)))

    async def scrape(self, url: str) -> WorkerScrape:
        """One worker's metrics and status."""
        metrics, status = await asyncio.gather(
            self._get(f"{url}/metrics"), self._get(f"{url}/status"), return_exceptions=True
        )
        if isinstance(metrics, BaseException):
            return WorkerScrape(url, None, error=f"/metrics: {_reason(metrics)}")
        try:
            samples = parse(metrics.decode("utf-8", errors="replace"))
        except ValueError as exc:
            return WorkerScrape(url, None, error=f"/metrics is not Prometheus text: {exc}")
        if isinstance(status, BaseException):
            return WorkerScrape(url, samples, error=f"/status: {_reason(status)}")
        try:
            return WorkerScrape(url, samples, _STATUS.decode(status))
        except msgspec.DecodeError:
            return WorkerScrape(url, samples, error="/status is not a JSON object")

    async def _get(self, url: str) -> bytes:
        assert self._session is not None, "Scraper.start() first"  # noqa: S101
        async with self._session.get(url, allow_redirects=False) as response:
            if response.status == 404 and url.endswith("/metrics"):  # noqa: PLR2004
                raise _BadAnswerError("HTTP 404 (a worker without /metrics: an older version?)")
            if response.status != 200:  # noqa: PLR2004
                raise _BadAnswerError(f"HTTP {response.status}")
            if (response.content_length or 0) > MAX_BODY:
                raise _BadAnswerError(f"larger than {MAX_BODY} bytes")
            chunks, size = [], 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > MAX_BODY:
                    raise _BadAnswerError(f"larger than {MAX_BODY} bytes")
                chunks.append(chunk)
            return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, _BadAnswerError):
        return str(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
