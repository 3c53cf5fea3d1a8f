"""The worker's settings (streams.settings): every ``SANDAN_*`` variable, its default, and the
SettingsError naming the variable when a value is malformed or the name is unknown."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.errors import SandanError
from streams.settings import SETTINGS_HELP, Settings, SettingsError, parse_duration

HOUR = 3600.0
DAY = 86400.0


def fail(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(environ)
    return str(info.value)


# --- defaults -------------------------------------------------------------------------------


def test_defaults_when_no_variable_is_set() -> None:
    settings = Settings.from_env({})
    assert settings.brokers == "127.0.0.1:9092"
    assert settings.topic_prefix == "cbec."
    assert settings.partitions == 12
    assert settings.window == 24 * HOUR
    assert settings.retention == 7 * DAY
    assert settings.single_limit == Decimal(5000)
    assert settings.annual_limit == Decimal(26000)
    assert settings.data_dir == Path("data")
    assert settings.max_document_bytes == 262144
    assert settings.web_port == 6066
    assert re.fullmatch(r"[0-9a-f]{12}", settings.worker_id)


def test_other_environment_variables_are_ignored() -> None:
    settings = Settings.from_env({"PATH": "/bin", "HOME": "/root", "sandan_window": "garbage"})
    assert settings.window == 24 * HOUR


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDAN_PARTITIONS", "3")
    assert Settings.from_env().partitions == 3
    monkeypatch.setenv("SANDAN_NO_SUCH_THING", "1")
    with pytest.raises(SettingsError, match="SANDAN_NO_SUCH_THING"):
        Settings.from_env()


def test_help_lists_every_setting() -> None:
    names = {f"SANDAN_{field.upper()}" for field in Settings.__struct_fields__}
    assert set(SETTINGS_HELP) == names
    # every documented default parses to the field's default
    defaults = Settings.from_env({})
    for name, (default, _) in SETTINGS_HELP.items():
        if name == "SANDAN_WORKER_ID":
            continue
        assert Settings.from_env({name: default}) == defaults, name


# --- each variable parsed -------------------------------------------------------------------


def test_every_variable_is_parsed(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "SANDAN_BROKERS": "kafka-1:9092,kafka-2:19092",
            "SANDAN_TOPIC_PREFIX": "test-run_1.",
            "SANDAN_PARTITIONS": "3",
            "SANDAN_WINDOW": "15s",
            "SANDAN_RETENTION": "2m",
            "SANDAN_SINGLE_LIMIT": "4999.99",
            "SANDAN_ANNUAL_LIMIT": "30000",
            "SANDAN_DATA_DIR": str(tmp_path / "state"),
            "SANDAN_MAX_DOCUMENT_BYTES": "1024",
            "SANDAN_MAX_MESSAGE_BYTES": "65536",
            "SANDAN_WEB_PORT": "7000",
            "SANDAN_WORKER_ID": "worker-7",
            "SANDAN_GATEWAY_HOST": "0.0.0.0",  # noqa: S104 - parsed, not bound
            "SANDAN_GATEWAY_PORT": "8443",
            "SANDAN_GATEWAY_KEYS": str(tmp_path / "keys.json"),
            "SANDAN_GATEWAY_ACK_TIMEOUT": "3s",
        }
    )
    assert settings == Settings(
        brokers="kafka-1:9092,kafka-2:19092",
        topic_prefix="test-run_1.",
        partitions=3,
        window=15.0,
        retention=120.0,
        single_limit=Decimal("4999.99"),
        annual_limit=Decimal(30000),
        data_dir=tmp_path / "state",
        max_document_bytes=1024,
        max_message_bytes=65536,
        web_port=7000,
        worker_id="worker-7",
        gateway_host="0.0.0.0",  # noqa: S104 - parsed, not bound
        gateway_port=8443,
        gateway_keys=tmp_path / "keys.json",
        gateway_ack_timeout=3.0,
    )
    assert isinstance(settings.single_limit, Decimal)
    assert isinstance(settings.data_dir, Path)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15", 15.0),
        ("15s", 15.0),
        ("30m", 1800.0),
        ("24h", 86400.0),
        ("7d", 604800.0),
        ("1.5h", 5400.0),
        ("0.5", 0.5),
        (" 10m ", 600.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("window", "seconds"), [("90", 90.0), ("90s", 90.0), ("2m", 120.0), ("3h", 10800.0)]
)
def test_window_units(window: str, seconds: float) -> None:
    assert Settings.from_env({"SANDAN_WINDOW": window}).window == seconds


@pytest.mark.parametrize(
    ("retention", "seconds"), [("86400", DAY), ("86400s", DAY), ("1440m", DAY), ("2d", 2 * DAY)]
)
def test_retention_units(retention: str, seconds: float) -> None:
    assert Settings.from_env({"SANDAN_RETENTION": retention}).retention == seconds


@pytest.mark.parametrize(
    "text", ["", "s", "h15", "15x", "15 h", "15hh", "-5", "-5s", "1e3", "0", "0s", "0.0d", "1,5h"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_duration(text)


def test_parse_duration_rejects_an_infinite_duration() -> None:
    # float() of a 401-digit number is inf: accepted, it would crash the worker later
    # (``int(settings.retention * 1000)`` raises OverflowError) instead of at start.
    with pytest.raises(ValueError, match="duration"):
        parse_duration("1" + "0" * 400)


def test_an_infinite_retention_stops_the_worker_at_start() -> None:
    assert "SANDAN_RETENTION" in fail({"SANDAN_RETENTION": "9" * 400 + "d"})


def test_window_equal_to_retention_is_accepted() -> None:
    settings = Settings.from_env({"SANDAN_WINDOW": "1d", "SANDAN_RETENTION": "24h"})
    assert settings.window == settings.retention == DAY


def test_window_longer_than_retention_is_rejected() -> None:
    message = fail({"SANDAN_WINDOW": "2d", "SANDAN_RETENTION": "1d"})
    assert "SANDAN_WINDOW" in message
    assert "SANDAN_RETENTION" in message
    # the defaults' retention (7d) bounds the window too
    assert "SANDAN_WINDOW" in fail({"SANDAN_WINDOW": "8d"})
    assert "SANDAN_WINDOW" in fail({"SANDAN_RETENTION": "1h"})


# --- malformed values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SANDAN_BROKERS", ""),
        ("SANDAN_BROKERS", "localhost"),
        ("SANDAN_BROKERS", "localhost:"),
        ("SANDAN_BROKERS", ":9092"),
        ("SANDAN_BROKERS", "localhost:port"),
        ("SANDAN_BROKERS", "a:9092,b"),
        ("SANDAN_TOPIC_PREFIX", "cbec/"),
        ("SANDAN_TOPIC_PREFIX", "cbec "),
        ("SANDAN_PARTITIONS", "twelve"),
        ("SANDAN_PARTITIONS", "0"),
        ("SANDAN_PARTITIONS", "-1"),
        ("SANDAN_PARTITIONS", "1.5"),
        ("SANDAN_PARTITIONS", ""),
        ("SANDAN_WINDOW", "1 day"),
        ("SANDAN_WINDOW", "24H"),
        ("SANDAN_WINDOW", ""),
        ("SANDAN_RETENTION", "7w"),
        ("SANDAN_RETENTION", "0"),
        ("SANDAN_SINGLE_LIMIT", "lots"),
        ("SANDAN_SINGLE_LIMIT", "-1"),
        ("SANDAN_SINGLE_LIMIT", "NaN"),
        ("SANDAN_SINGLE_LIMIT", "Infinity"),
        ("SANDAN_ANNUAL_LIMIT", ""),
        ("SANDAN_ANNUAL_LIMIT", "26,000"),
        ("SANDAN_MAX_DOCUMENT_BYTES", "0"),
        ("SANDAN_MAX_DOCUMENT_BYTES", "256k"),
        ("SANDAN_WEB_PORT", "65536"),
        ("SANDAN_WEB_PORT", "0"),
        ("SANDAN_WEB_PORT", "-1"),
        ("SANDAN_WEB_PORT", "http"),
        ("SANDAN_WORKER_ID", "worker 1"),
        ("SANDAN_WORKER_ID", "w/1"),
        ("SANDAN_MAX_MESSAGE_BYTES", "4M"),
        ("SANDAN_GATEWAY_HOST", "http://0.0.0.0"),
        ("SANDAN_GATEWAY_PORT", "0"),
        ("SANDAN_GATEWAY_ACK_TIMEOUT", "soon"),
    ],
)
def test_malformed_value_names_the_variable(name: str, value: str) -> None:
    message = fail({name: value})
    assert message.startswith(f"{name}: ")


def test_settings_error_is_a_sandan_error() -> None:
    assert issubclass(SettingsError, SandanError)


@pytest.mark.parametrize("name", ["SANDAN_WINDOWS", "SANDAN_", "SANDAN_KAFKA_PORTS", "SANDAN_HOST"])
def test_unknown_variable_is_rejected_by_name(name: str) -> None:
    message = fail({name: "1"})
    assert message.startswith(f"unknown setting {name};")
    # and says which settings there are
    assert "SANDAN_WINDOW" in message
    assert "SANDAN_DATA_DIR" in message


@pytest.mark.parametrize("name", ["SANDAN_KAFKA_PORT", "SANDAN_KAFKA_HOME", "SANDAN_KAFKA_HEAP"])
def test_broker_script_variables_are_tolerated(name: str) -> None:
    assert Settings.from_env({name: "anything at all"}) == Settings.from_env({})


# --- worker id and topics -------------------------------------------------------------------


def test_default_worker_id_is_stable_per_data_dir(tmp_path: Path) -> None:
    one = {"SANDAN_DATA_DIR": str(tmp_path / "one")}
    first = Settings.from_env(one).worker_id
    assert Settings.from_env(one).worker_id == first
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    other = Settings.from_env({"SANDAN_DATA_DIR": str(tmp_path / "two")}).worker_id
    assert other != first


def test_default_worker_id_resolves_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = Settings.from_env({"SANDAN_DATA_DIR": "state"}).worker_id
    absolute = Settings.from_env({"SANDAN_DATA_DIR": str(tmp_path / "state")}).worker_id
    assert relative == absolute


def test_explicit_worker_id_wins(tmp_path: Path) -> None:
    settings = Settings.from_env({"SANDAN_WORKER_ID": "w1", "SANDAN_DATA_DIR": str(tmp_path)})
    assert settings.worker_id == "w1"
    empty = Settings.from_env({"SANDAN_WORKER_ID": "", "SANDAN_DATA_DIR": str(tmp_path)})
    assert empty.worker_id == Settings.from_env({"SANDAN_DATA_DIR": str(tmp_path)}).worker_id


def test_topic_joins_the_prefix() -> None:
    assert Settings.from_env({}).topic("order") == "cbec.order"
    assert Settings.from_env({"SANDAN_TOPIC_PREFIX": "t1-"}).topic("release") == "t1-release"
    assert Settings.from_env({"SANDAN_TOPIC_PREFIX": ""}).topic("payment") == "payment"
