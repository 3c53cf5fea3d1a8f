"""No personal data in any log, at DEBUG: a load of the generator (clean tickets and every
fault) goes through a worker and a gateway that both log at DEBUG, straight to Kafka and
through the gateway, as JSON and as CEB XML, until every ticket is decided; then every log is
searched for every personal value of the plan (resident IDs, names, phones, addresses), in every
form a log could hold it: none is there.

The decisions themselves are not compared with the ground truth here: a gateway logging every
Kafka request at DEBUG on a busy machine may answer 503 and its client send again seconds
later, which moves a document past a window (test_loadtest_short and the demo check them)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from gateway.keys import add_key
from loadtest.channels import Channel, plan_codes, send_plan
from loadtest.driver import end_offsets, read_outputs
from loadtest.generator import generate
from loadtest.truth import FaultMix, Plan
from loadtest.verify import verify
from schemas.documents import PERSONAL_FIELDS
from tests.integration.conftest import PARTITIONS, Deployment
from tests.integration.gateway_process import GatewayProcess
from tests.integration.kafka import Worker, run

WINDOW = 6.0
SETTLE = 1.5
TICKETS = 150
# In the topic prefix: topic names, which both processes log, carry a phone number, so each
# log shows its filter at work.
PHONE = "13912345678"


def personal_values(plan: Plan) -> set[str]:
    """Every personal field's value in the plan's JSON records (the XML sent is made of them)."""
    values = set()
    for record in plan.records:
        try:
            document = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue  # planned garbage
        if isinstance(document, dict):
            for name in PERSONAL_FIELDS:
                value = document.get(name)
                if isinstance(value, str) and len(value.strip()) >= 2:
                    values.add(value)
    return values


def forms(value: str) -> set[str]:
    """How a log may hold ``value``: as it is, JSON-escaped, in a bytes repr."""
    return {value, json.dumps(value)[1:-1], repr(value.encode())[2:-1]}


@pytest.mark.timeout(150)
def test_no_personal_value_in_any_log_at_debug(
    deploy: Callable[..., Deployment], tmp_path: Path
) -> None:
    prefix = f"it-{PHONE}-{uuid.uuid4().hex[:8]}."
    deployment = deploy(SANDAN_WINDOW=f"{WINDOW:g}s", SANDAN_TOPIC_PREFIX=prefix)
    settings = deployment.settings
    plan = generate(
        17,
        TICKETS,
        rate=30,
        window=WINDOW,
        max_delay=1.0,
        settle=SETTLE,
        faults=FaultMix.even(0.4),
    )
    values = personal_values(plan)
    assert len(values) > 300  # names, IDs, phones and addresses of ~150 tickets
    values.add(PHONE)

    keys = tmp_path / "keys.json"
    key = add_key(keys, "load", sorted(plan_codes(plan)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
    env |= deployment.env_settings | {"SANDAN_DATA_DIR": str(tmp_path / "data")}
    worker = Worker(env=env, log_path=tmp_path / "worker.log", loglevel="debug").start()
    deployment.workers.append(worker)  # stopped by the fixture if anything below fails
    gateway = GatewayProcess(
        deployment.env_settings, keys, tmp_path / "gateway.log", args=("-l", "debug")
    )
    try:
        gateway.start()
        worker.wait_ready()
        topics = [deployment.topic(name) for name in ("release", "divert", "rejected")]
        start = run(end_offsets(settings.brokers, topics, PARTITIONS))
        sent = run(
            send_plan(
                settings.brokers,
                settings.topic_prefix,
                plan,
                list(Channel),
                gateway=gateway.base,
                api_key=key,
            )
        )
        assert sent[Channel.GATEWAY_JSON.value] > 50 and sent[Channel.GATEWAY_XML.value] > 50
        expected = sum(len(d) for d in plan.decisions.values()) + len(plan.rejections)
        deadline = time.monotonic() + WINDOW + 60
        seen = run(read_outputs(settings.brokers, start, until=expected, deadline=deadline))
    finally:
        gateway.stop()
        worker.stop()
    decisions = seen[deployment.topic("release")] + seen[deployment.topic("divert")]
    report = verify(plan, decisions, seen[deployment.topic("rejected")])
    assert report.tickets_decided == report.tickets_expected > 100
    # the outputs do hold personal data: the logs had every chance to show it
    assert any(d.get("buyerIdNumber") in values for d in decisions)

    logs = {path.name: path.read_text(errors="replace") for path in tmp_path.glob("*.log")}
    assert set(logs) == {"worker.log", "gateway.log"}
    assert "[DEBUG]" in logs["worker.log"]
    assert " DEBUG aiokafka" in logs["gateway.log"]
    assert "b'<masked>'" in logs["gateway.log"]  # aiokafka's requests, their record batches
    masked_prefix = prefix.replace(PHONE, "***")
    assert masked_prefix in logs["worker.log"] and masked_prefix in logs["gateway.log"]
    leaks = [
        (name, form)
        for name, text in logs.items()
        for value in values
        for form in forms(value)
        if form in text
    ]
    assert leaks == []
