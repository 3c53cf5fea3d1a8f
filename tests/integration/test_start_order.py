"""Start order does not matter: a worker started before its broker (and its topics) waits for
them, saying what it waits for, and works once they are there; a one-shot command facing
unreachable brokers ends with one clear line and a non-zero exit, not a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.integration.kafka import (
    BROKER_SCRIPT,
    ROOT,
    Timeout,
    Worker,
    consume,
    free_port_pair,
    produce,
    run,
)


def sandan(command: str, brokers: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``sandan COMMAND`` (``demo``: the demo load, ``python -m loadtest.demo``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
    env["SANDAN_BROKERS"] = brokers
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", *(["loadtest.demo"] if command == "demo" else ["streams", command])],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize("command", ["topics", "demo"])
def test_a_one_shot_command_without_brokers_says_so_in_one_line(command: str) -> None:
    port = free_port_pair()  # nothing listens there
    done = sandan(command, f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"sandan: cannot connect to the brokers: 127.0.0.1:{port}: ")
    assert "Connect call failed" in line


@pytest.mark.timeout(300)
def test_a_worker_started_before_its_broker_waits_then_decides(tmp_path: Path) -> None:
    port = free_port_pair()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "SANDAN_KAFKA_PORT": str(port)}
    settings = {
        "SANDAN_BROKERS": address,
        "SANDAN_TOPIC_PREFIX": "early.",
        "SANDAN_PARTITIONS": "2",
        "SANDAN_WINDOW": "1h",
        "SANDAN_DATA_DIR": str(tmp_path / "data"),
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
    worker = Worker(env=base | settings, log_path=tmp_path / "early.log").start()
    try:
        timeout = Timeout(60, "the worker to say it waits for the brokers")
        while timeout:
            if f"waiting for the brokers at {address}" in worker.log_tail(50):
                break
            assert worker.alive(), worker.log_tail()
            time.sleep(0.5)
        subprocess.run(["bash", str(BROKER_SCRIPT), "start"], env=env, check=True, timeout=180)
        timeout = Timeout(60, "the worker to say it waits for its topics")
        while timeout:
            if "waiting for the topics early.order, early.payment" in worker.log_tail(50):
                break
            assert worker.alive(), worker.log_tail()
            time.sleep(0.5)
        topics = sandan("topics", address, SANDAN_TOPIC_PREFIX="early.", SANDAN_PARTITIONS="2")
        assert topics.returncode == 0, topics.stderr
        worker.wait_ready(120)
        docs = {
            "order": order_dict(orderNo="EARLY1"),
            "payment": payment_dict(orderNo="EARLY1"),
            "logistics": logistics_dict(orderNo="EARLY1"),
        }
        run(produce(address, [(f"early.{k}", b"EARLY1", as_bytes(v)) for k, v in docs.items()]))
        released = run(consume(address, ["early.release"], count=1, idle=1, limit=90))
        assert [json.loads(r.value)["ticketId"] for r in released] == ["3301980ABC:EARLY1"]
    finally:
        worker.stop()
        subprocess.run(["bash", str(BROKER_SCRIPT), "stop"], env=env, check=False, timeout=60)
        subprocess.run(["rm", "-rf", str(ROOT / ".cache" / "kafka" / f"run-{port}")], check=False)
