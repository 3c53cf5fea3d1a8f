"""The alert settings a run gives its workers (loadtest.driver.alert_env), those that let a
plan's expected alerts hold (alert_settings_problems), and alert records decoded."""

from __future__ import annotations

import pytest

from loadtest.driver import alert_env, alert_settings_problems, decode_alert
from loadtest.openloop import LoadSpec
from loadtest.run import _worker_env
from loadtest.truth import ALERT_BUYERS, ALERT_CONSIGNEES, ALERT_WINDOW
from streams.settings import Settings


def test_the_alert_env_is_the_truths_and_the_load_tests() -> None:
    settings = Settings.from_env(alert_env())
    assert (settings.alert_consignees, settings.alert_buyers) == (ALERT_CONSIGNEES, ALERT_BUYERS)
    windows = (
        settings.alert_consignees_window,
        settings.alert_buyers_window,
        settings.alert_split_window,
    )
    assert windows == (ALERT_WINDOW,) * 3
    assert alert_settings_problems(settings, 86_400.0) == []
    spec = LoadSpec(
        brokers="127.0.0.1:9092",
        prefix="lt-x.",
        partitions=4,
        rate=10,
        duration=10,
        seed=1,
        mix="even",
        window=10,
        out="reports",
    )
    ours = {k: v for k, v in _worker_env(spec).items() if k.startswith("SANDAN_ALERT")}
    assert ours == alert_env()  # loadtest.run gives its workers the same


def test_windows_longer_than_the_run_will_do() -> None:
    defaults = Settings.from_env({})  # 7d, 7d, 1h
    assert alert_settings_problems(defaults, 600.0) == []
    assert alert_settings_problems(defaults, 7200.0) == [
        "SANDAN_ALERT_SPLIT_WINDOW is 3600s, not longer than the run (7200s)"
    ]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"SANDAN_ALERTS": "off"}, "SANDAN_ALERTS is off"),
        ({"SANDAN_ALERT_CONSIGNEES": "4"}, "SANDAN_ALERT_CONSIGNEES is 4, the ground truth's 3"),
        ({"SANDAN_ALERT_BUYERS": "2"}, "SANDAN_ALERT_BUYERS is 2, the ground truth's 5"),
        ({"SANDAN_SINGLE_LIMIT": "6000"}, "SANDAN_SINGLE_LIMIT is 6000, the ground truth's 5000"),
    ],
)
def test_other_alert_settings_are_named(env: dict[str, str], problem: str) -> None:
    settings = Settings.from_env(alert_env() | env)
    assert alert_settings_problems(settings, 60.0) == [problem]


def test_alert_records_decoded() -> None:
    assert decode_alert(b'{"alertId": "x"}') == {"alertId": "x"}
    assert decode_alert(b"{not json") == {"unreadable": "{not json"}
    assert decode_alert(b"[1]") == {"unreadable": "[1]"}
    assert decode_alert(None) == {"unreadable": ""}
