"""``sandan dashboard`` on the real broker, read through a real headless browser.

A worker decides a known load (released tickets, tickets diverted for a known reason, open
tickets, garbage records); then the dashboard starts as its own process, finds the worker
through the consumer group and scrapes it. Headless chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium; ``make test`` installs them) opens the page: what it
shows, read from the elements' ids and ``data-value`` attributes, equals ``/api/overview`` of
the same round and the known load. A second load then reaches the page without a reload.
A screenshot is saved under ``reports/dashboard/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver

from dashboard.promtext import label, parse
from loadtest.browser import headless_chromium
from loadtest.processes import stop
from schemas.alerts import ALERT_PATTERNS
from schemas.documents import DOC_TYPES
from streams.settings import Settings
from tests.integration.conftest import PARTITIONS, Deployment
from tests.integration.kafka import ROOT, Timeout, Worker, consume, free_port, produce, run
from tests.integration.receipts import receipt
from tests.integration.test_contract import new_order_no, ticket_docs

REPORTS = ROOT / "reports" / "dashboard"
INTERVAL = "1s"

Record = tuple[str, bytes | None, bytes]

# Everything the page shows that the test compares, read in one script: numbers from their
# elements' data-value (null where the page shows a dash), tables by their rows' keys.
READ_PAGE = """
const value = (el) => (el === null || el.dataset.value === "" ? null : el.dataset.value);
const num = (id) => {
  const v = value(document.getElementById(id));
  return v === null ? null : Number(v);
};
const table = (id) => Object.fromEntries([...document.querySelectorAll(`#${id} tr[data-key]`)]
  .map((row) => [row.dataset.key, {
    hour: Number(row.querySelector('[data-field="hour"]').dataset.value),
    total: Number(row.querySelector('[data-field="total"]').dataset.value)}]));
const workers = [...document.querySelectorAll("#workers tr[data-url]")].map((row) => {
  const f = (name) => value(row.querySelector(`[data-field="${name}"]`));
  const n = (name) => (f(name) === null ? null : Number(f(name)));
  return {
    url: row.dataset.url, worker_id: f("worker_id"), reachable: f("reachable") === "true",
    partitions: f("partitions"), cpu: n("cpu"), memory: n("memory"), lag: n("lag"),
    open_tickets: n("open_tickets"), decisions_per_s: n("decisions_per_s"),
  };
});
return {
  seq: num("seq"), reachable_workers: num("workers-reachable"),
  broker_connected: value(document.getElementById("broker-connected")),
  documents_per_s: num("throughput-documents"), decisions_per_s: num("throughput-decisions"),
  p50: num("latency-p50"), p95: num("latency-p95"), p99: num("latency-p99"),
  latency_decisions: num("latency-count"), lag: num("lag-total"),
  open: num("tickets-open"), closing: num("tickets-closing"),
  release_total: num("decisions-release-total"), release_hour: num("decisions-release-hour"),
  divert_total: num("decisions-divert-total"), divert_hour: num("decisions-divert-hour"),
  documents_total: num("documents-total"), documents_hour: num("documents-hour"),
  divert_reasons: table("divert-reasons"), rejections: table("rejections"),
  receipts: table("receipts"), alerts: table("alerts"), workers,
  decision_bars: document.querySelectorAll("#chart-decisions rect").length,
};
"""


def from_api(o: dict[str, Any]) -> dict[str, Any]:
    """The overview as the page should show it (READ_PAGE's shape)."""

    def table(name: str) -> dict[str, dict[str, int]]:
        totals, hour = o["totals"][name], o["last_hour"][name]
        return {key: {"hour": hour.get(key, 0), "total": totals[key]} for key in totals}

    return {
        "seq": o["seq"],
        "reachable_workers": o["reachable_workers"],
        "broker_connected": "true" if o["broker"]["connected"] else "false",
        "documents_per_s": o["throughput"]["documents_per_s"],
        "decisions_per_s": o["throughput"]["decisions_per_s"],
        "p50": o["latency"]["p50"],
        "p95": o["latency"]["p95"],
        "p99": o["latency"]["p99"],
        "latency_decisions": o["latency"]["decisions"],
        "lag": o["lag"],
        "open": o["tickets"]["open"],
        "closing": o["tickets"]["closing_within_1h"],
        "release_total": o["totals"]["decisions"].get("release", 0),
        "release_hour": o["last_hour"]["decisions"].get("release", 0),
        "divert_total": o["totals"]["decisions"].get("divert", 0),
        "divert_hour": o["last_hour"]["decisions"].get("divert", 0),
        "documents_total": o["totals"]["documents"],
        "documents_hour": o["last_hour"]["documents"],
        "divert_reasons": table("divert_reasons"),
        "rejections": table("rejections"),
        "receipts": table("receipts"),
        "alerts": table("alerts"),
        "workers": [
            {
                "url": w["url"] or "",
                "worker_id": w["worker_id"],
                "reachable": w["reachable"],
                "partitions": ",".join(map(str, w["partitions"])),
                "cpu": w["cpu"],
                "memory": w["memory_bytes"],
                "lag": w["lag"],
                "open_tickets": w["open_tickets"],
                "decisions_per_s": w["decisions_per_s"],
            }
            for w in o["workers"]
        ],
    }


@dataclass
class DashboardProcess:
    """A ``sandan dashboard`` subprocess on a free port."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DashboardProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
        env.update(self.env)
        env["SANDAN_DASHBOARD_PORT"] = str(self.port)
        env["SANDAN_DASHBOARD_INTERVAL"] = INTERVAL
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "dashboard"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        timeout = Timeout(30, "the dashboard's /healthz")
        while timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"dashboard exited {self.process.returncode}:\n{self.log()}")
            try:
                if self.get("/healthz")["status"] == "ok":
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=5) as response:  # noqa: S310
            return json.loads(response.read())

    def stop(self) -> int | None:
        if self.process is None:
            return None
        stop(self.process, grace=20)  # SIGTERM, SIGKILL after the grace
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Headless chromium. Missing is a failure: ``make test`` installs it (``make browser``)."""
    driver = headless_chromium(page_load_limit=20)
    try:
        yield driver
    finally:
        driver.quit()


# -- the load ------------------------------------------------------------------------------------


def ticket_records(d: Deployment, tag: str, **overrides: Any) -> list[Record]:
    docs = ticket_docs(new_order_no(tag), **overrides)
    key = docs["order"]["orderNo"].encode()
    values = (docs["order"], docs["payment"], docs["logistics"])
    return [
        (d.topic(kind), key, json.dumps(value).encode())
        for kind, value in zip(DOC_TYPES, values, strict=True)
    ]


def load(
    d: Deployment, *, released: int, mismatched: int, consignee: int, incomplete: int, garbage: int
) -> list[Record]:
    """Clean tickets; tickets paid another amount (AMOUNT_MISMATCH), or shipped to another
    phone (CONSIGNEE_MISMATCH); orders alone (open, their window running); records that are
    not JSON (rejected SCHEMA)."""
    records: list[Record] = []
    for _ in range(released):
        records += ticket_records(d, "R")
    for _ in range(mismatched):
        records += ticket_records(d, "A", payment={"amountPaid": "500.00"})
    for _ in range(consignee):
        records += ticket_records(d, "C", logistics={"consigneeTelephone": "13149827707"})
    for _ in range(incomplete):
        records += ticket_records(d, "O")[:1]
    records += [(d.topic("order"), b"garbage", b"not json {%d" % i) for i in range(garbage)]
    return records


def wait_counted(worker: Worker, decisions: int, rejections: int) -> None:
    """Until the worker's /metrics counts the decisions and rejections."""
    url = f"http://127.0.0.1:{worker.web_port}/metrics"
    end = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(url, timeout=5) as response:
            samples = parse(response.read().decode())
        decided = sum(samples.get("sandan_decisions_total", {}).values())
        rejected = sum(samples.get("sandan_rejections_total", {}).values())
        if decided == decisions and rejected == rejections:
            return
        if time.monotonic() > end:
            msg = (
                f"the worker counted {decided} decisions and {rejected} rejections, not "
                f"{decisions} and {rejections}:\n{worker.log_tail()}"
            )
            raise AssertionError(msg)
        time.sleep(0.3)


def alerts_counted(worker: Worker) -> dict[str, int]:
    """The worker's ``sandan_alerts_total`` by pattern; every pattern 0 when it has no such
    counter (a worker older than the alerts)."""
    url = f"http://127.0.0.1:{worker.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        series = parse(response.read().decode()).get("sandan_alerts_total", {})
    counted = {label(labels, "pattern"): round(value) for labels, value in series.items()}
    return dict.fromkeys(ALERT_PATTERNS, 0) | counted


def receipts_by_status(d: Deployment) -> dict[str, int]:
    """The receipts on the topic by status (all written: they commit with the decisions)."""
    records = run(consume(d.brokers, [d.topic("receipt")], idle=2))
    return dict(Counter(receipt(r)["returnStatus"] for r in records))


# -- reading the page ----------------------------------------------------------------------------


def page_until(driver: webdriver.Chrome, what: str, check: Any, seconds: float = 60) -> Any:
    timeout = Timeout(seconds, what)
    shown = None
    while timeout:
        shown = driver.execute_script(READ_PAGE)
        if check(shown):
            return shown
        time.sleep(0.25)
    raise AssertionError(shown)


def page_and_api_of_one_round(driver: webdriver.Chrome, dash: DashboardProcess) -> Any:
    """The page and /api/overview showing the same round (the page follows within a round)."""
    timeout = Timeout(30, "the page and /api/overview to show the same round")
    while timeout:
        api = dash.get("/api/overview")
        shown = driver.execute_script(READ_PAGE)
        if shown["seq"] == api["seq"]:
            return shown, api
        time.sleep(0.1)
    raise AssertionError("unreachable")


def assert_page_is_the_api(shown: dict[str, Any], api: dict[str, Any]) -> None:
    expected = from_api(api)
    assert {k: v for k, v in shown.items() if k in expected} == expected


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """The whole page (the window made as tall as the document)."""
    height, chrome = driver.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(1400, int(height) + int(chrome))
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / name
    assert driver.save_screenshot(str(path)), path
    return path


# -- the test ------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_the_page_shows_the_deployment_as_the_api_and_the_load_say_and_follows_it_live(
    deploy: Any, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    d: Deployment = deploy(SANDAN_WINDOW="30m")  # orders alone stay open, closing within 1 h
    worker = d.worker()
    worker.wait_ready()
    worker_url = f"http://127.0.0.1:{worker.web_port}"

    first = load(d, released=4, mismatched=3, consignee=0, incomplete=2, garbage=3)
    run(produce(d.brokers, first))
    wait_counted(worker, decisions=7, rejections=3)
    receipts = receipts_by_status(d)
    assert receipts["399"] == 7 * 3  # a receipt per decision to each of its three senders

    dash = DashboardProcess(d.env_settings, tmp_path / "dashboard.log").start()
    try:
        page = urllib.request.urlopen(dash.base + "/", timeout=5).read()  # noqa: S310
        assert len(page) < 64 * 1024  # one light document: no assets to fetch
        browser.get(dash.base + "/")
        timing = browser.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return {dom: n.domContentLoadedEventEnd, load: n.loadEventEnd,"
            " resources: performance.getEntriesByType('resource').map((r) => r.name)};"
        )
        # The page fetched nothing but its own API (no asset, nothing from the internet).
        fetched = timing["resources"]
        assert all(name.startswith(dash.base + "/api/") for name in fetched), fetched

        shown = page_until(
            browser,
            "the page to show the worker and the first load",
            lambda s: (
                [w["url"] for w in s["workers"]] == [worker_url]
                and s["workers"][0]["reachable"]
                and s["release_total"] == 4
                and s["divert_total"] == 3
                and s["open"] == 2
            ),
        )
        shown, api = page_and_api_of_one_round(browser, dash)
        assert_page_is_the_api(shown, api)
        # ... and the known load
        assert shown["broker_connected"] == "true" and shown["reachable_workers"] == 1
        assert (shown["release_total"], shown["divert_total"]) == (4, 3)
        assert shown["divert_reasons"] == {"AMOUNT_MISMATCH": {"hour": 0, "total": 3}}
        assert shown["rejections"] == {"SCHEMA": {"hour": 0, "total": 3}}
        assert {k: v["total"] for k, v in shown["receipts"].items()} == receipts
        assert (shown["open"], shown["closing"]) == (2, 2)
        assert shown["lag"] == 0
        (w,) = shown["workers"]
        assert w["partitions"] == ",".join(str(p) for p in range(PARTITIONS))
        sandan_env = {k: v for k, v in worker.env.items() if k.startswith("SANDAN_")}
        assert w["worker_id"] == Settings.from_env(sandan_env).worker_id
        assert w["memory"] and w["memory"] > 0
        # The dashboard started after the first load was decided: none of it in the last hour.
        assert (shown["release_hour"], shown["divert_hour"]) == (0, 0)

        # The second load reaches the page without a reload (the marker would not survive one).
        browser.execute_script("window.__sameDocument = 'yes'")
        second = load(d, released=2, mismatched=0, consignee=1, incomplete=0, garbage=1)
        run(produce(d.brokers, second))
        wait_counted(worker, decisions=10, rejections=4)
        page_until(
            browser,
            "the page to show the second load",
            lambda s: (
                s["release_total"] == 6
                and s["divert_total"] == 4
                and s["rejections"] == {"SCHEMA": {"hour": 1, "total": 4}}
            ),
        )
        assert browser.execute_script("return window.__sameDocument") == "yes"
        receipts = receipts_by_status(d)
        shown, api = page_and_api_of_one_round(browser, dash)
        assert_page_is_the_api(shown, api)
        assert (shown["release_hour"], shown["divert_hour"]) == (2, 1)
        assert shown["divert_reasons"] == {
            "AMOUNT_MISMATCH": {"hour": 0, "total": 3},
            "CONSIGNEE_MISMATCH": {"hour": 1, "total": 1},
        }
        assert {k: v["total"] for k, v in shown["receipts"].items()} == receipts
        assert (shown["open"], shown["closing"]) == (2, 2)
        assert shown["decision_bars"] > 0  # the last hour's chart drew them
        assert api["latency"]["decisions"] == 3 and api["latency"]["p99"] is not None
        # The Alerts panel: every pattern, each with what the worker counted (the alerts
        # follow the decisions: wait until the page and the worker agree).
        shown = page_until(
            browser,
            "the Alerts panel to show the worker's alerts",
            lambda s: {k: v["total"] for k, v in s["alerts"].items()} == alerts_counted(worker),
        )
        assert set(ALERT_PATTERNS) <= set(shown["alerts"])

        path = screenshot(browser, f"dashboard-{time.strftime('%Y%m%d-%H%M%S')}.png")
        (REPORTS / "timing.json").write_text(
            json.dumps({"page_bytes": len(page), "navigation_ms": timing, "screenshot": path.name})
        )
        # Pages left (kept in the back/forward cache) and hidden hold no connection: a browser
        # has 6 per host, yet the 8th page opened in it shows the deployment as the first did.
        for n in range(8):
            if n % 2:
                browser.switch_to.new_window("tab")  # the tabs before it stay open, hidden
            else:
                browser.get("about:blank")
            browser.get(dash.base + "/")
            page_until(
                browser, "the page to show the load again", lambda s: s["release_total"] == 6
            )
        health = dash.get("/healthz")
        assert health["status"] == "ok"
    finally:
        code = dash.stop()
    assert code == 0, dash.log()
    # No line per request (the page, the API and the event stream were all requested).
    lines = dash.log().splitlines()
    assert not [line for line in lines if "GET /" in line or "/api/" in line], lines
