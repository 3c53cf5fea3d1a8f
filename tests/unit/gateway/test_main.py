"""The gateway's log rate limit (gateway.main._OncePerInterval): a repeated message template
passes once per interval from INFO up, and never is held back at DEBUG."""

from __future__ import annotations

import logging

from gateway.main import _OncePerInterval


def record(level: int, msg: str, created: float, name: str = "aiokafka.conn") -> logging.LogRecord:
    entry = logging.LogRecord(name, level, __file__, 1, msg, ("x",), None)
    entry.created = created
    return entry


def test_a_template_passes_once_per_interval_from_info_up() -> None:
    quiet = _OncePerInterval(interval=10.0)
    passed = [
        quiet.filter(record(logging.ERROR, "Unable connect to %s", at))
        for at in (0.0, 1.0, 9.9, 10.0, 12.0, 20.5)
    ]
    assert passed == [True, False, False, True, False, True]
    # another template, another logger: their own clocks
    assert quiet.filter(record(logging.ERROR, "other %s", 1.0))
    assert quiet.filter(record(logging.ERROR, "Unable connect to %s", 1.0, name="aiokafka"))


def test_debug_records_all_pass() -> None:
    quiet = _OncePerInterval(interval=10.0)
    passed = [quiet.filter(record(logging.DEBUG, "Request to %s", at)) for at in (0.0, 0.1, 0.2)]
    assert passed == [True, True, True]
