"""Order of arrival holds across workers: a document that must hop from a worker that lags (here:
stopped) to the worker that owns its ticket counts from when it arrived. The ticket's owner
neither closes the window early nor decides without it (streams/hops.py: the marks)."""

from __future__ import annotations

import json
import signal
import time
from itertools import count
from typing import Any

from schemas.keys import murmur2_partition
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.integration.conftest import PARTITIONS
from tests.integration.kafka import Timeout, consume, produce, run

WINDOW_S = 4
STALL_S = 7  # past the window, within the 10 s session timeout: the partitions stay put


def _key_for(partition: int) -> bytes:
    for n in count():
        key = f"k{n}".encode()
        if murmur2_partition(key, PARTITIONS) == partition:
            return key
    raise AssertionError  # unreachable


def _order_no_for(partition: int) -> str:
    for n in count():
        order_no = f"HOP{n:05d}"
        if murmur2_partition(order_no.encode(), PARTITIONS) == partition:
            return order_no
    raise AssertionError  # unreachable


def test_a_hop_from_a_stalled_worker_counts_from_its_arrival(deploy: Any) -> None:
    d = deploy(SANDAN_WINDOW=f"{WINDOW_S}s")
    first, second = d.worker("w1"), d.worker("w2")
    timeout = Timeout(90, "the two workers to share the partitions")
    while timeout:
        mine, theirs = first.status(), second.status()
        if mine and theirs and mine["partitions"] and theirs["partitions"]:
            break
        time.sleep(0.5)
    lagging, owner = (first, second)
    lagging_partition = lagging.status()["partitions"][0]
    ticket_partition = owner.status()["partitions"][0]
    order_no = _order_no_for(ticket_partition)
    time.sleep(2)  # the owner measures the other's progress
    assert lagging.process is not None
    lagging.process.send_signal(signal.SIGSTOP)
    try:
        docs = {
            "order": as_bytes(order_dict(orderNo=order_no)),
            "payment": as_bytes(payment_dict(orderNo=order_no)),
            "logistics": as_bytes(logistics_dict(orderNo=order_no)),
        }
        run(
            produce(
                d.brokers,
                [
                    (d.topic("order"), _key_for(lagging_partition), docs["order"]),
                    (d.topic("payment"), order_no.encode(), docs["payment"]),
                    (d.topic("logistics"), order_no.encode(), docs["logistics"]),
                ],
            )
        )
        time.sleep(STALL_S)
        early = run(consume(d.brokers, [d.topic("release"), d.topic("divert")], idle=1))
        assert early == [], "decided while a document of the ticket was still on its way"
    finally:
        lagging.process.send_signal(signal.SIGCONT)
    decisions: list[Any] = []
    deadline = time.monotonic() + 60
    while not decisions:
        orders = [w.status() for w in (first, second)]
        assert time.monotonic() < deadline, f"the ticket was not decided; the workers: {orders}"
        decisions = run(consume(d.brokers, [d.topic("release"), d.topic("divert")], idle=1))
    time.sleep(3)  # a second decision would come now
    decisions = run(consume(d.brokers, [d.topic("release"), d.topic("divert")], idle=2))
    values = [json.loads(r.value) for r in decisions]
    assert [(v["ticketId"], v["decision"], v["revision"]) for v in values] == [
        (f"3301980ABC:{order_no}", "RELEASE", 1)
    ]
    assert first.alive() and second.alive()
