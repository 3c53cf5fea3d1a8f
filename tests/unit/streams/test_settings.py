"""The worker's settings (streams.settings): every ``SANDAN_*`` variable, its default, and the
SettingsError naming the variable when a value is malformed or the name is unknown."""

from __future__ import annotations

import re
import ssl
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.errors import SandanError
from streams.settings import SETTINGS_HELP, Secret, Settings, SettingsError, parse_duration
from tests.certs import Certificates, make_certificates

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
    assert settings.replication_factor == 1
    assert settings.window == 24 * HOUR
    assert settings.retention == 7 * DAY
    assert settings.released_horizon == 180 * DAY
    assert settings.single_limit == Decimal(5000)
    assert settings.annual_limit == Decimal(26000)
    assert settings.data_dir == Path("data")
    assert settings.max_document_bytes == 262144
    assert settings.web_port == 6066
    assert settings.gateway_review_wait == 10.0
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
        field = name.removeprefix("SANDAN_").lower()
        if name == "SANDAN_WORKER_ID" or getattr(defaults, field) is None:
            continue  # the help describes the default ("none", "system CAs"): not a value
        assert Settings.from_env({name: default}) == defaults, name


# --- each variable parsed -------------------------------------------------------------------


def test_every_variable_is_parsed(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "SANDAN_BROKERS": "kafka-1:9092,kafka-2:19092",
            "SANDAN_TOPIC_PREFIX": "test-run_1.",
            "SANDAN_PARTITIONS": "3",
            "SANDAN_REPLICATION_FACTOR": "3",
            "SANDAN_WINDOW": "15s",
            "SANDAN_RETENTION": "2m",
            "SANDAN_RELEASED_HORIZON": "30d",
            "SANDAN_SINGLE_LIMIT": "4999.99",
            "SANDAN_ANNUAL_LIMIT": "30000",
            "SANDAN_DATA_DIR": str(tmp_path / "state"),
            "SANDAN_MAX_DOCUMENT_BYTES": "1024",
            "SANDAN_MAX_MESSAGE_BYTES": "65536",
            "SANDAN_WEB_PORT": "7000",
            "SANDAN_ADVERTISED_URL": "https://worker-7.example:7443",
            "SANDAN_METRICS": "off",
            "SANDAN_WORKER_ID": "worker-7",
            "SANDAN_GATEWAY_HOST": "0.0.0.0",  # noqa: S104 - parsed, not bound
            "SANDAN_GATEWAY_PORT": "8443",
            "SANDAN_GATEWAY_KEYS": str(tmp_path / "keys.json"),
            "SANDAN_GATEWAY_ACK_TIMEOUT": "3s",
            "SANDAN_GATEWAY_REVIEW_WAIT": "1m",
        }
    )
    assert settings == Settings(
        brokers="kafka-1:9092,kafka-2:19092",
        topic_prefix="test-run_1.",
        partitions=3,
        replication_factor=3,
        window=15.0,
        retention=120.0,
        released_horizon=30 * DAY,
        single_limit=Decimal("4999.99"),
        annual_limit=Decimal(30000),
        data_dir=tmp_path / "state",
        max_document_bytes=1024,
        max_message_bytes=65536,
        web_port=7000,
        advertised_url="https://worker-7.example:7443",
        metrics=False,
        worker_id="worker-7",
        gateway_host="0.0.0.0",  # noqa: S104 - parsed, not bound
        gateway_port=8443,
        gateway_keys=tmp_path / "keys.json",
        gateway_ack_timeout=3.0,
        gateway_review_wait=60.0,
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


def test_released_horizon_equal_to_retention_is_accepted() -> None:
    environ = {"SANDAN_WINDOW": "10s", "SANDAN_RETENTION": "30s", "SANDAN_RELEASED_HORIZON": "30"}
    settings = Settings.from_env(environ)
    assert settings.released_horizon == settings.retention == 30.0


def test_released_horizon_shorter_than_retention_is_rejected() -> None:
    message = fail({"SANDAN_RETENTION": "2d", "SANDAN_RELEASED_HORIZON": "1d"})
    assert message == "SANDAN_RELEASED_HORIZON must not be shorter than SANDAN_RETENTION"
    # the default horizon (180d) bounds the retention too
    assert fail({"SANDAN_RETENTION": "181d"}) == message
    assert Settings.from_env({"SANDAN_RETENTION": "180d"}).released_horizon == 180 * DAY


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
        ("SANDAN_REPLICATION_FACTOR", "0"),
        ("SANDAN_REPLICATION_FACTOR", "-1"),
        ("SANDAN_REPLICATION_FACTOR", "three"),
        ("SANDAN_REPLICATION_FACTOR", "2.5"),
        ("SANDAN_REPLICATION_FACTOR", ""),
        ("SANDAN_WINDOW", "1 day"),
        ("SANDAN_WINDOW", "24H"),
        ("SANDAN_WINDOW", ""),
        ("SANDAN_RETENTION", "7w"),
        ("SANDAN_RETENTION", "0"),
        ("SANDAN_RELEASED_HORIZON", "6mo"),
        ("SANDAN_RELEASED_HORIZON", "0"),
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
        ("SANDAN_GATEWAY_REVIEW_WAIT", "0"),
        ("SANDAN_GATEWAY_REVIEW_WAIT", "ten"),
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


@pytest.mark.parametrize(
    "name",
    [
        "SANDAN_KAFKA_PORT",
        "SANDAN_KAFKA_HOME",
        "SANDAN_KAFKA_HEAP",
        "SANDAN_KAFKA_EXTRA_CONFIG",
        "SANDAN_KAFKA_FORMAT_ARGS",
        "SANDAN_KAFKA_NODES",
    ],
)
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


# --- Kafka security -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def sasl_ssl(certs: Certificates, **more: str) -> dict[str, str]:
    return {
        "SANDAN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "SANDAN_KAFKA_SSL_CAFILE": str(certs.ca),
        "SANDAN_KAFKA_SSL_CERTFILE": str(certs.client_cert),
        "SANDAN_KAFKA_SSL_KEYFILE": str(certs.client_key),
        "SANDAN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "SANDAN_KAFKA_SASL_USERNAME": "sandan",
        "SANDAN_KAFKA_SASL_PASSWORD": "hunter2-secret",
        **more,
    }


def test_security_defaults_to_plaintext() -> None:
    settings = Settings.from_env({})
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.kafka_ssl_cafile is None
    assert settings.kafka_ssl_certfile is None
    assert settings.kafka_ssl_keyfile is None
    assert settings.kafka_sasl_mechanism is None
    assert settings.kafka_sasl_username is None
    assert settings.kafka_sasl_password is None
    assert settings.kafka_ssl_context() is None


def test_every_security_variable_is_parsed(certs: Certificates) -> None:
    settings = Settings.from_env(sasl_ssl(certs))
    assert settings == Settings(
        worker_id=settings.worker_id,
        advertised_url="http://127.0.0.1:6066",
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=certs.ca,
        kafka_ssl_certfile=certs.client_cert,
        kafka_ssl_keyfile=certs.client_key,
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="sandan",
        kafka_sasl_password=Secret("hunter2-secret"),
    )
    assert isinstance(settings.kafka_sasl_password, Secret)
    assert settings.kafka_sasl_password.reveal() == "hunter2-secret"


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_each_protocol_and_mechanism_is_accepted(protocol: str, mechanism: str) -> None:
    env = {"SANDAN_KAFKA_SECURITY_PROTOCOL": protocol}
    if protocol.startswith("SASL_"):
        env |= {
            "SANDAN_KAFKA_SASL_MECHANISM": mechanism,
            "SANDAN_KAFKA_SASL_USERNAME": "u",
            "SANDAN_KAFKA_SASL_PASSWORD": "p",
        }
    settings = Settings.from_env(env)
    assert settings.kafka_security_protocol == protocol
    assert settings.kafka_sasl_mechanism == (mechanism if protocol.startswith("SASL_") else None)
    assert (settings.kafka_ssl_context() is not None) == protocol.endswith("SSL")


def test_the_password_never_shows(certs: Certificates) -> None:
    settings = Settings.from_env(sasl_ssl(certs))
    for text in (repr(settings), str(settings), f"{settings}", f"{settings.kafka_sasl_password}"):
        assert "hunter2" not in text
    assert "kafka_sasl_password=Secret('***')" in repr(settings)
    # nor in an error about another setting
    message = fail(sasl_ssl(certs, SANDAN_KAFKA_SSL_KEYFILE=str(certs.ca)))
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SANDAN_KAFKA_SECURITY_PROTOCOL", "TLS", "expected one of PLAINTEXT, SSL, SASL_PLAINTEXT"),
        ("SANDAN_KAFKA_SECURITY_PROTOCOL", "sasl_ssl", "got 'sasl_ssl'"),
        ("SANDAN_KAFKA_SECURITY_PROTOCOL", "", "got ''"),
        ("SANDAN_KAFKA_SASL_MECHANISM", "GSSAPI", "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
        ("SANDAN_KAFKA_SASL_MECHANISM", "scram-sha-256", "got 'scram-sha-256'"),
        ("SANDAN_KAFKA_SASL_USERNAME", "", "expected a value"),
        ("SANDAN_KAFKA_SASL_PASSWORD", "", "expected a value"),
        ("SANDAN_KAFKA_SSL_CAFILE", "/no/such/ca.pem", "no such file: '/no/such/ca.pem'"),
        ("SANDAN_KAFKA_SSL_CERTFILE", "/no/such/cert.pem", "no such file"),
        ("SANDAN_KAFKA_SSL_KEYFILE", "/", "no such file: '/'"),
    ],
)
def test_malformed_security_value_names_the_variable(name: str, value: str, expected: str) -> None:
    message = fail({name: value})
    assert message.startswith(f"{name}: ")
    assert expected in message


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_needs_a_mechanism_a_user_and_a_password(protocol: str) -> None:
    base = {"SANDAN_KAFKA_SECURITY_PROTOCOL": protocol}
    assert fail(base) == (
        f"SANDAN_KAFKA_SECURITY_PROTOCOL={protocol} needs SANDAN_KAFKA_SASL_MECHANISM, "
        "SANDAN_KAFKA_SASL_USERNAME, SANDAN_KAFKA_SASL_PASSWORD"
    )
    with_user = {**base, "SANDAN_KAFKA_SASL_MECHANISM": "PLAIN", "SANDAN_KAFKA_SASL_USERNAME": "u"}
    assert fail(with_user) == (
        f"SANDAN_KAFKA_SECURITY_PROTOCOL={protocol} needs SANDAN_KAFKA_SASL_PASSWORD"
    )


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
@pytest.mark.parametrize(
    "name",
    ["SANDAN_KAFKA_SASL_MECHANISM", "SANDAN_KAFKA_SASL_USERNAME", "SANDAN_KAFKA_SASL_PASSWORD"],
)
def test_sasl_settings_without_a_sasl_protocol_are_rejected(protocol: str, name: str) -> None:
    value = "PLAIN" if name.endswith("MECHANISM") else "x"
    message = fail({"SANDAN_KAFKA_SECURITY_PROTOCOL": protocol, name: value})
    assert message == (
        f"{name} is set but SANDAN_KAFKA_SECURITY_PROTOCOL is {protocol}: "
        "SASL needs SASL_PLAINTEXT or SASL_SSL"
    )


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
@pytest.mark.parametrize(
    "name", ["SANDAN_KAFKA_SSL_CAFILE", "SANDAN_KAFKA_SSL_CERTFILE", "SANDAN_KAFKA_SSL_KEYFILE"]
)
def test_tls_files_without_a_tls_protocol_are_rejected(
    certs: Certificates, protocol: str, name: str
) -> None:
    env = {"SANDAN_KAFKA_SECURITY_PROTOCOL": protocol, name: str(certs.ca)}
    if protocol == "SASL_PLAINTEXT":
        env |= {
            "SANDAN_KAFKA_SASL_MECHANISM": "PLAIN",
            "SANDAN_KAFKA_SASL_USERNAME": "u",
            "SANDAN_KAFKA_SASL_PASSWORD": "p",
        }
    assert fail(env) == (
        f"{name} is set but SANDAN_KAFKA_SECURITY_PROTOCOL is {protocol}: TLS needs SSL or SASL_SSL"
    )


def test_client_certificate_and_key_go_together(certs: Certificates) -> None:
    env = {"SANDAN_KAFKA_SECURITY_PROTOCOL": "SSL", "SANDAN_KAFKA_SSL_CERTFILE": str(certs.ca)}
    assert fail(env) == "SANDAN_KAFKA_SSL_CERTFILE and SANDAN_KAFKA_SSL_KEYFILE go together"
    env = {"SANDAN_KAFKA_SECURITY_PROTOCOL": "SSL", "SANDAN_KAFKA_SSL_KEYFILE": str(certs.ca)}
    assert fail(env) == "SANDAN_KAFKA_SSL_CERTFILE and SANDAN_KAFKA_SSL_KEYFILE go together"


def test_tls_files_that_do_not_load_are_named(certs: Certificates, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    message = fail(sasl_ssl(certs, SANDAN_KAFKA_SSL_CAFILE=str(garbage)))
    assert message.startswith(
        "SANDAN_KAFKA_SSL_CAFILE, SANDAN_KAFKA_SSL_CERTFILE, SANDAN_KAFKA_SSL_KEYFILE: "
        "cannot load the TLS files ("
    )
    # a certificate that is not the key's
    mismatched = sasl_ssl(certs, SANDAN_KAFKA_SSL_CERTFILE=str(certs.ca))
    assert "cannot load the TLS files" in fail(mismatched)


def test_an_encrypted_key_fails_at_start_instead_of_prompting(
    certs: Certificates, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certs.client_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    message = fail(sasl_ssl(certs, SANDAN_KAFKA_SSL_KEYFILE=str(encrypted)))
    assert "cannot load the TLS files" in message


def test_the_tls_context_trusts_the_ca_file_and_checks_host_names(certs: Certificates) -> None:
    context = Settings.from_env(sasl_ssl(certs)).kafka_ssl_context()
    assert context is not None
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    (ca,) = context.get_ca_certs()
    assert ca["subject"] == ((("commonName", "sandan test CA"),),)


def test_the_document_state_is_separate_unless_inline_is_asked() -> None:
    assert Settings.from_env({}).document_state == "separate"
    assert Settings.from_env({"SANDAN_DOCUMENT_STATE": "inline"}).document_state == "inline"
    message = fail({"SANDAN_DOCUMENT_STATE": "INLINE"})
    assert message.startswith("SANDAN_DOCUMENT_STATE: expected one of separate, inline")
