"""The dashboard's page load with a worker holding 10^6 open tickets.

    python -m loadtest.pageload --brokers 127.0.0.1:9092 [--open-tickets 1000000] [--loads 10]

The issue's acceptance number: "The page loads in under 1 s with 10^6 open tickets". Under a
fresh topic prefix on the given broker (its topics created by ``streams.topics.create_topics``,
``SANDAN_WINDOW=24h`` so that no window closes during the run) one ``sandan worker`` starts;
then ``--open-tickets`` orders go out as fast as the machine allows (confluent-kafka, batched,
each on its ticket's partition), one per ticket and nothing else, so every ticket stays open
awaiting its payment and waybill. The orders are the generator's clean orders
(loadtest.generator), each with an orderNo and a guid of its own. The run waits until the
worker's ``sandan_open_tickets`` gauge (its ``/metrics``) counts them all, within the time left.

Then ``sandan dashboard`` starts on a port of its own and, once it shows the worker, the page
is measured ``--loads`` times each way:

- loaded in Debian's chromium, headless, through Selenium (as tests/integration/
  test_dashboard.py does; ``make browser`` installs them): the Navigation Timing entry's
  responseStart, responseEnd, domContentLoadedEventEnd and loadEventEnd, and the time from the
  navigation's start until ``#tickets-open`` (the element the dashboard test reads the open
  tickets from) holds a number, seen by a MutationObserver installed before the page's own
  script runs; each load a new navigation from ``about:blank`` in the same tab, with the
  browser's back/forward cache off (the measured series: each load on its own);
- the same with the back/forward cache on (the browser's default), and each load in a new tab
  with the earlier ones kept open: every page holds a connection for its event stream
  (``/api/events``) and chromium opens at most 6 connections per host over HTTP/1.1, so these
  two series show how many dashboard pages one browser can hold (told in the report, not
  judged);
- ``GET /`` and ``GET /api/overview`` over a new connection each, until the whole body is read;
- the worker's ``/metrics``, as the dashboard scrapes it every round.

It writes ``<out>/pageload-<UTC time>/report.md`` (and report.json, the worker's and the
dashboard's logs) and prints where. Every process it started is stopped by its pid and its
topics are deleted at the end, also on failure, Ctrl-C or SIGTERM; the whole run stops itself
after ``--limit`` seconds (1800). Exit status: 0 when the page loaded (load event and open
tickets shown) in under ``--target`` seconds every time with every ticket open, 1 when not,
2 when the run could not be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec
import psutil  # type: ignore[import-untyped]  # no stubs installed
from confluent_kafka import KafkaException, Producer

from dashboard.promtext import parse
from loadtest.browser import headless_chromium
from loadtest.generator import generate
from loadtest.processes import RunError, Worker, free_port, fresh_deployment, stop, tail, wait_ready
from loadtest.run import delete_topics
from loadtest.truth import FaultMix
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("Loading", "Result", "Stat", "main", "order_values", "render", "slow_loads", "stat")

DASH = "\N{EN DASH}"  # a number not known
TEMPLATES = 64  # distinct generated orders the tickets' orders are made from
PAGE_LOAD_LIMIT = 30  # seconds Selenium waits for a page's load event
STALL_LIMIT = 10  # the same in the series that show the browser's connection limit
SHOWN_LIMIT = 20.0  # seconds a loaded page may take to show the open tickets
MAX_FAILED_LOADS = 3  # browser loads that may fail before the browser measurement gives up
READY_LIMIT = 120.0  # seconds for the worker to own the partitions, the dashboard to show it
MEASURE_RESERVE = 300.0  # seconds kept back from the state's loading for the measurements

# Installed before any script of each new document: the time (performance.now(), from the
# navigation's start) and the value when #tickets-open first holds a number.
WATCH_OPEN = """
(() => {
  const seen = () => {
    const el = document.getElementById("tickets-open");
    if (el === null || !el.dataset.value) return false;
    window.__openShown = {t: performance.now(), value: el.dataset.value};
    return true;
  };
  const observer = new MutationObserver(() => { if (seen()) observer.disconnect(); });
  observer.observe(document, {subtree: true, childList: true, attributes: true,
                              attributeFilter: ["data-value"]});
})();
"""
NAVIGATION = """
const n = performance.getEntriesByType("navigation")[0];
return {responseStart: n.responseStart, responseEnd: n.responseEnd,
        domContentLoadedEventEnd: n.domContentLoadedEventEnd, loadEventEnd: n.loadEventEnd,
        shown: window.__openShown || null};
"""
# The browser series: the measured one, then two that show the browser's limit of 6
# connections per host (HTTP/1.1), which the pages' event streams (/api/events) take up.
FRESH = "each load in the same tab, back/forward cache off"
BACK_FORWARD = "each load in the same tab, back/forward cache on (the browser's default)"
TABS = "each load in a new tab, the earlier tabs kept open"
SHORT = {BACK_FORWARD: "back/forward cache on", TABS: "new tabs"}
# The measures, in the report's order: (key, what it is)
MEASURES = (
    ("browser_response_start", "chromium: first byte of the page (responseStart)"),
    ("browser_response_end", "chromium: the page received (responseEnd)"),
    ("browser_dom_content_loaded", "chromium: domContentLoadedEventEnd"),
    ("browser_load", "chromium: loadEventEnd (**the page loaded**)"),
    ("browser_open_shown", "chromium: open tickets shown (`#tickets-open` holds the number)"),
    ("browser_get_wall", "Selenium's `get` of the page, wall time (with WebDriver's round trip)"),
    ("get_page", "`GET /`, new connection, whole body"),
    ("get_overview", "`GET /api/overview`, new connection, whole body"),
    ("get_metrics", "the worker's `GET /metrics`, new connection, whole body"),
)


class TimeLimitError(RunError):
    """The run's time limit passed."""


class Stat(msgspec.Struct, frozen=True):
    """Milliseconds over ``n`` measurements."""

    n: int
    p50: float
    max: float
    min: float


def stat(values_ms: list[float]) -> Stat | None:
    """p50 (the median), max and min of ``values_ms``; None for no values."""
    if not values_ms:
        return None
    return Stat(
        n=len(values_ms),
        p50=round(statistics.median(values_ms), 1),
        max=round(max(values_ms), 1),
        min=round(min(values_ms), 1),
    )


class Loading(msgspec.Struct):
    """How the worker came to hold the open tickets."""

    wanted: int
    produced: int
    produce_s: float  # from the first order sent to the last acknowledged
    applied_s: float | None  # from the first order sent until the gauge counted them all
    gauge: int | None  # the worker's sandan_open_tickets at the end of the wait
    reached: bool
    repartitioned: int | None  # records on the repartition topic: 0 when each was on its place


class Result(msgspec.Struct):
    """One run: its settings, the machine, the state loaded, the measurements."""

    command: str
    started_utc: str
    machine: dict[str, Any]
    loading: Loading
    loads: int
    target_s: float
    stats: dict[str, Stat | None]
    browser_loads: list[dict[str, Any]]  # each load's timings (ms) and the value shown
    other_series: dict[str, list[dict[str, Any]]]  # the same, in the other browser series
    sizes: dict[str, int]  # bytes of each body fetched
    gauge_at_measure: int | None
    shown_values: list[int | None]
    api_open: int | None
    rss: dict[str, int]  # bytes
    notes: list[str]

    @property
    def passed(self) -> bool:
        """Every load under the target (load event and the number shown), every ticket open."""
        load, shown = self.stats.get("browser_load"), self.stats.get("browser_open_shown")
        fast = all(
            s is not None and s.n == self.loads and s.max < self.target_s * 1000
            for s in (load, shown)
        )
        return (
            fast
            and self.loading.reached
            and all(v == self.loading.wanted for v in self.shown_values)
        )


def _ms(value: float | None) -> str:
    return DASH if value is None else f"{value:,.1f}"


def render(result: Result) -> str:
    """The markdown report."""
    loading, machine = result.loading, result.machine
    target_ms = result.target_s * 1000
    lines = [
        f"# Dashboard page load with {loading.wanted:,} open tickets",
        "",
        f"Command: `{result.command}` (started {result.started_utc}).",
        "",
        f"Machine: {machine.get('cores')} cores ({machine.get('cpu') or 'cpu unknown'}), "
        f"{machine.get('memory_gib')} GiB of memory, {machine.get('system')}; load average "
        f"{machine.get('load_start')} at the start, {machine.get('load_measure')} while measuring "
        f"(other jobs run on this machine). Browser: {machine.get('browser') or DASH}.",
        "",
        "## Verdict",
        "",
    ]
    load, shown = result.stats.get("browser_load"), result.stats.get("browser_open_shown")
    verdict = "**met**" if result.passed else "**not met**"
    lines += [
        f'"The page loads in under {result.target_s:g} s with {loading.wanted:,} open tickets": '
        f"{verdict}. Load event p50 {_ms(load.p50 if load else None)} ms, max "
        f"{_ms(load.max if load else None)} ms; open tickets shown p50 "
        f"{_ms(shown.p50 if shown else None)} ms, max {_ms(shown.max if shown else None)} ms "
        f"(target {target_ms:,.0f} ms, {result.loads} loads each)."
        + (
            " But with several dashboard pages open in one browser the next page may not load "
            'at all: see "Several dashboard pages in one browser".'
            if any(slow_loads(loads, target_ms) for loads in result.other_series.values())
            else ""
        ),
        "",
        "## The state",
        "",
        f"One worker, {loading.produced:,} of {loading.wanted:,} orders produced (one per ticket, "
        f"no payment, no waybill: each ticket stays open) in {loading.produce_s:,.1f} s; "
        + (
            f"the worker's `sandan_open_tickets` counted them all {loading.applied_s:,.1f} s "
            "after the first order was sent."
            if loading.reached and loading.applied_s is not None
            else f"**the worker did not get there**: its gauge stood at "
            f"{_count(loading.gauge)} when the time was up."
        ),
        f"Records that went through the repartition topic: "
        f"{_count(loading.repartitioned)} "
        "(0: every order was produced to its ticket's partition).",
        "",
        f"While measuring: the worker's gauge {_count(result.gauge_at_measure)}, "
        f"`/api/overview` `tickets.open` {_count(result.api_open)}, the page showed "
        + ", ".join(_count(v) for v in result.shown_values)
        + ".",
        "",
        "Resident memory: "
        + ", ".join(f"{name} {size / 2**20:,.0f} MiB" for name, size in result.rss.items())
        + ".",
        "",
        "## Measurements (ms)",
        "",
        "| measure | n | p50 | max | min |",
        "|---|--:|--:|--:|--:|",
    ]
    for key, label in MEASURES:
        s = result.stats.get(key)
        if s is None:
            lines.append(f"| {label} | 0 | {DASH} | {DASH} | {DASH} |")
        else:
            lines.append(f"| {label} | {s.n} | {s.p50:,.1f} | {s.max:,.1f} | {s.min:,.1f} |")
    if result.sizes:
        lines += [
            "",
            "Bodies: " + ", ".join(f"{k} {v:,} bytes" for k, v in result.sizes.items()) + ".",
        ]
    if result.browser_loads:
        lines += [
            "",
            f"Each browser load ({FRESH}; ms from the navigation's start; a new navigation "
            "from `about:blank` each time, the first one in a freshly started browser):",
            "",
            "| load | responseStart | responseEnd | domContentLoaded | loadEventEnd "
            "| open tickets shown | value shown | `get` wall |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {i} | {_ms(b.get('browser_response_start'))} "
            f"| {_ms(b.get('browser_response_end'))} "
            f"| {_ms(b.get('browser_dom_content_loaded'))} | {_ms(b.get('browser_load'))} "
            f"| {_ms(b.get('browser_open_shown'))} | {_count(b.get('value'))} "
            f"| {_ms(b.get('browser_get_wall'))}{' (failed)' if 'error' in b else ''} |"
            for i, b in enumerate(result.browser_loads, 1)
        ]
    lines += _several_pages(result)
    lines += [
        "",
        "## How",
        "",
        "`python -m loadtest.pageload` (`make page-load`): a fresh topic prefix on the local "
        "broker, `SANDAN_WINDOW=24h`; one `sandan worker`; the orders produced with "
        "confluent-kafka (lz4, batched, partitioned by murmur2 of orderNo as the worker places "
        "tickets), made from the generator's clean orders with an orderNo and a guid of their "
        "own; then `sandan dashboard` (interval 2 s) on its own port. Browser: headless chromium "
        "through Selenium and chromedriver, Navigation Timing "
        "(`performance.getEntriesByType('navigation')[0]`), and a MutationObserver installed "
        "before the page's script (`Page.addScriptToEvaluateOnNewDocument`) that notes when "
        "`#tickets-open` first holds a number (the page gets it from `/api/events`); a browser "
        "of its own for each series. The GETs: urllib, a new connection each, until the last "
        "byte of the body, after the browser series.",
    ]
    if result.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"


def slow_loads(loads: list[dict[str, Any]], target_ms: float) -> list[int]:
    """The loads (from 1) that failed or whose load event came at ``target_ms`` or later."""
    return [
        i
        for i, load in enumerate(loads, 1)
        if "error" in load or load.get("browser_load") is None or load["browser_load"] >= target_ms
    ]


def _several_pages(result: Result) -> list[str]:
    """The report's section on the other browser series."""
    series = result.other_series
    if not series:
        return []
    target_ms = result.target_s * 1000
    lines = [
        "",
        "## Several dashboard pages in one browser",
        "",
        "Each open page holds a connection for its event stream (`/api/events`, Server-Sent "
        "Events over HTTP/1.1), and chromium opens at most 6 connections to one host; a page "
        "kept in the back/forward cache keeps its stream open too. Two more series of the same "
        f"number of loads, each in a browser of its own, with a page-load limit of {STALL_LIMIT} "
        f"s, given up after {MAX_FAILED_LOADS} failed loads:",
        "",
    ]
    for name, loads in series.items():
        slow = slow_loads(loads, target_ms)
        failed = [i for i, load in enumerate(loads, 1) if "error" in load]
        said = (
            f"every load under {target_ms:,.0f} ms"
            if not slow
            else f"loads {', '.join(map(str, slow))} not loaded within {target_ms:,.0f} ms"
            + (f" (loads {', '.join(map(str, failed))} not at all)" if failed else "")
        )
        seen = [load for load in loads if "dashboard_connections" in load]
        if seen:
            said += (
                "; when a load had failed, the dashboard had "
                + ", ".join(_count(load["dashboard_connections"]) for load in seen)
                + " connections open to its port and answered a plain `GET /` in "
                + ", ".join(_ms(load.get("get_page_meanwhile")) for load in seen)
                + " ms"
            )
        lines.append(f"- {name}: {len(loads)} loads, {said}.")
    names = list(series)
    lines += [
        "",
        "| load | "
        + " | ".join(f"{SHORT.get(n, n)}: `get` wall | responseStart" for n in names)
        + " |",
        "|--:|" + "--:|--:|" * len(names),
    ]
    for i in range(max(len(loads) for loads in series.values())):
        cells = []
        for name in names:
            load = series[name][i] if i < len(series[name]) else {}
            wall = _ms(load.get("browser_get_wall")) + (" (failed)" if "error" in load else "")
            cells.append(f"{wall} | {_ms(load.get('browser_response_start'))}")
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return lines


def _count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


# -- the orders --------------------------------------------------------------------------------


def order_values(
    seed: int, count: int, templates: int = TEMPLATES
) -> Iterator[tuple[bytes, bytes]]:
    """``count`` orders (key: the orderNo, value: the JSON order), each of its own ticket: the
    generator's clean orders (``templates`` of them, in turn), each given an orderNo
    ``PL{seed}-{i}`` and a guid of its own."""
    plan = generate(seed, templates, rate=None, window=86400.0, faults=FaultMix())
    parts: list[tuple[bytes, bytes, bytes]] = []
    for record in plan.records:
        if record.doc_type != "order":
            continue
        document = msgspec.json.decode(record.value)
        guid = b'"guid":"%s"' % document["guid"].encode()
        number = b'"orderNo":"%s"' % document["orderNo"].encode()
        head, found, rest = record.value.partition(guid)
        middle, found_too, end = rest.partition(number)
        if not found or not found_too:  # the generator writes guid first, orderNo later
            msg = "a generated order without its guid before its orderNo"
            raise RunError(msg)
        parts.append((head + b'"guid":"', b'"' + middle + b'"orderNo":"', b'"' + end))
    for i in range(count):
        head, middle, end = parts[i % len(parts)]
        order_no = b"PL%d-%09d" % (seed, i)
        guid = b"%08X-0000-4000-8000-%012X" % (seed & 0xFFFFFFFF, i)
        yield order_no, b"".join((head, guid, middle, order_no, end))


def _produce(brokers: str, topic: str, seed: int, count: int, deadline: float) -> tuple[int, float]:
    """Send ``count`` orders to ``topic`` as fast as the client takes them; the number
    acknowledged and the seconds from the first sent to the last acknowledged."""
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",  # Java's: a key's partition as the worker's
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "acks": "all",
        }
    )
    failed: list[str] = []
    acked = 0

    def delivered(error: Any, _message: Any) -> None:
        nonlocal acked
        if error is not None:
            failed.append(str(error))
        else:
            acked += 1

    started = time.monotonic()
    for sent, (key, value) in enumerate(order_values(seed, count)):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    msg = f"producing overran the time limit after {sent:,} orders"
                    raise RunError(msg) from None
        if sent % 10_000 == 0:
            producer.poll(0)
        if sent % 100_000 == 0 and sent:
            print(f"pageload: {sent:,} orders sent", flush=True)
    left = producer.flush(max(1.0, deadline - time.monotonic()))
    if failed or left:
        msg = f"{len(failed)} orders not delivered, {left} still queued: {failed[:3]}"
        raise RunError(msg)
    return acked, time.monotonic() - started


# -- the worker ----------------------------------------------------------------------------------


def _get(url: str, timeout: float = 10.0) -> tuple[bytes, float]:
    """The body at ``url`` over a new connection, and the milliseconds until its last byte."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - our own servers
        body: bytes = answer.read()
    return body, (time.perf_counter() - started) * 1000


def _gauge(worker: Worker) -> int | None:
    """The worker's sandan_open_tickets, or None if it does not answer."""
    try:
        body, _ = _get(f"http://127.0.0.1:{worker.port}/metrics")
    except OSError:
        return None
    samples = parse(body.decode())
    values = samples.get("sandan_open_tickets", {})
    return int(sum(values.values())) if values else None


def _wait_applied(worker: Worker, wanted: int, deadline: float) -> int | None:
    """Until the worker's gauge counts ``wanted`` open tickets or ``deadline``; its last value."""
    gauge, printed = None, time.monotonic()
    while time.monotonic() < deadline:
        worker.check()
        gauge = _gauge(worker)
        if gauge is not None and gauge >= wanted:
            return gauge
        if time.monotonic() - printed >= 15:  # noqa: PLR2004
            print(f"pageload: the worker holds {_count(gauge)} open tickets", flush=True)
            printed = time.monotonic()
        time.sleep(1.0)
    return gauge


def _end_offsets(brokers: str, topic: str) -> int | None:
    """The sum of ``topic``'s end offsets (None if the broker does not say)."""
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415 - only here

    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "pageload-offsets"})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions
        total = 0
        for p in partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high
        return total
    except KafkaException:
        return None
    finally:
        consumer.close()


# -- the dashboard and the browser ---------------------------------------------------------------


class Dashboard:
    """``sandan dashboard`` on a free port of its own."""

    def __init__(self, env: dict[str, str], out: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = out / "dashboard.log"
        own = {"SANDAN_DASHBOARD_PORT": str(self.port), "SANDAN_DASHBOARD_INTERVAL": "2s"}
        base = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "dashboard", "-l", "info"],
                env=base | env | own,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def connections(self) -> int | None:
        """The TCP connections open (established) to its port now: its readers'."""
        try:
            found = psutil.Process(self.process.pid).net_connections(kind="tcp")
        except psutil.Error:
            return None
        mine = [c for c in found if c.laddr.port == self.port]
        return len([c for c in mine if c.status == psutil.CONN_ESTABLISHED])

    def overview(self) -> dict[str, Any] | None:
        try:
            body, _ = _get(self.base + "/api/overview", timeout=5)
        except OSError:
            return None
        overview: dict[str, Any] = msgspec.json.decode(body)
        return overview

    def wait_showing(self, worker: Worker, limit: float) -> dict[str, Any]:
        """Until its overview shows the worker reachable with its open tickets."""
        deadline = time.monotonic() + limit
        overview: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"the dashboard exited {self.process.returncode}:\n{tail(self.log)}"
                raise RunError(msg)
            overview = self.overview()
            if (
                overview is not None
                and overview.get("reachable_workers") == 1
                and overview["tickets"]["open"] is not None
            ):
                return overview
            worker.check()
            time.sleep(0.5)
        msg = f"the dashboard did not show the worker within {limit:g}s: {overview}"
        raise RunError(msg)


def _browser(*, back_forward_cache: bool, page_load_limit: float) -> Any:
    """Headless chromium as tests/integration/test_dashboard.py runs it (loadtest.browser)."""
    try:
        return headless_chromium(
            page_load_limit=page_load_limit, back_forward_cache=back_forward_cache
        )
    except FileNotFoundError as exc:
        raise RunError(str(exc)) from None


def _quit(driver: Any) -> None:
    """The browser and its chromedriver gone, whatever the driver says."""
    service = driver.service.process
    with contextlib.suppress(Exception):
        driver.quit()
    stop(service, grace=10)


def _browser_load(driver: Any, url: str, *, new_tab: bool = False) -> dict[str, Any]:
    """One new navigation to ``url``, from ``about:blank`` in the same tab or in a new tab (the
    others kept open): its timings (ms), the open tickets it showed, and the wall time of
    Selenium's ``get`` (ms); on a WebDriver error, that error instead."""
    from selenium.common.exceptions import WebDriverException  # noqa: PLC0415

    if new_tab:
        driver.switch_to.new_window("tab")
    else:
        driver.get("about:blank")
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_OPEN})
    started = time.perf_counter()
    try:
        driver.get(url)  # returns once the load event ran
    except WebDriverException as exc:
        wall = (time.perf_counter() - started) * 1000
        return {"error": (exc.msg or type(exc).__name__).splitlines()[0], "browser_get_wall": wall}
    wall = (time.perf_counter() - started) * 1000
    deadline = time.monotonic() + SHOWN_LIMIT
    timing: dict[str, Any] = driver.execute_script(NAVIGATION)
    while timing["shown"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
        timing = driver.execute_script(NAVIGATION)
    shown = timing["shown"] or {}
    value = shown.get("value")
    return {
        "browser_response_start": timing["responseStart"],
        "browser_response_end": timing["responseEnd"],
        "browser_dom_content_loaded": timing["domContentLoadedEventEnd"],
        "browser_load": timing["loadEventEnd"],
        "browser_open_shown": shown.get("t"),
        "value": int(value) if value is not None else None,
        "browser_get_wall": wall,
    }


def _series(
    dashboard: Dashboard,
    loads: int,
    *,
    back_forward_cache: bool,
    new_tabs: bool,
    page_load_limit: float,
) -> tuple[list[dict[str, Any]], str]:
    """``loads`` loads of the dashboard's page in one browser; the browser's version. After a
    failed load, while the browser still waits: the connections the dashboard has open, and a
    plain ``GET /`` (ms). Gives up after MAX_FAILED_LOADS failed loads."""
    driver = _browser(back_forward_cache=back_forward_cache, page_load_limit=page_load_limit)
    try:
        version = str(driver.capabilities.get("browserVersion", "?"))
        done: list[dict[str, Any]] = []
        for _ in range(loads):
            load = _browser_load(driver, dashboard.base + "/", new_tab=new_tabs and bool(done))
            if "error" in load:
                load["dashboard_connections"] = dashboard.connections()
                with contextlib.suppress(OSError):
                    load["get_page_meanwhile"] = _get(dashboard.base + "/")[1]
            done.append(load)
            if sum("error" in load for load in done) == MAX_FAILED_LOADS:
                break
        return done, version
    finally:
        _quit(driver)


def _measure(
    args: argparse.Namespace, worker: Worker, dashboard: Dashboard, machine: dict[str, Any]
) -> tuple[dict[str, list[float]], dict[str, list[dict[str, Any]]], dict[str, int], list[str]]:
    """The browser loads, the GETs and the worker's scrapes: values (ms) per measure of the
    main series, each browser load of each series, the bodies' sizes, notes."""
    values: dict[str, list[float]] = {key: [] for key, _ in MEASURES}
    series: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    url = dashboard.base + "/"
    for name, cache, tabs, limit in (
        (FRESH, False, False, PAGE_LOAD_LIMIT),
        (BACK_FORWARD, True, False, STALL_LIMIT),
        (TABS, False, True, STALL_LIMIT),
    ):
        print(f"pageload: browser loads, {name}", flush=True)
        series[name], version = _series(
            dashboard, args.loads, back_forward_cache=cache, new_tabs=tabs, page_load_limit=limit
        )
        machine["browser"] = f"chromium {version}"
    for i, load in enumerate(series[FRESH], 1):
        for key, _ in MEASURES:
            if key.startswith("browser_") and load.get(key) is not None:
                values[key].append(float(load[key]))
        if "error" in load:
            wall = load["browser_get_wall"]
            notes.append(f"browser load {i} failed after {wall:,.0f} ms: {load['error']}")
        elif load["value"] is None:
            notes.append(f"browser load {i}: no open tickets shown within {SHOWN_LIMIT:g} s")
    sizes: dict[str, int] = {}
    worker_metrics = f"http://127.0.0.1:{worker.port}/metrics"
    for key, where, name in (
        ("get_page", url, "page"),
        ("get_overview", dashboard.base + "/api/overview", "overview"),
        ("get_metrics", worker_metrics, "worker /metrics"),
    ):
        for _ in range(args.loads):
            body, ms = _get(where)
            values[key].append(ms)
            sizes[name] = len(body)
    return values, series, sizes, notes


# -- the run -------------------------------------------------------------------------------------


def _rss(pid: int) -> int:
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(pid).memory_info().rss)
    return 0


def _machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "system": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "load_start": round(os.getloadavg()[0], 2),
    }


def _run(args: argparse.Namespace, out: Path, result: dict[str, Any], hard: float) -> None:
    """Everything that needs cleaning up, in one place: its findings go into ``result``."""
    env = fresh_deployment("pageload", args.brokers, args.partitions, "24h")
    settings = Settings.from_env(env)
    topics = Topics(settings)
    print(f"pageload: topics {env['SANDAN_TOPIC_PREFIX']}*, report in {out}", flush=True)
    worker: Worker | None = None
    dashboard: Dashboard | None = None
    with tempfile.TemporaryDirectory(prefix="sandan-pageload-") as data:
        try:
            worker = Worker("worker", env, Path(data) / "worker", out)
            asyncio.run(wait_ready([worker], args.partitions, READY_LIMIT))
            print(f"pageload: worker ready; producing {args.open_tickets:,} orders", flush=True)
            load_deadline = hard - MEASURE_RESERVE
            started = time.monotonic()
            produced, produce_s = _produce(
                args.brokers, topics.order, args.seed, args.open_tickets, load_deadline
            )
            print(f"pageload: {produced:,} orders acknowledged in {produce_s:.1f}s", flush=True)
            gauge = _wait_applied(worker, args.open_tickets, load_deadline)
            reached = gauge is not None and gauge >= args.open_tickets
            applied_s = time.monotonic() - started if reached else None
            result["loading"] = Loading(
                wanted=args.open_tickets,
                produced=produced,
                produce_s=round(produce_s, 1),
                applied_s=None if applied_s is None else round(applied_s, 1),
                gauge=gauge,
                reached=reached,
                repartitioned=_end_offsets(args.brokers, topics.repartition),
            )
            print(
                f"pageload: the worker holds {_count(gauge)} open tickets"
                + (f" after {applied_s:.1f}s" if applied_s else " (the time was up)"),
                flush=True,
            )
            dashboard = Dashboard(env, out)
            dashboard.wait_showing(worker, READY_LIMIT)
            print(f"pageload: dashboard up on {dashboard.base}; measuring", flush=True)
            result["machine"]["load_measure"] = round(os.getloadavg()[0], 2)
            values, series, sizes, notes = _measure(args, worker, dashboard, result["machine"])
            result["notes"] += notes
            result["stats"] = {key: stat(v) for key, v in values.items()}
            result["browser_loads"] = series.pop(FRESH)
            result["other_series"], result["sizes"] = series, sizes
            result["shown_values"] = [load.get("value") for load in result["browser_loads"]]
            overview = dashboard.overview()
            result["api_open"] = overview["tickets"]["open"] if overview else None
            result["gauge_at_measure"] = _gauge(worker)
            result["rss"] = {
                "worker": _rss(worker.process.pid),
                "dashboard": _rss(dashboard.process.pid),
            }
            if args.hold > 0:
                print(
                    f"pageload: holding {args.hold:g}s: worker pid {worker.process.pid} "
                    f"http://127.0.0.1:{worker.port}, dashboard pid {dashboard.process.pid} "
                    f"{dashboard.base}",
                    flush=True,
                )
                time.sleep(max(0.0, min(args.hold, hard - time.monotonic() - 120)))
        finally:
            signal.alarm(0)  # the cleanup runs to its end
            if dashboard is not None:
                stop(dashboard.process, grace=20)
            if worker is not None:
                stop(worker.process)
            try:
                asyncio.run(asyncio.wait_for(delete_topics(args.brokers, list(topics.all())), 60))
                print(f"pageload: topics {env['SANDAN_TOPIC_PREFIX']}* deleted", flush=True)
            except Exception as exc:  # noqa: BLE001 - told, not to hide the run's own error
                print(f"pageload: the topics were not deleted: {exc!r}", flush=True)


def _raise_limit(_signum: int, _frame: FrameType | None) -> None:
    msg = "the run's time limit passed"
    raise TimeLimitError(msg)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.pageload", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--open-tickets", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=10, help="measurements of each kind [10]")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", type=float, default=1.0, help="seconds a load may take [1]")
    parser.add_argument("--limit", type=float, default=1800.0, help="the whole run, s [1800]")
    parser.add_argument("--out", default="reports", help="reports directory [reports]")
    parser.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="keep the worker and the dashboard up this many seconds after measuring, within "
        "the limit (to look at them, e.g. with py-spy) [0]",
    )
    args = parser.parse_args(argv)
    if args.open_tickets < 1 or args.loads < 1 or args.limit <= MEASURE_RESERVE:
        parser.error(f"need --open-tickets >= 1, --loads >= 1, --limit > {MEASURE_RESERVE:g}")

    started = datetime.now(UTC)
    out = Path(args.out) / f"pageload-{started:%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    command = (
        f"python -m loadtest.pageload --brokers {args.brokers} --open-tickets {args.open_tickets} "
        f"--loads {args.loads} --partitions {args.partitions} --seed {args.seed}"
    )
    result: dict[str, Any] = {
        "command": command,
        "started_utc": f"{started:%Y-%m-%d %H:%M:%S} UTC",
        "machine": _machine(),
        "loading": Loading(args.open_tickets, 0, 0.0, None, None, False, None),
        "loads": args.loads,
        "target_s": args.target,
        "stats": {},
        "browser_loads": [],
        "other_series": {},
        "sizes": {},
        "gauge_at_measure": None,
        "shown_values": [],
        "api_open": None,
        "rss": {},
        "notes": [],
    }
    signal.signal(signal.SIGALRM, _raise_limit)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.alarm(int(args.limit))
    hard = time.monotonic() + args.limit
    status = 2
    try:
        _run(args, out, result, hard)
        status = 0
    except KeyboardInterrupt:
        result["notes"].append("interrupted (Ctrl-C or SIGTERM): the run stopped early")
    except Exception as exc:  # noqa: BLE001 - whatever failed, the report says so
        result["notes"].append(f"the run failed: {type(exc).__name__}: {exc}".splitlines()[0])
        print(f"pageload: failed: {exc!r}", file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
    report = Result(**result)
    if status == 0:
        status = 0 if report.passed else 1
    text = render(report)
    (out / "report.md").write_text(text)
    (out / "report.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    print(text, flush=True)
    print(f"pageload: report in {out / 'report.md'}", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
