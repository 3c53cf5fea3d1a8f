"""The gateway's keys (gateway.keys): the file, its errors, reload, constant-time lookup, and
``sandan key``."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from gateway.keys import (
    Keyring,
    KeysFileError,
    KeyStore,
    Principal,
    add_key,
    authenticate,
    digest,
    parse_keys,
)
from streams.cli import main as cli

DIGEST_A = digest("key-a")
DIGEST_B = digest("key-b")


def keys_file(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(entries)}).encode()


def entry(name: str, sha: str, *codes: str) -> dict[str, Any]:
    return {"name": name, "sha256": sha, "codes": list(codes)}


def test_a_key_is_found_by_its_digest():
    keyring = parse_keys(
        keys_file(entry("tenpay", DIGEST_A, "4403169D3W"), entry("sf", DIGEST_B, "A", "B")),
        "keys.json",
    )
    assert authenticate(keyring, "key-a") == Principal("tenpay", frozenset({"4403169D3W"}))
    assert authenticate(keyring, "key-b") == Principal("sf", frozenset({"A", "B"}))
    assert authenticate(keyring, "key-c") is None
    assert authenticate(keyring, "") is None
    assert authenticate(Keyring(), "key-a") is None


def test_roles_default_to_declarer_and_a_reviewer_needs_no_codes():
    keyring = parse_keys(
        keys_file(
            entry("tenpay", DIGEST_A, "4403169D3W"),  # a file of before roles: declarers
            {"name": "officer-7", "sha256": DIGEST_B, "roles": ["reviewer"]},
            {"name": "lead", "sha256": digest("key-c"), "codes": [], "roles": ["reviewer"]},
            entry("both", digest("key-d"), "A") | {"roles": ["declarer", "reviewer"]},
        ),
        "keys.json",
    )
    tenpay = authenticate(keyring, "key-a")
    assert tenpay == Principal("tenpay", frozenset({"4403169D3W"}), frozenset({"declarer"}))
    assert tenpay.has("declarer") and not tenpay.has("reviewer")
    officer = authenticate(keyring, "key-b")
    assert officer == Principal("officer-7", frozenset(), frozenset({"reviewer"}))
    assert officer.has("reviewer") and not officer.has("declarer")
    assert authenticate(keyring, "key-c") == Principal("lead", frozenset(), frozenset({"reviewer"}))
    both = authenticate(keyring, "key-d")
    assert both is not None and both.roles == {"declarer", "reviewer"}


def test_a_name_may_have_two_keys_for_rotation():
    keyring = parse_keys(keys_file(entry("sf", DIGEST_A, "A"), entry("sf", DIGEST_B, "A")), "k")
    assert authenticate(keyring, "key-a") == authenticate(keyring, "key-b")


def test_every_entry_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lookup compares with every entry (no early exit), in constant time per entry."""
    entries = [entry(f"firm{i}", digest(f"key-{i}"), "C") for i in range(5)]
    keyring = parse_keys(keys_file(*entries), "k")
    calls: list[tuple[bytes, bytes]] = []

    def compare(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(hmac, "compare_digest", compare)
    for presented in ("key-0", "key-4", "nobody"):
        calls.clear()
        principal = authenticate(keyring, presented)
        assert len(calls) == 5
        assert {a for a, _ in calls} == {bytes.fromhex(e["sha256"]) for e in entries}
        assert all(b == hashlib.sha256(presented.encode()).digest() for _, b in calls)
        assert (principal is None) == (presented == "nobody")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "keys.json: not JSON: Input data was truncated"),
        (b"[]", "keys.json: Expected `object`, got `array`"),
        (b'{"keys": 1}', "keys.json: Expected `array`, got `int` - at `$.keys`"),
        (
            keys_file(entry("ok", DIGEST_A, "A"), entry("tenpay", "ABC", "A")),
            "keys.json: entry 1 ('tenpay'): Expected `str` matching regex '^[0-9a-f]{64}$' "
            "- at `$.keys[1].sha256`",
        ),
        (
            keys_file(entry("tenpay", DIGEST_A)),
            "keys.json: entry 0 ('tenpay'): the role declarer needs at least one code (a "
            "reviewer-only key needs none) - at `$.keys[0].codes`",
        ),
        (
            keys_file(
                entry("ok", DIGEST_A, "A"),
                {"name": "both", "sha256": DIGEST_B, "roles": ["reviewer", "declarer"]},
            ),
            "keys.json: entry 1 ('both'): the role declarer needs at least one code (a "
            "reviewer-only key needs none) - at `$.keys[1].codes`",
        ),
        (
            keys_file(entry("boss", DIGEST_A, "A") | {"roles": ["admin"]}),
            "keys.json: entry 0 ('boss'): Invalid enum value 'admin' - at `$.keys[0].roles[0]`",
        ),
        (
            keys_file(entry("none", DIGEST_A, "A") | {"roles": []}),
            "keys.json: entry 0 ('none'): Expected `array` of length >= 1 - at `$.keys[0].roles`",
        ),
        (
            keys_file(entry("tenpay", DIGEST_A, "A B")),
            "keys.json: entry 0 ('tenpay'): Expected `str` matching regex '^[0-9A-Za-z]+$' "
            "- at `$.keys[0].codes[0]`",
        ),
        (
            keys_file({"sha256": DIGEST_A, "codes": ["A"]}),
            "keys.json: entry 0: Object missing required field `name` - at `$.keys[0]`",
        ),
        (
            keys_file(entry("a", DIGEST_A, "A") | {"key": "plain"}),
            "keys.json: entry 0 ('a'): Object contains unknown field `key` - at `$.keys[0]`",
        ),
        (
            keys_file(entry("a", DIGEST_A, "A"), entry("b", DIGEST_A, "B")),
            "keys.json: entry 1 ('b') repeats the digest of entry 0",
        ),
    ],
)
def test_errors_name_the_file_and_the_entry(data: bytes, message: str) -> None:
    with pytest.raises(KeysFileError) as info:
        parse_keys(data, "keys.json")
    assert str(info.value) == message


def test_the_store_reloads_on_change_and_keeps_the_keys_on_a_bad_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(keys_file(entry("a", DIGEST_A, "A")))
    store = KeyStore.load(path)
    assert store.authenticate("key-a") is not None
    assert store.reload_if_changed() is False  # nothing changed

    path.write_bytes(keys_file(entry("b", DIGEST_B, "B")))
    os.utime(path, ns=(1, 1))  # a different stat, whatever the clock's resolution
    assert store.reload_if_changed() is True
    assert store.authenticate("key-a") is None
    assert store.authenticate("key-b") == Principal("b", frozenset({"B"}))

    caplog.set_level(logging.ERROR, logger="gateway.keys")
    path.write_bytes(b'{"keys": [{"name": "c", "sha256": "key-b-in-plain", "codes": ["C"]}]}')
    assert store.reload_if_changed() is False
    assert store.authenticate("key-b") is not None  # the previous keys stay
    (record,) = caplog.records
    assert str(path) in record.getMessage()
    assert "key-b-in-plain" not in record.getMessage()  # never a key in the log

    path.unlink()
    assert store.reload_if_changed() is False
    assert store.authenticate("key-b") is not None
    path.write_bytes(keys_file(entry("a", DIGEST_A, "A")))
    assert store.reload_if_changed() is True
    assert store.authenticate("key-a") is not None


def test_a_missing_or_broken_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(KeysFileError, match="cannot read the keys file"):
        KeyStore.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_bytes(b"{")
    with pytest.raises(KeysFileError, match=r"bad\.json: not JSON"):
        KeyStore.load(tmp_path / "bad.json")


def test_add_key_creates_the_file_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "keys.json"
    first = add_key(path, "tenpay", ["4403169D3W"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = add_key(path, "sf", ["A", "B"])
    assert first != second
    assert len(first) >= 40
    store = KeyStore.load(path)
    assert store.authenticate(first) == Principal("tenpay", frozenset({"4403169D3W"}))
    assert store.authenticate(second) == Principal("sf", frozenset({"A", "B"}))
    assert first.encode() not in path.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temp file left


def test_add_key_refuses_a_broken_file_and_a_bad_code(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(b"{")
    with pytest.raises(KeysFileError):
        add_key(path, "a", ["A"])
    assert path.read_bytes() == b"{"
    path.unlink()
    with pytest.raises(KeysFileError, match="the new entry for 'a'"):
        add_key(path, "a", ["not a code"])
    assert not path.exists()


def test_add_key_with_roles(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(keys_file(entry("tenpay", DIGEST_A, "4403169D3W")))  # no roles: declarer
    officer = add_key(path, "officer-7", [], roles=["reviewer"])
    both = add_key(path, "lead", ["3301980ABC"], roles=("declarer", "reviewer"))
    store = KeyStore.load(path)
    assert store.authenticate("key-a") == Principal("tenpay", frozenset({"4403169D3W"}))
    assert store.authenticate(officer) == Principal(
        "officer-7", frozenset(), frozenset({"reviewer"})
    )
    assert store.authenticate(both) == Principal(
        "lead", frozenset({"3301980ABC"}), frozenset({"declarer", "reviewer"})
    )
    written = json.loads(path.read_bytes())["keys"]
    assert [(e["name"], e["codes"], e["roles"]) for e in written] == [
        ("tenpay", ["4403169D3W"], ["declarer"]),
        ("officer-7", [], ["reviewer"]),
        ("lead", ["3301980ABC"], ["declarer", "reviewer"]),
    ]
    before = path.read_bytes()
    with pytest.raises(KeysFileError) as info:
        add_key(path, "boss", ["A"], roles=["admin"])
    assert (
        str(info.value) == "the new entry for 'boss': Invalid enum value 'admin' - at `$.roles[0]`"
    )
    with pytest.raises(KeysFileError) as info:
        add_key(path, "nobody", [])  # a declarer without codes
    assert str(info.value) == (
        "the new entry for 'nobody': entry 3 ('nobody'): the role declarer needs at least one "
        "code (a reviewer-only key needs none) - at `$.keys[3].codes`"
    )
    assert path.read_bytes() == before


def test_sandan_key_prints_the_key_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    cli(["key", "--name", "tenpay", "--codes", "4403169D3W, 3301980ABC", "--file", str(path)])
    out, err = capsys.readouterr()
    key = out.strip()
    assert "tenpay" in err and key not in err
    assert KeyStore.load(path).authenticate(key) == Principal(
        "tenpay", frozenset({"4403169D3W", "3301980ABC"})
    )


def test_sandan_key_makes_a_reviewer_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    cli(["key", "--name", "officer-7", "--roles", "reviewer", "--file", str(path)])
    out, err = capsys.readouterr()
    assert err == f"added a key for 'officer-7' (reviewer) to {path}\n"
    principal = KeyStore.load(path).authenticate(out.strip())
    assert principal is not None
    assert (principal.name, principal.codes, principal.has("reviewer")) == (
        "officer-7",
        frozenset(),
        True,
    )
    assert not principal.has("declarer")
    with pytest.raises(SystemExit) as info:
        cli(["key", "--name", "nobody", "--file", str(path)])  # a declarer needs codes
    assert info.value.code == 2
    assert "the role declarer needs at least one code" in capsys.readouterr().err
