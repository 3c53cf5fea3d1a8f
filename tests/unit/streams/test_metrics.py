"""The worker's metrics (streams/metrics.py) without a broker: a step's counts folded into the
counters, the per-step histograms, the open tickets kept across open, decide, close, rollback
and restore, the settings that switch them and advertise the worker.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.ceb_xml import encode_message
from schemas.codec import decode_document
from schemas.keys import murmur2_partition
from streams.metrics import (
    HOUR_MS,
    WORKER_CLIENT_ID_PREFIX,
    OpenTickets,
    StepMetrics,
    WorkerMetrics,
    worker_client_id,
)
from streams.pipeline import SandanPipeline
from streams.records import Record, TopicPartition
from streams.settings import Settings, SettingsError
from streams.store import Store
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.unit.streams.harness import PipelineHarness

T0 = 1_795_490_400_000  # a whole minute
WINDOW_MS = 10_000
PARTITIONS = 4
COP = "3301980AGT"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: WorkerMetrics) -> Samples:
    """Every sample of the registry: (name, sorted labels) -> value."""
    found: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found[name, tuple(sorted(labels.items()))]


def nonzero(found: Samples, name: str, label: str) -> dict[str, float]:
    """The samples of ``name`` that are not 0, by the value of ``label``."""
    return {dict(k[1])[label]: v for k, v in found.items() if k[0] == name and v}


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(
        {
            "SANDAN_DATA_DIR": str(tmp_path),
            "SANDAN_PARTITIONS": str(PARTITIONS),
            "SANDAN_WINDOW": f"{WINDOW_MS // 1000}s",
            "SANDAN_RETENTION": "100s",
            "SANDAN_WORKER_ID": "w-test",
            **env,
        }
    )


# -- a step's counts ----------------------------------------------------------------------------


def test_a_steps_counts_fold_into_the_counters() -> None:
    metrics = WorkerMetrics(Settings.from_env({"SANDAN_WORKER_ID": "w-test"}))
    steps = metrics.steps
    assert steps is not None
    step = Counter(
        {
            "in.order.json": 3,
            "in.payment.xml": 5,
            "release": 2,
            "divert": 1,
            "divert.AMOUNT_MISMATCH": 1,
            "divert.PAYER_MISMATCH": 1,
            "rejected.SCHEMA": 4,
            "rejected.INTERNAL": 1,
            "receipt.100": 5,
            "receipt.120": 7,
            "receipt.399": 9,
            "ledger.reserved": 2,
            "review.RELEASE.applied": 2,
            "review.CONFIRM.refused": 1,
            "review.invalid.refused": 1,
            "review.forwarded": 3,
            # not metrics: no label value is made up for them
            "restored": 11,
            "in.order": 6,
            "rejected.NO_SUCH_CODE": 1,
        }
    )
    steps.fold(step)
    steps.fold(Counter({"in.order.json": 1, "release": 1, "receipt.399": 3, "ledger.replayed": 1}))
    found = samples(metrics)
    assert nonzero(found, "sandan_documents_total", "format") == {"json": 4, "xml": 5}
    assert value(found, "sandan_documents_total", doc_type="order", format="json") == 4
    assert value(found, "sandan_documents_total", doc_type="payment", format="xml") == 5
    assert nonzero(found, "sandan_decisions_total", "decision") == {"RELEASE": 3, "DIVERT": 1}
    assert nonzero(found, "sandan_divert_reasons_total", "code") == {
        "AMOUNT_MISMATCH": 1,
        "PAYER_MISMATCH": 1,
    }
    assert nonzero(found, "sandan_rejections_total", "code") == {"SCHEMA": 4, "INTERNAL": 1}
    assert nonzero(found, "sandan_receipts_total", "status") == {"100": 5, "120": 7, "399": 12}
    assert nonzero(found, "sandan_ledger_operations_total", "result") == {
        "reserved": 2,
        "replayed": 1,
    }
    assert {
        (dict(k[1])["action"], dict(k[1])["result"]): v
        for k, v in found.items()
        if k[0] == "sandan_reviews_total" and v
    } == {("RELEASE", "applied"): 2, ("CONFIRM", "refused"): 1, ("invalid", "refused"): 1}
    assert value(found, "sandan_reviews_forwarded_total") == 3
    # every label value shows from the start, at 0; nothing else does
    documents = {k[1] for k in found if k[0] == "sandan_documents_total"}
    assert len(documents) == 6
    assert value(found, "sandan_documents_total", doc_type="logistics", format="xml") == 0
    assert value(found, "sandan_rejections_total", code="DRAFT") == 0
    assert value(found, "sandan_transactions_total", result="aborted") == 0
    assert not [k for k in found if "NO_SUCH_CODE" in str(k)]
    assert value(found, "sandan_restored_records_total") == 0


def test_the_step_histograms_and_counters() -> None:
    metrics = WorkerMetrics(Settings.from_env({"SANDAN_WORKER_ID": "w-test"}))
    steps = metrics.steps
    assert steps is not None
    steps.transaction(0.02)
    steps.transaction(0.3)
    steps.transaction(None)
    steps.applied(1)
    steps.applied(700)
    steps.restored(1.5, 120)
    steps.restored(0.05, 0)
    # decision latencies: 0.02 s, 0.1 s, 0.1 s (the bound counts: le), 4 s, 2 h, and -1 s
    # (the broker's clock ahead of the worker's) as 0
    committed = T0 + 10_000
    starts = [committed - 20, committed - 100, committed - 100, committed - 4000]
    steps.decided(starts, committed)
    steps.decided([committed - 7_200_000, committed + 1000], committed)
    steps.decided([], committed)
    found = samples(metrics)
    assert value(found, "sandan_transactions_total", result="committed") == 2
    assert value(found, "sandan_transactions_total", result="aborted") == 1
    assert value(found, "sandan_transaction_duration_seconds_count") == 2
    assert value(found, "sandan_transaction_duration_seconds_sum") == pytest.approx(0.32)
    assert value(found, "sandan_transaction_duration_seconds_bucket", le="0.025") == 1
    assert value(found, "sandan_batch_records_count") == 2
    assert value(found, "sandan_batch_records_sum") == 701
    assert value(found, "sandan_batch_records_bucket", le="1.0") == 1
    assert value(found, "sandan_batch_records_bucket", le="1000.0") == 2
    assert value(found, "sandan_restore_duration_seconds_count") == 2
    assert value(found, "sandan_restored_records_total") == 120

    latency = {
        dict(labels)["le"]: v
        for (name, labels), v in found.items()
        if name == "sandan_decision_latency_seconds_bucket"
    }
    assert latency == {
        "0.025": 2,  # 0 and 0.02
        "0.05": 2,
        "0.1": 4,
        "0.25": 4,
        "0.5": 4,
        "1.0": 4,
        "2.5": 4,
        "5.0": 5,
        "10.0": 5,
        "30.0": 5,
        "60.0": 5,
        "300.0": 5,
        "900.0": 5,
        "3600.0": 5,
        "+Inf": 6,
    }
    assert value(found, "sandan_decision_latency_seconds_count") == 6
    assert value(found, "sandan_decision_latency_seconds_sum") == pytest.approx(7204.22)


def test_lag_is_what_the_engine_measured_last() -> None:
    metrics = WorkerMetrics(Settings.from_env({"SANDAN_WORKER_ID": "w-test"}))
    steps = metrics.steps
    assert steps is not None
    steps.set_lag({("cbec.order", 0): 12, ("cbec.payment", 3): 0})
    steps.set_lag({("cbec.order", 0): 2, ("cbec.logistics", 1): 0})
    found = samples(metrics)
    lag = {
        (dict(k[1])["topic"], dict(k[1])["partition"]): v
        for k, v in found.items()
        if k[0] == "sandan_consumer_lag_records"
    }
    assert lag == {("cbec.order", "0"): 2, ("cbec.logistics", "1"): 0}


def test_off_updates_nothing_and_serves_the_worker_and_its_process(tmp_path: Path) -> None:
    off = settings(tmp_path, SANDAN_METRICS="off", SANDAN_WEB_PORT="7001")
    metrics = WorkerMetrics(off)
    assert metrics.steps is None
    found = samples(metrics)
    assert {name for name, _ in found if name.startswith("sandan_")} == {"sandan_worker_info"}
    assert value(found, "sandan_worker_info", worker_id="w-test", url="http://127.0.0.1:7001") == 1
    assert value(found, "process_cpu_seconds_total") > 0
    assert value(found, "process_resident_memory_bytes") > 0
    pipeline = SandanPipeline(off, metrics.steps)
    try:
        assert pipeline.open_tickets is None
    finally:
        pipeline.close()


# -- settings: the advertised URL and the switch ---------------------------------------------------


def test_the_advertised_url_follows_the_web_port_and_names_the_consumer() -> None:
    assert Settings.from_env({}).advertised_url == "http://127.0.0.1:6066"
    assert Settings.from_env({"SANDAN_WEB_PORT": "7002"}).advertised_url == "http://127.0.0.1:7002"
    given = Settings.from_env(
        {"SANDAN_WEB_PORT": "7002", "SANDAN_ADVERTISED_URL": "https://w3.example.cn:8443/sandan"}
    )
    assert given.advertised_url == "https://w3.example.cn:8443/sandan"
    assert (
        worker_client_id(given.advertised_url) == "sandan-worker https://w3.example.cn:8443/sandan"
    )
    assert WORKER_CLIENT_ID_PREFIX == "sandan-worker "
    assert Settings.from_env({}).metrics is True
    assert Settings.from_env({"SANDAN_METRICS": "off"}).metrics is False


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("SANDAN_ADVERTISED_URL", ""),
        ("SANDAN_ADVERTISED_URL", "127.0.0.1:6066"),
        ("SANDAN_ADVERTISED_URL", "ftp://host:21"),
        ("SANDAN_ADVERTISED_URL", "http://"),
        ("SANDAN_ADVERTISED_URL", "http://host:port"),
        ("SANDAN_ADVERTISED_URL", "http://host name:6066"),
        ("SANDAN_ADVERTISED_URL", "http://host:6066/\x07"),
        ("SANDAN_ADVERTISED_URL", "http://h/" + "x" * 200),
        ("SANDAN_METRICS", "yes"),
        ("SANDAN_METRICS", "ON"),
        ("SANDAN_METRICS", ""),
    ],
)
def test_malformed_values_are_refused_by_name(name: str, text: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: text})


# -- the pipeline: counts by format, open tickets -----------------------------------------------


class Harness(PipelineHarness):
    """The pipeline with metrics on."""

    def __init__(self, data_dir: Path, owned: set[int] | None = None, **env: str) -> None:
        self.metrics = WorkerMetrics(settings(data_dir, **env))
        steps = self.metrics.steps
        assert steps is not None
        self.steps: StepMetrics = steps
        super().__init__(data_dir, owned=owned, metrics=steps, env=env)

    @property
    def open(self) -> OpenTickets:
        assert self.pipeline.open_tickets is not None
        return self.pipeline.open_tickets

    def counts(self) -> tuple[int, int]:
        """Open tickets, and those closing within the hour from T0 (the gauges as scraped)."""
        self.steps.watch(lambda: self.pipeline.partitions, self.open, clock=lambda: T0 / 1000)
        found = samples(self.metrics)
        return (
            int(value(found, "sandan_open_tickets")),
            int(value(found, "sandan_open_tickets_closing_within_1h")),
        )


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def ticket(order_no: str, **payment: str) -> dict[str, bytes]:
    guids = {kind: f"{order_no}-{kind}".ljust(36, "0") for kind in ("order", "payment", "waybill")}
    return {
        "order": as_bytes(order_dict(orderNo=order_no, guid=guids["order"])),
        "payment": as_bytes(payment_dict(orderNo=order_no, guid=guids["payment"], **payment)),
        "logistics": as_bytes(logistics_dict(orderNo=order_no, guid=guids["waybill"])),
    }


def test_documents_count_by_kind_and_format_each_xml_node_once(harness: Harness) -> None:
    clean = ticket("SOM1")
    harness.feed("order", clean["order"], T0)
    harness.feed("payment", b"not json", T0)
    nodes = [decode_document("payment", ticket(f"SOM{n}")["payment"]) for n in (1, 2, 3)]
    message = encode_message("payment", nodes, cop_code=COP)
    harness.feed("payment", message, T0 + 1)
    harness.feed("logistics", b"<ceb:CEB511Message", T0 + 2)  # not well-formed: rejected whole
    harness.feed("logistics", clean["logistics"], T0 + 3)
    # a record consumed again below where it was routed: not taken in twice
    again = Record(harness.settings.topic("order"), 0, 1, T0, None, clean["order"])
    harness.pipeline.route([again], T0 + 4, {TopicPartition(again.topic, 0): 2})
    harness.step([], T0 + 4)
    found = samples(harness.metrics)
    documents = {
        (dict(k[1])["doc_type"], dict(k[1])["format"]): v
        for k, v in found.items()
        if k[0] == "sandan_documents_total" and v
    }
    assert documents == {
        ("order", "json"): 1,
        ("payment", "json"): 1,
        ("payment", "xml"): 3,
        ("logistics", "xml"): 1,
        ("logistics", "json"): 1,
    }
    assert harness.pipeline.counts["in.payment.xml"] == 3
    assert nonzero(found, "sandan_rejections_total", "code") == {"SCHEMA": 2}
    # SOM1 released (its payment came in the message); SOM2, SOM3 hold a payment each
    assert nonzero(found, "sandan_decisions_total", "decision") == {"RELEASE": 1}
    assert nonzero(found, "sandan_receipts_total", "status") == {"100": 2, "120": 5, "399": 3}
    assert nonzero(found, "sandan_ledger_operations_total", "result") == {"reserved": 1}
    # the waybill completed SOM1 at T0 + 3; the step committed 50 ms after T0 + 3
    assert value(found, "sandan_decision_latency_seconds_count") == 1
    assert value(found, "sandan_decision_latency_seconds_sum") == pytest.approx(0.05)
    assert harness.counts() == (2, 2)


def test_open_tickets_across_open_decide_and_close(harness: Harness) -> None:
    released, diverted, lapsed = ticket("SOA1"), ticket("SOA2", amountPaid="1.00"), ticket("SOA3")
    assert harness.counts() == (0, 0)
    harness.feed("order", released["order"], T0)
    assert harness.counts() == (1, 1)
    # to the minute: the window closes at T0 + 10 s, in the minute that holds T0 + 5 s
    assert harness.open.closing_by(harness.pipeline.partitions, T0 + 5_000) == 1
    assert harness.open.closing_by(harness.pipeline.partitions, T0 - 1) == 0
    harness.feed("payment", released["payment"], T0 + 1)
    assert harness.counts() == (1, 1)  # still one ticket
    harness.feed("logistics", released["logistics"], T0 + 2)  # released
    assert harness.counts() == (0, 0)

    harness.feed("order", diverted["order"], T0 + 3)
    harness.feed("payment", diverted["payment"], T0 + 4)
    harness.feed("order", lapsed["order"], T0 + 5)
    assert harness.counts() == (2, 2)
    out = harness.feed("logistics", diverted["logistics"], T0 + 6)  # diverted AMOUNT_MISMATCH
    assert [json.loads(o.value or b"")["decision"] for o in out if o.topic.endswith("divert")] == [
        "DIVERT"
    ]
    assert harness.counts() == (1, 1)
    # an aborted step changes nothing
    harness.feed("payment", lapsed["payment"], T0 + 7, commit=False)
    harness.feed("order", ticket("SOA4")["order"], T0 + 7, commit=False)
    assert harness.counts() == (1, 1)
    # SOA3's window closes: MISSING_DOCUMENTS, no longer open
    harness.step([], T0 + 5 + WINDOW_MS)
    assert harness.counts() == (0, 0)
    found = samples(harness.metrics)
    assert nonzero(found, "sandan_decisions_total", "decision") == {"RELEASE": 1, "DIVERT": 2}
    assert nonzero(found, "sandan_divert_reasons_total", "code") == {
        "AMOUNT_MISMATCH": 1,
        "MISSING_DOCUMENTS": 1,
    }
    # the two decisions on complete tickets have a latency (50 ms each); the window's none
    assert value(found, "sandan_decision_latency_seconds_count") == 2
    assert value(found, "sandan_decision_latency_seconds_sum") == pytest.approx(0.1)


def test_a_ticket_at_the_buyer_ledger_is_open_until_its_outcome(tmp_path: Path) -> None:
    order_no = "SOP1"
    home = murmur2_partition(order_no.encode(), PARTITIONS)
    # another worker owns a partition: the ledger request goes through its topic
    h = Harness(tmp_path, owned={p for p in range(PARTITIONS) if p != (home + 1) % PARTITIONS})
    try:
        docs = ticket(order_no)
        h.feed("order", docs["order"], T0)
        h.feed("payment", docs["payment"], T0 + 1)
        out = h.feed("logistics", docs["logistics"], T0 + 2)
        (request,) = [o for o in out if o.topic == h.pipeline.topics.ledger]
        assert h.counts() == (1, 1)  # pending at the ledger
        h.offset += 1
        assert request.partition is not None
        record = Record(request.topic, request.partition, h.offset, T0 + 3, None, request.value)
        out = h.step([record], T0 + 3)
        released = [o.topic for o in out if o.topic.endswith("release")]
        assert released == [h.settings.topic("release")]
        assert h.counts() == (0, 0)
        found = samples(h.metrics)
        assert nonzero(found, "sandan_ledger_operations_total", "result") == {"reserved": 1}
        # from the waybill's arrival (T0 + 2 ms) to the commit (T0 + 3 ms + 50 ms)
        assert value(found, "sandan_decision_latency_seconds_sum") == pytest.approx(0.051)
        h.step([record], T0 + 4)  # the request consumed again: decided once
        found = samples(h.metrics)
        assert nonzero(found, "sandan_ledger_operations_total", "result") == {
            "reserved": 1,
            "replayed": 1,
        }
        assert nonzero(found, "sandan_decisions_total", "decision") == {"RELEASE": 1}
    finally:
        h.close()


def test_open_tickets_are_counted_again_from_the_state_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hour = {"SANDAN_WINDOW": "1h", "SANDAN_RETENTION": "2h"}
    first = Harness(tmp_path, None, **hour)
    try:
        for n in range(6):  # SOR{n}'s window closes at T0 + n minutes + 1 h
            docs = ticket(f"SOR{n}")
            first.feed("order", docs["order"], T0 + n * 60_000)
            if n % 2:
                first.feed("payment", docs["payment"], T0 + n * 60_000)
        first.feed("logistics", ticket("SOR1")["logistics"], T0 + 6 * 60_000)  # released
        assert first.counts() == (5, 1)  # SOR0 closes in the minute the hour from T0 ends
        assert first.open.closing_by(range(PARTITIONS), T0 + 3 * 60_000 + HOUR_MS) == 3
    finally:
        first.close()

    restores: list[set[int]] = []

    async def restore(brokers: str, partitions: set[int], **kwargs: Any) -> int:
        restores.append(partitions)
        return 0

    second = Harness(tmp_path, owned=set(), **hour)
    try:
        monkeypatch.setattr(second.pipeline.tickets, "restore", restore)
        monkeypatch.setattr(second.pipeline.ledger, "restore", restore)
        monkeypatch.setattr(second.pipeline.alerts, "restore", restore)
        assert second.counts() == (0, 0)
        asyncio.run(second.pipeline.assign({0, 1, 2, 3}))
        assert restores == [{0, 1, 2, 3}] * 3
        assert second.counts() == (5, 1)
        assert second.open.closing_by(range(PARTITIONS), T0 + 3 * 60_000 + HOUR_MS) == 3
        found = samples(second.metrics)
        assert value(found, "sandan_restore_duration_seconds_count") == 1
        assert value(found, "sandan_assigned_partitions") == 4

        # Revoked and assigned again with nothing restored: the tally stands, no scan.
        home = murmur2_partition(b"SOR4", PARTITIONS)
        still_open = ["SOR0", "SOR2", "SOR3", "SOR4", "SOR5"]
        elsewhere = [o for o in still_open if murmur2_partition(o.encode(), PARTITIONS) != home]
        asyncio.run(second.pipeline.revoke({home}))
        assert second.counts()[0] == len(elsewhere)
        assert value(samples(second.metrics), "sandan_assigned_partitions") == 3
        scanned: list[int] = []
        items = second.pipeline.tickets.items

        def spy(partition: int) -> Iterator[tuple[bytes, bytes]]:
            scanned.append(partition)
            return items(partition)

        monkeypatch.setattr(second.pipeline.tickets, "items", spy)
        asyncio.run(second.pipeline.assign({home}))
        assert scanned == []
        assert second.counts() == (5, 1)

        # Revoked, and the changes of the partition's other owner restored (SOR4 forgotten
        # there): counted again.
        asyncio.run(second.pipeline.revoke({home}))

        async def restore_changes(brokers: str, partitions: set[int], **kwargs: Any) -> int:
            tickets = second.pipeline.tickets
            assert tickets.get(home, b"SOR4") is not None
            tickets.put(home, b"SOR4", None)
            tickets.commit({home: 99})
            tickets.restored[home] += 1  # as Store.restore counts what it applied
            return 1

        monkeypatch.setattr(second.pipeline.tickets, "restore", restore_changes)
        asyncio.run(second.pipeline.assign({home}))
        assert scanned == [home]
        assert second.counts() == (4, 1)
        found = samples(second.metrics)
        assert value(found, "sandan_restore_duration_seconds_count") == 3
        assert value(found, "sandan_restored_records_total") == 1
    finally:
        second.close()


def test_a_partitions_committed_items_are_scanned_in_key_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "state", "changelog")
    try:
        store.put(1, b"b", b"1b")
        store.put(1, b"a", b"1a")
        store.put(0, b"z", b"0z")
        store.put(2, b"a", b"2a")
        store.commit({})
        store.put(1, b"c", b"staged")  # not committed: not there
        assert list(store.items(1)) == [(b"a", b"1a"), (b"b", b"1b")]
        store.rollback()
        store.put(1, b"a", None)
        store.commit({})
        assert list(store.items(1)) == [(b"b", b"1b")]
        assert list(store.items(3)) == []
        assert store.restored == Counter()
    finally:
        store.close()


def test_a_step_metrics_registry_is_the_workers_own() -> None:
    a = WorkerMetrics(Settings.from_env({"SANDAN_WORKER_ID": "a"}))
    b = WorkerMetrics(Settings.from_env({"SANDAN_WORKER_ID": "b"}))
    assert a.steps is not None and b.steps is not None
    a.steps.fold({"release": 1})
    assert value(samples(a), "sandan_decisions_total", decision="RELEASE") == 1
    assert value(samples(b), "sandan_decisions_total", decision="RELEASE") == 0
