"""The gateway's HTTP layer (gateway.app) over a real socket, with the Kafka side replaced by
in-memory stand-ins: the order of the checks, every status and its body and headers, metrics
labels and the OpenAPI document. Reviews wait for their results in the real
gateway.reviews.ReviewResults, with the tail's consumer replaced by a stand-in worker that
answers from inside the produce. The real producer and readers are tested on the broker in
tests/integration/test_gateway.py and tests/integration/test_gateway_review.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import msgspec
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from gateway.app import ROUTES, create_app
from gateway.cursor import Seen, decode_cursor, encode_cursor
from gateway.errors import UnavailableError
from gateway.keys import KeyStore, add_key
from gateway.produce import Acked, OutRecord, Producer
from gateway.receipts import ReceiptReader
from gateway.reviews import ReviewResults
from schemas.ceb_xml import encode_message
from schemas.codec import encode_json
from schemas.reviews import ReviewRefusal, ReviewResult, decode_review
from streams.settings import Settings
from tests.factories import as_bytes, order, order_dict, payment_dict

SETTINGS = Settings(
    topic_prefix="t.",
    max_message_bytes=64 * 1024,
    gateway_review_wait=0.3,
    gateway_ack_timeout=0.3,
)
JSON = {"Content-Type": "application/json"}
XML = {"Content-Type": "application/xml"}


class FakeProducer(Producer):
    """Acks every record at the next offset of its partition, or raises what it is told."""

    def __init__(self) -> None:
        super().__init__(SETTINGS)
        self.sent: list[OutRecord] = []
        self.fail: UnavailableError | None = None
        self.connected = True
        self.on_review: Callable[[OutRecord], None] | None = None  # a worker, if any

    def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, records: Any) -> list[Acked]:
        if self.fail is not None:
            raise self.fail
        acked = []
        for record in records:
            acked.append(Acked(record.topic, 1, len(self.sent)))
            self.sent.append(record)
            if record.topic == "t.review" and self.on_review is not None:
                self.on_review(record)  # the result comes before the ack returns
        return acked

    async def partition_count(self, topic: str) -> int:
        return 4


class FakeReceipts(ReceiptReader):
    def __init__(self) -> None:
        super().__init__(SETTINGS, FakeProducer().partition_count)
        self.calls: list[tuple[list[str], dict[int, int], int, float]] = []

    def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def read(
        self, codes: Any, cursor: dict[int, int], limit: int, wait: float
    ) -> tuple[list[Seen], dict[int, int]]:
        self.calls.append((list(codes), cursor, limit, wait))
        page = [
            Seen(1, 5, 0, "application/json", b'{"returnStatus": "120"}'),
            Seen(1, 6, 0, "application/xml", b"<CEB312Message/>"),
        ]
        return page, {**cursor, 1: 7}


class FakeReviews(ReviewResults):
    """The real waiting; the tail is ready at once and reads nothing."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, FakeProducer().partition_count)

    def start(self) -> None:
        self.tail.ready.set()

    async def close(self) -> None:
        self.wake_all()

    def answer(
        self,
        record: OutRecord,
        code: ReviewRefusal | None = None,
        detail: str = "released",
    ) -> None:
        """What a worker puts on cbec.review-result for the review in ``record``."""
        review = decode_review(record.value, 64 * 1024)
        decision: Literal["RELEASE"] | None = None if code else "RELEASE"
        result = ReviewResult.of(
            review, "2026-12-03T09:00:00.000Z", detail, code, decision, 2 if decision else None
        )
        self.on_record(SimpleNamespace(value=encode_json(result), partition=0, offset=0))


class Gateway:
    def __init__(self, client: ClientSession, base: str, producer: FakeProducer) -> None:
        self.client = client
        self.base = base
        self.producer = producer
        self.receipts: FakeReceipts
        self.reviews: FakeReviews

    async def request(
        self, method: str, path: str, *, key: str | None = None, **kwargs: Any
    ) -> tuple[int, Any, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        async with self.client.request(method, self.base + path, headers=headers, **kwargs) as r:
            body = await r.read()
            try:
                parsed: Any = json.loads(body)
            except ValueError:
                parsed = body.decode()
            return r.status, parsed, r.headers


KEYS: dict[str, str] = {}


def run_gateway(
    tmp_path: Path, test: Callable[[Gateway], Awaitable[None]], settings: Settings = SETTINGS
) -> None:
    path = tmp_path / "keys.json"
    if not path.exists():
        KEYS["platform"] = add_key(path, "platform", ["3301980ABC"])
        KEYS["pay"] = add_key(path, "pay", ["4403169D3W"])
        KEYS["officer"] = add_key(path, "officer-7", [], roles=["reviewer"])

    async def main() -> None:
        producer = FakeProducer()
        receipts = FakeReceipts()
        reviews = FakeReviews(settings)
        app = create_app(
            settings, KeyStore.load(path), producer=producer, receipts=receipts, reviews=reviews
        )
        server = TestServer(app)
        await server.start_server()
        try:
            async with ClientSession() as client:
                gateway = Gateway(client, str(server.make_url("")).rstrip("/"), producer)
                gateway.receipts = receipts
                gateway.reviews = reviews
                await test(gateway)
        finally:
            await server.close()

    asyncio.run(main())


def test_202_carries_where_each_document_went(tmp_path: Path) -> None:
    first, second = as_bytes(order_dict(orderNo="A1")), as_bytes(order_dict(orderNo="A2"))

    async def test(gw: Gateway) -> None:
        status, body, _ = await gw.request(
            "POST",
            "/v1/orders",
            key=KEYS["platform"],
            data=b"[" + first + b",\n" + second + b"]",
            headers=JSON,
        )
        assert status == 202
        guid = order_dict()["guid"]
        assert body == {
            "accepted": [
                {"guid": guid, "topic": "t.order", "partition": 1, "offset": 0},
                {"guid": guid, "topic": "t.order", "partition": 1, "offset": 1},
            ]
        }
        assert [(r.topic, r.key, r.value) for r in gw.producer.sent] == [
            ("t.order", b"A1", first),
            ("t.order", b"A2", second),
        ]
        assert gw.producer.sent[0].headers == [("content-type", b"application/json")]

    run_gateway(tmp_path, test)


def test_an_xml_message_is_one_record_and_one_entry_per_node(tmp_path: Path) -> None:
    xml = encode_message(
        "order", [order(orderNo="X1", guid="G" * 36), order(orderNo="X2")], cop_code="3301980ABC"
    )

    async def test(gw: Gateway) -> None:
        status, body, _ = await gw.request(
            "POST",
            "/v1/messages",
            key=KEYS["platform"],
            data=xml,
            headers={"Content-Type": "text/xml; charset=utf-8"},
        )
        assert status == 202
        (record,) = gw.producer.sent
        assert (record.topic, record.key, record.value) == ("t.order", b"X1", xml)
        assert record.headers == [("content-type", b"application/xml")]
        message_guid = body["accepted"][0]["messageGuid"]
        assert len(message_guid) == 36
        assert body["accepted"] == [
            {
                "guid": "G" * 36,
                "topic": "t.order",
                "partition": 1,
                "offset": 0,
                "messageGuid": message_guid,
            },
            {
                "guid": order_dict()["guid"],
                "topic": "t.order",
                "partition": 1,
                "offset": 0,
                "messageGuid": message_guid,
            },
        ]

    run_gateway(tmp_path, test)


def test_checks_run_in_order_and_refuse_whole(tmp_path: Path) -> None:
    bad = as_bytes(order_dict(orderNo="X" * 61))
    foreign = as_bytes(order_dict(ebpCode="OTHER", ebcCode="OTHER"))

    async def test(gw: Gateway) -> None:
        # 401 before anything else, even with a wrong type and a bad body.
        status, body, headers = await gw.request("POST", "/v1/orders", data=b"x")
        assert (status, body) == (
            401,
            {
                "error": "unauthorized",
                "detail": "no key: send the header Authorization: Bearer <key>",
            },
        )
        assert headers["WWW-Authenticate"] == 'Bearer realm="sandan"'
        status, body, _ = await gw.request("POST", "/v1/orders", key="nope", data=b"x")
        assert (status, body["detail"]) == (401, "unknown key")
        status, body, _ = await gw.request(
            "POST", "/v1/orders", data=b"x", headers={"Authorization": "Basic abc"}
        )
        assert (status, body["detail"]) == (401, "expected the header Authorization: Bearer <key>")
        # 415: the body is not read.
        status, body, _ = await gw.request(
            "POST", "/v1/orders", key=KEYS["platform"], data=b"<a/>", headers=XML
        )
        assert status == 415
        assert body == {
            "error": "unsupported media type",
            "detail": "Content-Type application/xml is not accepted here: expected "
            "application/json; CEB XML messages go to POST /v1/messages",
        }
        status, _, _ = await gw.request(
            "POST", "/v1/messages", key=KEYS["platform"], data=b"{}", headers=JSON
        )
        assert status == 415
        # 413 from the Content-Length, and from a chunked body.
        big = b"[" + b" " * (64 * 1024) + b"]"
        status, body, _ = await gw.request(
            "POST", "/v1/orders", key=KEYS["platform"], data=big, headers=JSON
        )
        assert (status, body["error"]) == (413, "payload too large")
        assert body["detail"] == (
            f"the body of {len(big)} bytes exceeds the limit of 65536 bytes "
            "(SANDAN_MAX_MESSAGE_BYTES)"
        )

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b" " * 4096

        status, body, _ = await gw.request(
            "POST", "/v1/orders", key=KEYS["platform"], data=chunks(), headers=JSON
        )
        assert (status, body["error"]) == (413, "payload too large")
        # 400 for invalid documents (even foreign ones), then 403.
        status, body, _ = await gw.request(
            "POST",
            "/v1/orders",
            key=KEYS["platform"],
            data=b"[" + foreign + b"," + bad + b"]",
            headers=JSON,
        )
        assert status == 400
        assert [d["index"] for d in body["documents"]] == [1]
        status, body, _ = await gw.request(
            "POST",
            "/v1/orders",
            key=KEYS["pay"],
            data=b"[" + as_bytes(order_dict()) + b"]",
            headers=JSON,
        )
        assert status == 403
        assert body["documents"] == [
            {"index": 0, "codes": {"ebpCode": "3301980ABC", "ebcCode": "3301960XYZ"}}
        ]
        status, body, _ = await gw.request(
            "POST", "/v1/payments", key=KEYS["pay"], data=as_bytes(payment_dict()), headers=JSON
        )
        assert status == 202
        assert len(gw.producer.sent) == 1  # only the 202 produced

    run_gateway(tmp_path, test)


def test_400_shapes(tmp_path: Path) -> None:
    async def post(gw: Gateway, path: str, data: bytes, headers: dict[str, str]) -> Any:
        status, body, _ = await gw.request(
            "POST", path, key=KEYS["platform"], data=data, headers=headers
        )
        assert status == 400
        return body

    async def test(gw: Gateway) -> None:
        assert await post(gw, "/v1/orders", b"[]", JSON) == {
            "error": "bad request",
            "detail": "the array is empty: expected 1 to 100 documents",
        }
        assert (await post(gw, "/v1/orders", b"{", JSON))["error"] == "not JSON"
        assert (await post(gw, "/v1/messages", b"{}", XML))["error"] == "not XML"
        assert (await post(gw, "/v1/messages", b"<CEB621Message/>", XML))[
            "error"
        ] == "unknown message"
        body = await post(gw, "/v1/messages", b"<CEB311Message><x/></CEB311Message>", XML)
        assert body["error"] == "invalid message"
        assert body["detail"].endswith(" - at `$`")
        body = await post(
            gw, "/v1/messages", b'<!DOCTYPE a [<!ENTITY e "x">]><CEB311Message/>', XML
        )
        assert body["error"] == "invalid message"  # the detail is schemas.ceb_xml's
        assert "DOCTYPE" in body["detail"]
        assert gw.producer.sent == []

    run_gateway(tmp_path, test)


def test_503_says_when_to_retry_and_that_a_retry_is_safe(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        gw.producer.fail = UnavailableError(
            "the broker did not acknowledge every record within 3 s", 5
        )
        status, body, headers = await gw.request(
            "POST", "/v1/payments", key=KEYS["pay"], data=as_bytes(payment_dict()), headers=JSON
        )
        assert status == 503
        assert headers["Retry-After"] == "5"
        assert body == {
            "error": "unavailable",
            "detail": "the broker did not acknowledge every record within 3 s; sending the same "
            "documents again is safe: sandan drops a document whose guid it has already seen",
            "retryAfter": 5,
            "retrySafe": True,
        }
        gw.producer.connected, gw.producer.reason = False, "broker unreachable: refused"
        status, body, _ = await gw.request("GET", "/healthz")
        assert (status, body) == (
            503,
            {
                "status": "unavailable",
                "broker": "unreachable",
                "detail": "broker unreachable: refused",
            },
        )
        gw.producer.connected = True
        status, body, _ = await gw.request("GET", "/healthz")
        assert (status, body) == (200, {"status": "ok", "broker": "connected"})

    run_gateway(tmp_path, test)


def test_404_405_and_metrics_labels(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        status, body, _ = await gw.request("GET", "/v1/orders/../secret?x=1")
        assert (status, body) == (
            404,
            {"error": "not found", "detail": "no such route; see /openapi.json"},
        )
        status, body, headers = await gw.request("GET", "/v1/orders")
        assert (status, body) == (
            405,
            {"error": "method not allowed", "detail": "GET is not allowed here; allowed: POST"},
        )
        assert headers["Allow"] == "POST"
        status, _, _ = await gw.request("DELETE", "/v1/receipts", key=KEYS["pay"])
        assert status == 405
        for n in range(3):
            await gw.request("GET", f"/random/{n}")
        status, text, headers = await gw.request("GET", "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain")
        lines = set(text.splitlines())
        assert (
            'sandan_gateway_requests_total{method="GET",route="unmatched",status="404"} 4.0'
            in lines
        )
        assert (
            'sandan_gateway_requests_total{method="GET",route="/v1/orders",status="405"} 1.0'
            in lines
        )
        assert (
            'sandan_gateway_requests_total{method="DELETE",route="/v1/receipts",status="405"} 1.0'
            in lines
        )
        assert 'sandan_gateway_request_duration_seconds_count{route="unmatched"} 4.0' in lines
        assert "random" not in text

    run_gateway(tmp_path, test)


def test_receipts_query_and_cursor(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        cursor = encode_cursor({1: 3, 2: 9})
        status, body, _ = await gw.request(
            "GET", f"/v1/receipts?cursor={cursor}&wait=2.5&limit=10", key=KEYS["pay"]
        )
        assert status == 200
        assert body["receipts"] == [
            {"contentType": "application/json", "receipt": {"returnStatus": "120"}},
            {"contentType": "application/xml", "receipt": "<CEB312Message/>"},
        ]
        assert decode_cursor(body["cursor"]) == {1: 7, 2: 9}
        assert gw.receipts.calls == [(["4403169D3W"], {1: 3, 2: 9}, 10, 2.5)]
        await gw.request("GET", "/v1/receipts", key=KEYS["pay"])
        assert gw.receipts.calls[-1] == (["4403169D3W"], {}, 100, 0.0)
        for query, detail in [
            ("cursor=nope", "malformed cursor"),
            ("wait=31", "bad request"),
            ("wait=-1", "bad request"),
            ("wait=nan", "bad request"),
            ("limit=0", "bad request"),
            ("limit=1001", "bad request"),
            ("limit=2.5", "bad request"),
            ("limit=x", "bad request"),
        ]:
            status, body, _ = await gw.request("GET", f"/v1/receipts?{query}", key=KEYS["pay"])
            assert (status, body["error"]) == (400, detail), query
        status, _, _ = await gw.request("GET", "/v1/receipts")
        assert status == 401

    run_gateway(tmp_path, test)


def test_openapi_lists_every_route(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        status, document, _ = await gw.request("GET", "/openapi.json")
        assert status == 200
        assert document["openapi"] == "3.1.0"
        for path, method in ROUTES.items():
            operation = document["paths"][path][method.lower()]
            assert operation["responses"]
        schemas = document["components"]["schemas"]
        assert {"Order", "Payment", "Logistics", "OrderLine", "AcceptedBody"} <= set(schemas)
        assert schemas["Order"]["properties"]["orderNo"] == {
            "type": "string",
            "minLength": 1,
            "maxLength": 60,
        }
        statuses = set(document["paths"]["/v1/orders"]["post"]["responses"])
        assert statuses == {"202", "400", "401", "403", "405", "413", "415", "503"}
        review = document["paths"]["/v1/tickets/{ticketId}/review"]["post"]
        assert set(review["responses"]) == {
            *("200", "202", "400", "401", "403", "404", "405", "409", "413", "415", "503")
        }
        assert review["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ReviewBody"
        }
        body = schemas["ReviewBody"]
        assert (body["required"], body["additionalProperties"]) == (
            ["revision", "action", "note"],
            False,
        )
        assert body["properties"] == {
            "reviewId": {"type": "string", "maxLength": 64, "minLength": 1, "pattern": "^[!-~]+$"},
            "revision": {"type": "integer", "minimum": 1},
            "action": {"enum": ["CONFIRM", "RELEASE", "REQUEST_CORRECTION"]},
            "note": {"type": "string", "maxLength": 1000, "minLength": 1},
        }
        assert {"ReviewResult", "ReviewPending"} <= set(schemas)
        assert "Review" not in schemas  # the record: the gateway fills in ticketId and reviewer
        msgspec.json.decode(msgspec.json.encode(document))

    run_gateway(tmp_path, test)


def test_an_unexpected_error_is_a_json_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(self: Any, records: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(FakeProducer, "send", boom)

    async def test(gw: Gateway) -> None:
        status, body, _ = await gw.request(
            "POST", "/v1/payments", key=KEYS["pay"], data=as_bytes(payment_dict()), headers=JSON
        )
        assert (status, body) == (
            500,
            {"error": "internal error", "detail": "the gateway failed; see its log"},
        )

    run_gateway(tmp_path, test)


# -- reviews -----------------------------------------------------------------------------------

TICKET = "3301980ABC:SO-1"
REVIEW_PATH = f"/v1/tickets/{TICKET}/review"


def review_body(**fields: Any) -> bytes:
    body = {"revision": 1, "action": "RELEASE", "note": "paid in full, checked", **fields}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def test_a_review_is_produced_and_answered_with_its_result(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        answers: list[tuple[ReviewRefusal | None, str]] = [
            (None, "released"),
            ("STALE_REVISION", "the review names revision 1, but ..."),
            ("UNKNOWN_TICKET", "no ticket 3301980ABC:SO/2: never seen"),
        ]
        gw.producer.on_review = lambda record: gw.reviews.answer(record, *answers.pop(0))
        status, body, _ = await gw.request(
            "POST", REVIEW_PATH, key=KEYS["officer"], data=review_body(reviewId="R-1"), headers=JSON
        )
        assert (status, body) == (
            200,
            {
                "reviewId": "R-1",
                "ticketId": TICKET,
                "revision": 1,
                "action": "RELEASE",
                "reviewer": "officer-7",
                "result": "APPLIED",
                "code": None,
                "detail": "released",
                "decision": "RELEASE",
                "decisionRevision": 2,
                "at": "2026-12-03T09:00:00.000Z",
            },
        )
        (record,) = gw.producer.sent
        assert (record.topic, record.key, record.headers) == (
            "t.review",
            b"SO-1",
            [("content-type", b"application/json")],
        )
        assert json.loads(record.value) == {
            "reviewId": "R-1",
            "ticketId": TICKET,
            "revision": 1,
            "action": "RELEASE",
            "reviewer": "officer-7",  # the key's name
            "note": "paid in full, checked",
        }
        # No reviewId: a fresh uuid4. Refused: 409 with the result.
        status, body, _ = await gw.request(
            "POST", REVIEW_PATH, key=KEYS["officer"], data=review_body(), headers=JSON
        )
        assert (status, body["result"], body["code"]) == (409, "REFUSED", "STALE_REVISION")
        assert (body["decision"], body["decisionRevision"]) == (None, None)
        produced = json.loads(gw.producer.sent[-1].value)
        assert uuid.UUID(produced["reviewId"]).version == 4
        assert body["reviewId"] == produced["reviewId"]
        # UNKNOWN_TICKET: 404 with the result; an orderNo with a slash, percent-encoded.
        status, body, _ = await gw.request(
            "POST",
            "/v1/tickets/3301980ABC:SO%2F2/review",
            key=KEYS["officer"],
            data=review_body(action="CONFIRM"),
            headers=JSON,
        )
        assert (status, body["code"], body["ticketId"]) == (
            404,
            "UNKNOWN_TICKET",
            "3301980ABC:SO/2",
        )
        assert gw.producer.sent[-1].key == b"SO/2"
        assert gw.reviews.waiting == 0

    run_gateway(tmp_path, test)


def test_review_checks_run_in_order_and_a_refused_review_produces_nothing(tmp_path: Path) -> None:
    async def post(
        gw: Gateway, data: bytes, key: str | None = None, path: str = REVIEW_PATH
    ) -> tuple[int, Any]:
        status, body, _ = await gw.request(
            "POST", path, key=KEYS["officer"] if key is None else key, data=data, headers=JSON
        )
        return status, body

    async def test(gw: Gateway) -> None:
        status, body, _ = await gw.request("POST", REVIEW_PATH, data=b"x", headers=XML)
        assert (status, body["error"]) == (401, "unauthorized")
        status, body, _ = await gw.request(
            "POST", REVIEW_PATH, key=KEYS["officer"], data=review_body(), headers=XML
        )
        assert (status, body) == (
            415,
            {
                "error": "unsupported media type",
                "detail": "Content-Type application/xml is not accepted here: expected "
                "application/json",
            },
        )
        status, body = await post(gw, b" " * (64 * 1024 + 1))
        assert (status, body["error"]) == (413, "payload too large")
        invalid = [
            (
                review_body(),
                "/v1/tickets/no-colon/review",
                "invalid ticket id",
                "not a ticket id: 'no-colon' (expected {ebpCode}:{orderNo})",
            ),
            (b"{", REVIEW_PATH, "not JSON", "the body is not JSON: Input data was truncated"),
            (
                b"[]",
                REVIEW_PATH,
                "invalid review",
                "the body is not a review: Expected `object`, got `array`",
            ),
            (
                review_body(reviewer="someone else"),
                REVIEW_PATH,
                "invalid review",
                "unknown field `reviewer`: a review holds revision, action, note and optionally "
                "reviewId (the ticket is the path's, the reviewer the key's name)",
            ),
            (
                review_body(action="APPROVE"),
                REVIEW_PATH,
                "invalid review",
                "Invalid enum value 'APPROVE' - at `$.action`",
            ),
            (
                review_body(revision=0),
                REVIEW_PATH,
                "invalid review",
                "Expected `int` >= 1 - at `$.revision`",
            ),
            (
                review_body(note="x" * 1001),
                REVIEW_PATH,
                "invalid review",
                "Expected `str` of length <= 1000 - at `$.note`",
            ),
            (
                review_body(reviewId="has space"),
                REVIEW_PATH,
                "invalid review",
                "Expected `str` matching regex '^[!-~]+$' - at `$.reviewId`",
            ),
            (
                b'{"revision": 1, "action": "CONFIRM"}',
                REVIEW_PATH,
                "invalid review",
                "Object missing required field `note`",
            ),
        ]
        for data, path, error, detail in invalid:
            # 400 before 403: a declarer's invalid review is a 400 too.
            for key in (KEYS["officer"], KEYS["platform"]):
                assert await post(gw, data, key, path) == (
                    400,
                    {"error": error, "detail": detail},
                ), data
        status, body = await post(gw, review_body(), KEYS["platform"])
        assert (status, body) == (
            403,
            {
                "error": "forbidden",
                "detail": "the key 'platform' does not have the role reviewer to act on tickets",
            },
        )
        assert gw.producer.sent == []
        assert gw.reviews.waiting == 0

    run_gateway(tmp_path, test)


def test_a_review_without_a_result_in_time_is_202_pending(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        status, body, _ = await gw.request(
            "POST", REVIEW_PATH, key=KEYS["officer"], data=review_body(reviewId="R-9"), headers=JSON
        )
        assert (status, body) == (
            202,
            {
                "reviewId": "R-9",
                "status": "PENDING",
                "detail": "no result within 0.3 s (SANDAN_GATEWAY_REVIEW_WAIT): the review is "
                "on t.review and will be applied; its result will be on t.review-result",
            },
        )
        assert len(gw.producer.sent) == 1
        assert gw.reviews.waiting == 0

    run_gateway(tmp_path, test)


def test_a_shutdown_answers_the_waiting_reviews_pending(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        produced = asyncio.Event()
        gw.producer.on_review = lambda record: produced.set()
        request = asyncio.ensure_future(
            gw.request("POST", REVIEW_PATH, key=KEYS["officer"], data=review_body(), headers=JSON)
        )
        async with asyncio.timeout(5):
            await produced.wait()
            assert gw.reviews.waiting == 1
            gw.reviews.wake_all()
            status, body, _ = await request
        assert (status, body["status"]) == (202, "PENDING")

    run_gateway(tmp_path, test, msgspec.structs.replace(SETTINGS, gateway_review_wait=60.0))


def test_concurrent_requests_of_one_review_get_its_first_result(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        held: list[OutRecord] = []

        def worker(record: OutRecord) -> None:
            held.append(record)
            if len(held) == 2:  # both requests wait: the first review's result, then the second's
                gw.reviews.answer(held[0])
                gw.reviews.answer(held[1], "DUPLICATE_REVIEW", "review R-2 was handled")

        gw.producer.on_review = worker
        replies = await asyncio.gather(
            *(
                gw.request(
                    "POST",
                    REVIEW_PATH,
                    key=KEYS["officer"],
                    data=review_body(reviewId="R-2"),
                    headers=JSON,
                )
                for _ in range(2)
            )
        )
        assert [(status, body["result"]) for status, body, _ in replies] == [(200, "APPLIED")] * 2
        assert gw.reviews.waiting == 0

    run_gateway(tmp_path, test)


def test_a_review_the_broker_cannot_take_is_503(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        gw.producer.fail = UnavailableError("the broker is unreachable (refused)", 5)
        status, body, headers = await gw.request(
            "POST", REVIEW_PATH, key=KEYS["officer"], data=review_body(), headers=JSON
        )
        assert (status, headers["Retry-After"]) == (503, "5")
        assert body == {
            "error": "unavailable",
            "detail": "the broker is unreachable (refused); sending the same review again with "
            "the same reviewId is safe: a ticket applies a review id once",
            "retryAfter": 5,
            "retrySafe": True,
        }
        assert gw.reviews.waiting == 0
        gw.producer.fail = None
        gw.reviews.tail.ready.clear()  # the results' tail has not reached the broker
        status, body, _ = await gw.request(
            "POST", REVIEW_PATH, key=KEYS["officer"], data=review_body(), headers=JSON
        )
        assert (status, body["detail"].split(";")[0]) == (
            503,
            "the review results cannot be read now (t.review-result)",
        )
        assert gw.producer.sent == []

    run_gateway(tmp_path, test)


def test_roles_the_declaring_routes_need(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        status, body, _ = await gw.request(
            "POST", "/v1/orders", key=KEYS["officer"], data=as_bytes(order_dict()), headers=JSON
        )
        assert (status, body) == (
            403,
            {
                "error": "forbidden",
                "detail": "the key 'officer-7' does not have the role declarer to declare "
                "documents",
            },
        )
        xml = encode_message("order", [order()], cop_code="3301980ABC")
        status, _, _ = await gw.request(
            "POST", "/v1/messages", key=KEYS["officer"], data=xml, headers=XML
        )
        assert status == 403
        status, body, _ = await gw.request("GET", "/v1/receipts", key=KEYS["officer"])
        assert (status, body["detail"]) == (
            403,
            "the key 'officer-7' does not have the role declarer to read receipts",
        )
        assert gw.producer.sent == []
        assert gw.receipts.calls == []

    run_gateway(tmp_path, test)


def test_the_review_route_counts_by_its_template(tmp_path: Path) -> None:
    async def test(gw: Gateway) -> None:
        gw.producer.on_review = gw.reviews.answer
        for n in range(3):
            path = f"/v1/tickets/3301980ABC:SECRET-{n}/review"
            status, _, _ = await gw.request(
                "POST", path, key=KEYS["officer"], data=review_body(), headers=JSON
            )
            assert status == 200
        status, body, headers = await gw.request("GET", "/v1/tickets/3301980ABC:SECRET-9/review")
        assert (status, headers["Allow"]) == (405, "POST")
        assert body == {
            "error": "method not allowed",
            "detail": "GET is not allowed here; allowed: POST",
        }
        _, text, _ = await gw.request("GET", "/metrics")
        lines = set(text.splitlines())
        route = "/v1/tickets/{ticketId}/review"
        assert (
            f'sandan_gateway_requests_total{{method="POST",route="{route}",status="200"}} 3.0'
            in lines
        )
        assert (
            f'sandan_gateway_requests_total{{method="GET",route="{route}",status="405"}} 1.0'
            in lines
        )
        assert "SECRET" not in text

    run_gateway(tmp_path, test)
