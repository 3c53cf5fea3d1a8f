"""CEB XML messages (schemas.ceb_xml): the standard's message shapes decode to the documents JSON
gives, node by node; a bad node carries JSON's error; hostile or malformed messages are rejected
whole before or while parsing, with the message saying what was expected."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from schemas import ceb_xml
from schemas.ceb_xml import (
    CEB_NAMESPACE,
    MAX_DEPTH,
    MAX_NODES,
    MESSAGE_ROOTS,
    Message,
    Node,
    decode_message,
    encode_message,
    is_xml,
)
from schemas.codec import decode_document, encode_json
from schemas.documents import DOC_TYPES, DOCUMENT_TYPES, DocType, Document, Order, OrderLine
from schemas.errors import SchemaError
from schemas.fields import Amount
from tests.factories import DROP, as_bytes, logistics_dict, order_dict, payment_dict

MAX_BYTES = 262144
DICTS = {"order": order_dict, "payment": payment_dict, "logistics": logistics_dict}
NODES = {"order": "Order", "payment": "Payment", "logistics": "Logistics"}
GUID = "4CDE1CFD-EDED-46B1-946C-B8022E42FC94"
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'  # 39 bytes
TRANSFER = """\t<ceb:BaseTransfer>
\t\t<ceb:copCode>1101180326</ceb:copCode>
\t\t<ceb:copName>物流企业</ceb:copName>
\t\t<ceb:dxpMode>DXP</ceb:dxpMode>
\t\t<ceb:dxpId>EXP2016522002580001</ceb:dxpId>
\t\t<ceb:note>test</ceb:note>
\t</ceb:BaseTransfer>
"""
SUBSCRIBE = """\t<ceb:BaseSubscribe>
\t\t<ceb:status>ALL</ceb:status>
\t\t<ceb:dxpMode>DXP</ceb:dxpMode>
\t\t<ceb:dxpAddress>DXPENT0000000001</ceb:dxpAddress>
\t</ceb:BaseSubscribe>
"""
EXTEND = """\t<ceb:ExtendMessage>
\t\t<ceb:name>custom</ceb:name>
\t\t<ceb:version>1.0</ceb:version>
\t\t<ceb:Message><shop xmlns="urn:example:shop" id="7"><a><b>x &amp; y<![CDATA[<z>]]></b><c/>
\t\t</a><plain xmlns=""><Order>not a node</Order></plain><!-- note --><?pi data?></shop>
\t\t</ceb:Message>
\t</ceb:ExtendMessage>
"""
SIGNATURE = """<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
<ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>
<ds:SignatureMethod Algorithm="http://www.chinaport.gov.cn/2022/04/xmldsig#sm2-sm3"/>
<ds:Reference URI="">
<ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116">
<ds:XPath>not(ancestor-or-self::ds:Signature)</ds:XPath>
</ds:Transform>
</ds:Transforms>
<ds:DigestMethod Algorithm="http://www.chinaport.gov.cn/2022/04/xmldsig#sm3"/>
<ds:DigestValue>SF/P+2sVsRQ9dJIqJSroW6ajb0Y=</ds:DigestValue>
</ds:Reference>
</ds:SignedInfo>
<ds:SignatureValue>AI0wdcUHaaOR+FZ7W8lN6FrjzS+iru1qoBTCxm4S6kn=</ds:SignatureValue>
<ds:KeyInfo><ds:KeyName>0001</ds:KeyName></ds:KeyInfo>
</ds:Signature>
"""


def node_xml(doc_type: DocType, document: dict[str, Any]) -> str:
    """One business node, laid out as the official samples are (tabs, one field a line)."""

    def fields(values: dict[str, Any]) -> str:
        return "".join(
            f"\t\t\t<ceb:{name}>{escape(str(value))}</ceb:{name}>\n"
            for name, value in values.items()
            if value is not None and name != "orderList"
        )

    node = NODES[doc_type]
    lines = "".join(
        f"\t\t<ceb:OrderList>\n{fields(line)}\t\t</ceb:OrderList>\n"
        for line in document.get("orderList", [])
    )
    head = f"\t\t<ceb:{node}Head>\n{fields(document)}\t\t</ceb:{node}Head>\n"
    return f"\t<ceb:{node}>\n{head}{lines}\t</ceb:{node}>"


def message_xml(
    doc_type: DocType,
    documents: list[dict[str, Any]],
    *,
    prefixed: bool = True,
    declaration: bool = True,
    root: str | None = None,
    namespace: str = CEB_NAMESPACE,
    guid: str | None = GUID,
    transfer: str = TRANSFER,
    extras: str = "",
) -> bytes:
    """A message in the official samples' layout; ``extras`` follow BaseTransfer."""
    root = root or MESSAGE_ROOTS[doc_type]
    nodes = "".join(node_xml(doc_type, document) + "\n" for document in documents)
    body = f"{nodes}{transfer}{extras}"
    xmlns = f'xmlns:ceb="{namespace}"' if prefixed else f'xmlns="{namespace}"'
    attributes = "" if guid is None else f' guid="{guid}"'
    text = (
        f'{DECLARATION if declaration else ""}<ceb:{root}{attributes} version="1.0"\n'
        f"                   {xmlns}>\n{body}</ceb:{root}>\n"
    )
    return (text if prefixed else text.replace("ceb:", "")).encode()


def documents_of(doc_type: DocType, *dicts: dict[str, Any]) -> list[Document]:
    return [decode_document(doc_type, as_bytes(document)) for document in dicts]


def reject(doc_type: DocType, raw: bytes | None, max_bytes: int = MAX_BYTES) -> str:
    with pytest.raises(SchemaError) as info:
        decode_message(doc_type, raw, max_bytes)
    assert info.value.code == "SCHEMA"
    return info.value.detail


def json_error(doc_type: DocType, document: dict[str, Any]) -> str:
    with pytest.raises(SchemaError) as info:
        decode_document(doc_type, as_bytes(document))
    return info.value.detail


def node_errors(doc_type: DocType, raw: bytes) -> list[str | None]:
    return [node.error for node in decode_message(doc_type, raw, MAX_BYTES).nodes]


# --- is_xml ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"<ceb:CEB311Message/>", True),
        (b"<?xml version='1.0'?><a/>", True),
        (b" \t\r\n<a/>", True),
        (b"\xef\xbb\xbf<a/>", True),
        (b"\xef\xbb\xbf\n <a/>", True),
        (b"<", True),
        (b'{"guid": "x"}', False),
        (b' \n{"a": "<b>"}', False),
        (b"[]", False),
        (b"", False),
        (b" \n", False),
        (None, False),
        (b"\xff\xfe<\x00a\x00/\x00>\x00", False),  # UTF-16: not meant as (UTF-8) XML
        (b"\xef\xbb\xbf{}", False),
    ],
)
def test_is_xml(raw, expected):
    assert is_xml(raw) is expected


# --- the official sample shapes ---------------------------------------------------------------


@pytest.mark.parametrize("doc_type", DOC_TYPES)
@pytest.mark.parametrize("prefixed", [True, False])
@pytest.mark.parametrize("declaration", [True, False])
def test_sample_shape_decodes_to_the_json_documents(doc_type, prefixed, declaration):
    first = DICTS[doc_type]()
    second = DICTS[doc_type](guid="4CDE1CFD-EDED-46B1-946C-B8022E42FC95", orderNo="SO2")
    bad = DICTS[doc_type](guid=GUID[:-1])  # 35 characters: an invalid node
    extras = SUBSCRIBE + SUBSCRIBE + EXTEND + SIGNATURE
    raw = message_xml(
        doc_type, [first, second, bad], prefixed=prefixed, declaration=declaration, extras=extras
    )
    assert is_xml(raw)
    message = decode_message(doc_type, raw, MAX_BYTES)
    expected = documents_of(doc_type, first, second)
    assert (message.doc_type, message.guid, message.cop_code) == (doc_type, GUID, "1101180326")
    assert [(node.index, node.document, node.error) for node in message.nodes] == [
        (1, expected[0], None),
        (2, expected[1], None),
        (3, None, "node 3: Expected `str` of length >= 36 - at `$.guid`"),
    ]
    assert all(type(node.document) is DOCUMENT_TYPES[doc_type] for node in message.nodes[:2])
    # A valid node carries no XML (its document is all that goes on); an invalid one carries
    # the node element as it came, with its namespace declaration, for its rejection.
    assert [node.xml for node in message.nodes[:2]] == [b"", b""]
    start = f"<ceb:{NODES[doc_type]}>"
    declared = f'<ceb:{NODES[doc_type]} xmlns:ceb="{CEB_NAMESPACE}">'
    text = node_xml(doc_type, bad).lstrip("\t").replace(start, declared, 1)
    if not prefixed:
        text = text.replace("ceb:", "").replace("xmlns:ceb", "xmlns")
    assert message.nodes[2].xml == text.encode()
    assert etree.QName(etree.fromstring(message.nodes[2].xml)).localname == NODES[doc_type]


def test_sample_values_the_standard_gives():
    """The official CEB311 sample's values (its second line breaks qty x price; rules' business)."""
    lines = [
        {"gnum": 1, "itemNo": "AF001-001", "itemName": "b", "gmodel": "33mm", "itemDescribe": "v"}
        | {"barCode": "2345123", "unit": "007", "qty": "100", "price": "20"}
        | {"totalPrice": "2000", "currency": "142", "country": "116", "note": ""},
    ]
    sample = order_dict(goodsValue="14000", freight="5000", taxTotal="50", acturalPaid="19050")
    sample.update(consigneeDistrict="072750", note="test", orderList=lines)
    (node,) = decode_message("order", message_xml("order", [sample]), MAX_BYTES).nodes
    assert isinstance(node.document, Order)
    assert node.document.acturalPaid == Amount("19050")
    assert node.document.orderList[0].note == ""  # <ceb:note></ceb:note>
    assert node.document.orderList[0].gnum == 1
    assert node.document == decode_document("order", as_bytes(sample))


def test_text_is_read_as_xml_defines_it():
    raw = message_xml("order", [order_dict(note="placeholder")]).replace(
        b">placeholder<", b"> a &amp; b<!-- gone --><![CDATA[ <c> ]]>&#x4E2D;&#20013;\t<"
    )
    (node,) = decode_message("order", raw, MAX_BYTES).nodes
    assert isinstance(node.document, Order)
    assert node.document.note == " a & b <c> 中中\t"


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_elements_that_are_no_fields_are_ignored(doc_type):
    """Like unknown JSON fields: the standard's local extensions, other namespaces."""
    head = f"<ceb:{NODES[doc_type]}Head>"
    raw = message_xml(doc_type, [DICTS[doc_type]()]).replace(
        head.encode(),
        f"{head}<ceb:isBuyAndPut>1</ceb:isBuyAndPut><ceb:areaId><x>1</x></ceb:areaId>"
        f'<o:orderNo xmlns:o="urn:other">other</o:orderNo>'
        "<ceb:orderList>x</ceb:orderList>".encode(),
    )
    raw = raw.replace(b"</ceb:BaseTransfer>", b"<ceb:extra>1</ceb:extra></ceb:BaseTransfer>")
    (node,) = decode_message(doc_type, raw, MAX_BYTES).nodes
    assert node.document == documents_of(doc_type, DICTS[doc_type]())[0]


@pytest.mark.parametrize(
    "extra",
    [
        "<ceb:isBuyAndPut>1</ceb:isBuyAndPut>",  # one unknown element: the fast path
        "<ceb:isBuyAndPut>1</ceb:isBuyAndPut><ceb:areaId>2</ceb:areaId>",  # two: read one by one
        '<o:isBuyAndPut xmlns:o="urn:o">1</o:isBuyAndPut>',
    ],
)
def test_one_or_more_unknown_elements(extra):
    raw = message_xml("order", [order_dict(), order_dict()])
    raw = raw.replace(b"<ceb:orderNo>", extra.encode() + b"<ceb:orderNo>", 1)
    raw = raw.replace(b"<ceb:unit>", extra.encode() + b"<ceb:unit>", 1)
    expected = documents_of("order", order_dict())[0]
    assert [n.document for n in decode_message("order", raw, MAX_BYTES).nodes] == [expected] * 2


def test_a_field_in_another_namespace_is_not_the_field():
    raw = message_xml("order", [order_dict()]).replace(
        b"<ceb:orderNo>SO20261124000001</ceb:orderNo>",
        b'<o:orderNo xmlns:o="urn:other">SO20261124000001</o:orderNo>',
    )
    assert node_errors("order", raw) == ["node 1: Object missing required field `orderNo`"]


def test_empty_elements_are_empty_strings():
    raw = message_xml("order", [order_dict(note="x", ebpName="x")])
    raw = raw.replace(b"<ceb:note>x</ceb:note>", b"<ceb:note/>")
    assert node_errors("order", raw.replace(b">x<", b"><")) == [
        "node 1: Expected `str` of length >= 1 - at `$.ebpName`"
    ]
    (node,) = decode_message("order", raw.replace(b">x<", b">Platform<"), MAX_BYTES).nodes
    assert isinstance(node.document, Order)
    assert (node.document.note, node.document.ebpName) == ("", "Platform")


# --- several nodes, good and bad ------------------------------------------------------------


def test_good_and_bad_nodes_in_one_message():
    good = documents_of("order", order_dict())[0]
    nodes = [
        good,
        msgspec.structs.replace(good, orderNo="X" * 61),
        msgspec.structs.replace(good, guid="4CDE1CFD-EDED-46B1-946C-B8022E42FC97"),
        msgspec.structs.replace(good, ebpName=None),  # omitted: a missing field
        msgspec.structs.replace(good, currency="143"),
    ]
    message = decode_message("order", encode_message("order", nodes, cop_code="C1"), MAX_BYTES)
    assert [(node.index, node.error) for node in message.nodes] == [
        (1, None),
        (2, "node 2: Expected `str` of length <= 60 - at `$.orderNo`"),
        (3, None),
        (4, "node 4: Object missing required field `ebpName`"),
        (5, "node 5: Invalid enum value '143' - at `$.currency`"),
    ]
    assert [node.document for node in message.nodes] == [good, None, nodes[2], None, None]
    assert [bool(node.xml) for node in message.nodes] == [False, True, False, True, True]
    assert b"X" * 61 in message.nodes[1].xml
    assert message.nodes[1].xml.startswith(f'<ceb:Order xmlns:ceb="{CEB_NAMESPACE}">'.encode())


@pytest.mark.parametrize(
    ("edits", "error"),
    [
        (
            [(b"<ceb:OrderHead>", b"<ceb:Head>"), (b"</ceb:OrderHead>", b"</ceb:Head>")],
            "expected one OrderHead element, got none - at `$`",
        ),
        (
            [(b"</ceb:OrderHead>", b"</ceb:OrderHead><ceb:OrderHead/>")],
            "expected one OrderHead element, got more - at `$`",
        ),
        (
            [(b"<ceb:orderNo>", b"<ceb:orderNo>SO1</ceb:orderNo><ceb:orderNo>")],
            "expected one `orderNo` element, got 2 - at `$.orderNo`",
        ),
        (
            [(b"<ceb:orderNo>SO", b"<ceb:orderNo>SO<b>1</b>")],
            "expected text, got child elements - at `$.orderNo`",
        ),
        (
            [(b"<ceb:qty>1</ceb:qty>", b"<ceb:qty>1</ceb:qty><ceb:qty>2</ceb:qty>")],
            "expected one `qty` element, got 2 - at `$.orderList[1].qty`",
        ),
        (
            [("<ceb:itemName>面膜".encode(), "<ceb:itemName>面<i/>膜".encode())],
            "expected text, got child elements - at `$.orderList[1].itemName`",
        ),
    ],
)
def test_node_structure_errors(edits, error):
    """In the first of two orders; the second stays good."""
    raw = message_xml("order", [order_dict(), order_dict()])
    for old, new in edits:
        assert old in raw
        raw = raw.replace(old, new, 1)
    assert node_errors("order", raw) == [f"node 1: {error}", None]


@pytest.mark.parametrize("doc_type", ["payment", "logistics"])
def test_a_node_without_its_head(doc_type):
    head = f"{NODES[doc_type]}Head".encode()
    raw = message_xml(doc_type, [DICTS[doc_type]()] * 2).replace(head, b"OrderHead", 2)
    assert node_errors(doc_type, raw) == [
        f"node 1: expected one {head.decode()} element, got none - at `$`",
        None,
    ]


def test_order_lines_count_as_in_json():
    no_lines = order_dict(orderList=[])
    assert node_errors("order", message_xml("order", [no_lines])) == [
        "node 1: expected 1 to 99 goods lines, got 0 - at `$.orderList`"
    ]
    line = order_dict()["orderList"][0]
    many = order_dict(orderList=[line | {"gnum": gnum} for gnum in range(1, 101)])
    assert json_error("order", many) == "Expected `int` <= 99 - at `$.orderList[99].gnum`"
    assert node_errors("order", message_xml("order", [many])) == [
        "node 1: Expected `int` <= 99 - at `$.orderList[99].gnum`"
    ]


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_100_nodes_accepted_and_101_rejected(doc_type):
    documents = documents_of(doc_type, DICTS[doc_type]()) * (MAX_NODES + 1)
    raw = encode_message(doc_type, documents[:MAX_NODES], cop_code="C1")
    message = decode_message(doc_type, raw, 1 << 20)
    assert [node.index for node in message.nodes] == list(range(1, 101))
    assert all(node.document == documents[0] for node in message.nodes)
    too_many = encode_message(doc_type, documents, cop_code="C1")
    assert reject(doc_type, too_many, 1 << 20) == (
        f"expected 1 to 100 {NODES[doc_type]} elements, got 101 - at `$.{NODES[doc_type]}`"
    )
    assert reject(doc_type, message_xml(doc_type, [])) == (
        f"expected 1 to 100 {NODES[doc_type]} elements, got 0 - at `$.{NODES[doc_type]}`"
    )


# --- hostile input, rejected whole ----------------------------------------------------------

VALID = message_xml("order", [order_dict()], declaration=False)
BODY = VALID.decode()
NO_DTD = "expected a CEB message without DTD or entity declarations - at `$`"
BILLION_LAUGHS = (
    '<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
)


@pytest.mark.parametrize(
    "doctype",
    [
        "<!DOCTYPE ceb:CEB311Message>\n",
        '<!DOCTYPE ceb:CEB311Message SYSTEM "http://127.0.0.1:1/ceb.dtd">\n',
        '<!DOCTYPE m [<!ENTITY company "Shop Co.">]>\n',
        '<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n',
        BILLION_LAUGHS,
        '<!DOCTYPE m [<!ENTITY % p SYSTEM "http://127.0.0.1:1/evil.dtd"> %p;]>\n',
        "<!DOCTYPE m [<!ENTITY % p \"<!ENTITY e 'x'>\"> %p;]>\n",
    ],
)
def test_doctype_rejected_before_parsing(doctype, monkeypatch):
    body = BODY.replace(">Shop Co.<", ">&company;<").replace(">王芳张<", ">&xxe;<", 1)
    body = body.replace(">u262283<", ">&lol9;<")
    raw = (DECLARATION + doctype + body).encode()
    parsed = []
    monkeypatch.setattr(etree, "fromstring", lambda *args: parsed.append(args))
    assert reject("order", raw) == f"a DOCTYPE (byte 39): {NO_DTD}"
    assert parsed == []


def test_doctype_anywhere_in_the_bytes_rejected():
    raw = BODY.replace(
        "</ceb:BaseTransfer>", "<ceb:x><!-- <!DOCTYPE --></ceb:x></ceb:BaseTransfer>"
    )
    position = raw.encode().index(b"<!DOCTYPE")
    assert reject("order", raw.encode()) == f"a DOCTYPE (byte {position}): {NO_DTD}"


def test_past_the_byte_check_the_parser_neither_resolves_nor_fetches(monkeypatch):
    """The second guard: were the byte check gone, the parser leaves entities alone and the
    document type found after parsing still rejects the message."""
    raw = (
        '<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + BODY.replace(">王芳张<", ">&xxe;<", 1)
    ).encode()
    tree = etree.fromstring(raw, ceb_xml.PARSER)
    assert b"root:" not in etree.tostring(tree)
    monkeypatch.setattr(ceb_xml, "_checked_bytes", lambda raw, max_bytes: raw)
    assert reject("order", raw) == f"a DOCTYPE: {NO_DTD}"


NOT_UTF8 = "not an XML document in UTF-8"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "empty message: expected one XML document - at `$`"),
        (None, "empty message: expected one XML document - at `$`"),
        (
            VALID.decode().encode("utf-16"),
            f"{NOT_UTF8}: a UTF-16 (little-endian) byte order mark (byte 0) - at `$`",
        ),
        (
            b"\xfe\xff" + VALID.decode().encode("utf-16-be"),
            f"{NOT_UTF8}: a UTF-16 (big-endian) byte order mark (byte 0) - at `$`",
        ),
        (
            VALID.decode().encode("utf-32"),
            f"{NOT_UTF8}: a UTF-32 (little-endian) byte order mark (byte 0) - at `$`",
        ),
        (
            VALID.decode().encode("utf-16-le"),
            f"{NOT_UTF8}: a NUL character, as in UTF-16 or UTF-32 (byte 1) - at `$`",
        ),
        (
            VALID.decode().encode("utf-16-be"),
            f"{NOT_UTF8}: a NUL character, as in UTF-16 or UTF-32 (byte 0) - at `$`",
        ),
        (
            b'<?xml version="1.0" encoding="GBK"?>\n' + BODY.encode("gbk"),
            f"{NOT_UTF8}: the XML declaration names encoding 'GBK' - at `$`",
        ),
        (
            b"<?xml version='1.0' encoding='UTF-16'?>" + VALID,
            f"{NOT_UTF8}: the XML declaration names encoding 'UTF-16' - at `$`",
        ),
        (
            VALID.replace(b"Shop Co.", b"Shop \xff"),
            f"{NOT_UTF8}: invalid start byte (byte {VALID.index(b'Shop Co.') + 5}) - at `$`",
        ),
        (
            VALID.replace(b">Shop Co.<", b">&company;<"),
            "not well-formed XML: Entity 'company' not defined, line 14, column 26 - at `$`",
        ),
        (
            VALID[:-30],
            "not well-formed XML: expected '>', line 64, column 13 - at `$`",
        ),
        (
            b"<a>" * 300 + b"</a>" * 300,
            "not well-formed XML: Excessive depth in document: 256, use XML_PARSE_HUGE option, "
            "line 1, column 771 - at `$`",
        ),
        (
            VALID.replace(b"<ceb:orderNo>", b'<!ENTITY e "x"><ceb:orderNo>'),
            "not well-formed XML: StartTag: invalid element name, line 10, column 5 - at `$`",
        ),
    ],
)
def test_rejected_before_or_while_parsing(raw, detail):
    assert reject("order", raw) == detail


def test_utf8_declarations_and_bom_accepted():
    for start in (b'<?xml version="1.0" encoding="utf-8"?>', b"<?xml version='1.0'?>", b""):
        assert len(decode_message("order", b"\xef\xbb\xbf" + start + VALID, MAX_BYTES).nodes) == 1


@pytest.mark.parametrize("declaration", ceb_xml._UTF8_DECLARATIONS)
def test_the_usual_declarations_skip_the_encoding_regex(declaration):
    """They are taken as UTF-8 without a look at the regex: it would say the same."""
    declared = ceb_xml._DECLARED_ENCODING.match(declaration)
    assert declared is not None
    assert declared[1].lower() in (b"utf-8", b"utf8")
    assert len(decode_message("order", declaration + b"\n" + VALID, MAX_BYTES).nodes) == 1


def test_oversize_rejected():
    assert reject("order", VALID, len(VALID) - 1) == (
        f"message of {len(VALID)} bytes exceeds the limit of {len(VALID) - 1} bytes - at `$`"
    )
    assert len(decode_message("order", VALID, len(VALID)).nodes) == 1


def nested(levels: int) -> str:
    return "<x>" * levels + "deep" + "</x>" * levels


def test_nesting_deeper_than_max_depth_rejected():
    """ExtendMessage/Message content starts at depth 4 (the root is 1)."""
    extend = EXTEND.replace("<c/>", "<c/>" + nested(MAX_DEPTH - 5))  # shop, a: 4, 5; x: 6..12
    message = decode_message(
        "order", message_xml("order", [order_dict()], extras=extend), MAX_BYTES
    )
    assert len(message.nodes) == 1
    deeper = EXTEND.replace("<c/>", "<c/>" + nested(MAX_DEPTH - 4))
    assert reject("order", message_xml("order", [order_dict()], extras=deeper)) == (
        "elements nested too deeply: expected at most 12 levels - at `$`"
    )


# --- the root and its children --------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "got"),
    [
        ("http://www.chinaport.gov.cn/ceb/", "namespace `http://www.chinaport.gov.cn/ceb/`"),
        ("urn:ceb", "namespace `urn:ceb`"),
    ],
)
@pytest.mark.parametrize("prefixed", [True, False])
def test_root_in_another_namespace_rejected(namespace, got, prefixed):
    raw = message_xml("order", [order_dict()], namespace=namespace, prefixed=prefixed)
    assert reject("order", raw) == (
        f"expected the root element in namespace `{CEB_NAMESPACE}`, got {got} - at `$`"
    )


def test_root_in_no_namespace_rejected():
    raw = message_xml("order", [order_dict()], prefixed=False).replace(
        f' xmlns="{CEB_NAMESPACE}"'.encode(), b""
    )
    assert reject("order", raw) == (
        f"expected the root element in namespace `{CEB_NAMESPACE}`, got no namespace - at `$`"
    )


@pytest.mark.parametrize("topic", DOC_TYPES)
@pytest.mark.parametrize("sent", DOC_TYPES)
def test_root_of_another_topic_rejected(topic, sent):
    raw = message_xml(sent, [DICTS[sent]()])
    if topic == sent:
        assert len(decode_message(topic, raw, MAX_BYTES).nodes) == 1
    else:
        assert reject(topic, raw) == (
            f"expected a {MESSAGE_ROOTS[topic]} on the {topic} topic, "
            f"got {MESSAGE_ROOTS[sent]} - at `$`"
        )
    inventory = message_xml(sent, [DICTS[sent]()], root="CEB621Message")
    assert reject(topic, inventory) == (
        f"expected a {MESSAGE_ROOTS[topic]} on the {topic} topic, got CEB621Message - at `$`"
    )


@pytest.mark.parametrize(
    ("guid", "got"), [(None, "none"), (GUID[:-1], "35 characters"), (GUID + "0", "37 characters")]
)
def test_bad_root_guid_rejected(guid, got):
    raw = message_xml("payment", [payment_dict()], guid=guid)
    assert reject("payment", raw) == (
        f"expected a `guid` attribute of 36 characters on CEB411Message, got {got} - at `$.@guid`"
    )


@pytest.mark.parametrize(
    ("transfer", "detail"),
    [
        ("", "expected one BaseTransfer element, got 0 - at `$.BaseTransfer`"),
        (TRANSFER * 2, "expected one BaseTransfer element, got 2 - at `$.BaseTransfer`"),
        (
            TRANSFER.replace(">1101180326<", "><"),
            "Expected `str` of length >= 1 - at `$.BaseTransfer.copCode`",
        ),
        (
            TRANSFER.replace(">1101180326<", ">" + "1" * 19 + "<"),
            "Expected `str` of length <= 18 - at `$.BaseTransfer.copCode`",
        ),
        (
            TRANSFER.replace("\t\t<ceb:copCode>1101180326</ceb:copCode>\n", ""),
            "Object missing required field `copCode` - at `$.BaseTransfer`",
        ),
        (
            TRANSFER.replace(">DXP<", ">DX<"),
            "Expected `str` of length >= 3 - at `$.BaseTransfer.dxpMode`",
        ),
        (
            TRANSFER.replace("<ceb:dxpId>", "<ceb:dxpId>1</ceb:dxpId><ceb:dxpId>"),
            "expected one `dxpId` element, got 2 - at `$.BaseTransfer.dxpId`",
        ),
        (
            TRANSFER.replace(">物流企业<", "><b>物流企业</b><"),
            "expected text, got child elements - at `$.BaseTransfer.copName`",
        ),
    ],
)
def test_missing_or_invalid_base_transfer_rejected(transfer, detail):
    assert reject("order", message_xml("order", [order_dict()], transfer=transfer)) == detail


def test_base_transfer_fields_the_xsd_lets_be_empty():
    transfer = TRANSFER.replace(">物流企业<", "><").replace(">EXP2016522002580001<", "><")
    message = decode_message(
        "order", message_xml("order", [order_dict()], transfer=transfer), MAX_BYTES
    )
    assert message.cop_code == "1101180326"


@pytest.mark.parametrize(
    ("extras", "detail"),
    [
        (
            "<ceb:Inventory/>",
            "unexpected element `Inventory` in CEB311Message: expected Order, BaseTransfer, "
            "BaseSubscribe, ExtendMessage or ds:Signature - at `$.Inventory`",
        ),
        (
            '<x:Order xmlns:x="urn:x"/>',
            "unexpected element `Order` in namespace `urn:x` in CEB311Message: expected Order, "
            "BaseTransfer, BaseSubscribe, ExtendMessage or ds:Signature - at `$.Order`",
        ),
        (
            "<ceb:Payment/>",
            "unexpected element `Payment` in CEB311Message: expected Order, BaseTransfer, "
            "BaseSubscribe, ExtendMessage or ds:Signature - at `$.Payment`",
        ),
        (
            SUBSCRIBE * 6,
            "expected at most 5 BaseSubscribe elements, got 6 - at `$.BaseSubscribe`",
        ),
        (EXTEND * 2, "expected at most 1 ExtendMessage element, got 2 - at `$.ExtendMessage`"),
        (SIGNATURE * 2, "expected at most 1 ds:Signature element, got 2 - at `$.ds:Signature`"),
    ],
)
def test_unexpected_root_children_rejected(extras, detail):
    assert reject("order", message_xml("order", [order_dict()], extras=extras)) == detail


# --- encode_message, and the round trips -----------------------------------------------------


def test_encode_message_layout():
    order = documents_of("order", order_dict(note=None))[0]
    raw = encode_message("order", [order], cop_code="3301980ABC", cop_name="Shop", dxp_id="D1")
    guid = raw.split(b'guid="')[1][:36].decode()
    assert raw.startswith(
        b"<?xml version='1.0' encoding='UTF-8'?>\n"
        b'<ceb:CEB311Message xmlns:ceb="http://www.chinaport.gov.cn/ceb" guid="' + guid.encode()
    )
    assert guid == guid.upper()
    assert len(guid) == 36
    assert raw.endswith(
        b"<ceb:BaseTransfer><ceb:copCode>3301980ABC</ceb:copCode><ceb:copName>Shop</ceb:copName>"
        b"<ceb:dxpMode>DXP</ceb:dxpMode><ceb:dxpId>D1</ceb:dxpId></ceb:BaseTransfer>"
        b"</ceb:CEB311Message>"
    )
    root = etree.fromstring(raw)
    head, *lines = root[0]
    fields = Order.__struct_fields__
    names = [name for name in fields if getattr(order, name) is not None and name != "orderList"]
    assert "note" not in names
    assert [etree.QName(child).localname for child in head] == names
    assert [etree.QName(line).localname for line in lines] == ["OrderList", "OrderList"]
    assert head[names.index("acturalPaid")].text == "497.50"
    assert lines[1][0].text == "2"  # gnum
    plain = encode_message("order", [order], cop_code="C", prefixed=False, declaration=False)
    assert plain.startswith(b'<CEB311Message xmlns="http://www.chinaport.gov.cn/ceb" guid="')


def test_encode_message_guid():
    orders = documents_of("order", order_dict(), order_dict(guid="A" * 36))
    one = encode_message("order", orders, cop_code="C")
    assert one == encode_message("order", orders, cop_code="C")  # deterministic
    assert one != encode_message("order", orders[::-1], cop_code="C")
    assert (
        decode_message("order", one, MAX_BYTES).guid
        != decode_message(
            "order", encode_message("order", orders[:1], cop_code="C"), MAX_BYTES
        ).guid
    )
    given_guid = encode_message("order", orders, cop_code="C", guid=GUID)
    assert decode_message("order", given_guid, MAX_BYTES).guid == GUID


def test_encode_message_refuses_text_xml_cannot_carry():
    # JSON refuses it too (schemas.codec); a document built by hand can hold it
    order = msgspec.structs.replace(documents_of("order", order_dict())[0], note="bell \u0007")
    with pytest.raises(ValueError, match="XML compatible"):
        encode_message("order", [order], cop_code="C")


def test_encode_message_refuses_a_document_of_another_type():
    payment = documents_of("payment", payment_dict())[0]
    with pytest.raises(TypeError, match="expected Order documents, got Payment"):
        encode_message("order", [payment], cop_code="C")


# Characters XML 1.0 can carry (a control character other than tab, LF and CR cannot).
XML_CHARS = st.characters(
    codec="utf-8", exclude_categories=["Cc", "Cs"], exclude_characters="\ufffe\uffff"
) | st.sampled_from("\t\n\r")
TIMESTAMPS = st.datetimes().map(lambda moment: f"{moment.year:04}{moment:%m%d%H%M%S}")
NOT_NEWLINE = XML_CHARS.filter(lambda c: c != "\n")  # what a regex's "." matches
AMOUNTS = st.from_regex(r"[0-9]{1,14}(\.[0-9]{1,5})?", fullmatch=True).map(Amount)


def text_of(low: int, high: int) -> st.SearchStrategy[str]:
    short = st.text(XML_CHARS, min_size=low, max_size=min(high, low + 12))
    return short | st.text(XML_CHARS, min_size=high, max_size=high)


def values(name: str, info: Any) -> st.SearchStrategy[Any]:
    """Valid values of a field, from its msgspec type."""
    if name in ("appTime", "payTime"):
        return TIMESTAMPS
    match info:
        case msgspec.inspect.UnionType(types=types):
            return st.one_of([values(name, member) for member in types])
        case msgspec.inspect.NoneType():
            return st.none()
        case msgspec.inspect.LiteralType(values=options):
            return st.sampled_from(options)
        case msgspec.inspect.CustomType():
            return AMOUNTS
        case msgspec.inspect.StrType(pattern=str()):  # consigneeDistrict: "" or 6 characters
            return st.just("") | st.text(NOT_NEWLINE, min_size=6, max_size=6)
        case msgspec.inspect.StrType(min_length=low, max_length=int(high)):
            return text_of(low or 0, high)
    raise AssertionError(info)


def field_values(struct: type[msgspec.Struct], *skip: str) -> dict[str, Any]:
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.name: values(f.name, f.type) for f in info.fields if f.name not in skip}


def documents(doc_type: DocType) -> st.SearchStrategy[Document]:
    """Valid documents: every field drawn from its type, lines numbered from 1."""
    struct = DOCUMENT_TYPES[doc_type]
    fields = field_values(struct, "orderList")
    if struct is Order:
        line_fields = field_values(OrderLine, "gnum")
        lines = st.lists(st.fixed_dictionaries(line_fields), min_size=1, max_size=3).map(
            lambda lines: [OrderLine(gnum=i, **line) for i, line in enumerate(lines, 1)]
        )
        fields["orderList"] = lines
    return st.fixed_dictionaries(fields).map(lambda values: struct(**values))


@pytest.mark.parametrize("doc_type", DOC_TYPES)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_documents_survive_xml_and_json(doc_type, data):
    docs = data.draw(st.lists(documents(doc_type), min_size=1, max_size=3))
    prefixed, declaration = data.draw(st.booleans()), data.draw(st.booleans())
    raw = encode_message(doc_type, docs, cop_code="C1", prefixed=prefixed, declaration=declaration)
    message = decode_message(doc_type, raw, 1 << 20)
    assert [(node.document, node.error) for node in message.nodes] == [(d, None) for d in docs]
    for document in docs:
        assert decode_document(doc_type, encode_json(document)) == document


# --- parity with JSON: the same document, the same message -----------------------------------


def line_with(index: int, **changes: Any) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = order_dict()["orderList"]
    lines[index] |= changes
    return lines


PARITY = [
    ("order", order_dict(orderNo="S" * 61), "Expected `str` of length <= 60 - at `$.orderNo`"),
    ("order", order_dict(ebpName=""), "Expected `str` of length >= 1 - at `$.ebpName`"),
    ("order", order_dict(guid="G" * 35), "Expected `str` of length >= 36 - at `$.guid`"),
    (
        "order",
        order_dict(goodsValue="1e2"),
        "expected a non-negative decimal amount in plain notation with at most 14 integer and "
        "5 fraction digits (N19,5), got '1e2' - at `$.goodsValue`",
    ),
    (
        "order",
        order_dict(freight="-1"),
        "expected a non-negative decimal amount in plain notation with at most 14 integer and "
        "5 fraction digits (N19,5), got '-1' - at `$.freight`",
    ),
    (
        "order",
        order_dict(appTime="20261131111500"),
        "`appTime` '20261131111500' is not a real time (YYYYMMDDhhmmss) - at `$.appTime`",
    ),
    (
        "order",
        order_dict(appTime="2026113011150"),
        "Expected `str` matching regex '^[0-9]{14}$' - at `$.appTime`",
    ),
    ("order", order_dict(currency="CNY"), "Invalid enum value 'CNY' - at `$.currency`"),
    ("order", order_dict(appType="4"), "Invalid enum value '4' - at `$.appType`"),
    ("order", order_dict(buyerName=DROP), "Object missing required field `buyerName`"),
    (
        "order",
        order_dict(consigneeDistrict="12345"),
        "Expected `str` matching regex '^(?:.{6})?$' - at `$.consigneeDistrict`",
    ),
    (
        "order",
        order_dict(orderList=line_with(1, gnum=3)),
        "expected line numbers consecutive from 1, got 3 - at `$.orderList[1].gnum`",
    ),
    (
        "order",
        order_dict(orderList=line_with(1, price="0.123456")),
        "expected a non-negative decimal amount in plain notation with at most 14 integer and "
        "5 fraction digits (N19,5), got '0.123456' - at `$.orderList[1].price`",
    ),
    (
        "order",
        order_dict(orderList=line_with(0, itemName="I" * 251)),
        "Expected `str` of length <= 250 - at `$.orderList[0].itemName`",
    ),
    (
        "order",
        order_dict(orderList=line_with(1, currency="143")),
        "Invalid enum value '143' - at `$.orderList[1].currency`",
    ),
    (
        "order",
        order_dict(orderList=[{k: v for k, v in line_with(0)[0].items() if k != "unit"}]),
        "Object missing required field `unit` - at `$.orderList[0]`",
    ),
    (
        "payment",
        payment_dict(payTime="20261124246000"),
        "`payTime` '20261124246000' is not a real time (YYYYMMDDhhmmss) - at `$.payTime`",
    ),
    ("payment", payment_dict(payerIdType="2"), "Invalid enum value '2' - at `$.payerIdType`"),
    ("payment", payment_dict(amountPaid=DROP), "Object missing required field `amountPaid`"),
    ("logistics", logistics_dict(packNo=2), "Invalid enum value 2 - at `$.packNo`"),
    ("logistics", logistics_dict(packNo=0), "Invalid enum value 0 - at `$.packNo`"),
    (
        "logistics",
        logistics_dict(billNo="B" * 38),
        "Expected `str` of length <= 37 - at `$.billNo`",
    ),
    (
        "logistics",
        logistics_dict(weight=""),
        "expected a non-negative decimal amount in plain "
        "notation with at most 14 integer and 5 fraction digits (N19,5), got '' - at `$.weight`",
    ),
]


@pytest.mark.parametrize(("doc_type", "document", "error"), PARITY)
def test_node_error_is_the_json_error(doc_type, document, error):
    assert json_error(doc_type, document) == error
    assert node_errors(doc_type, message_xml(doc_type, [document])) == [f"node 1: {error}"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("1.0", "Expected `int`, got `str` - at `$.orderList[0].gnum`"),
        ("+1", "Expected `int`, got `str` - at `$.orderList[0].gnum`"),
        ("", "Expected `int`, got `str` - at `$.orderList[0].gnum`"),
        ("\uff11", "Expected `int`, got `str` - at `$.orderList[0].gnum`"),
        ("0", "Expected `int` >= 1 - at `$.orderList[0].gnum`"),
        ("9" * 30, "Expected `int`, got `str` - at `$.orderList[0].gnum`"),
        ("01", None),
    ],
)
def test_only_digits_make_an_integer(text, error):
    """gnum and packNo are the only integers: their text when it is ASCII digits."""
    raw = message_xml("order", [order_dict()]).replace(
        b"<ceb:gnum>1</ceb:gnum>", f"<ceb:gnum>{text}</ceb:gnum>".encode()
    )
    assert node_errors("order", raw) == [error and f"node 1: {error}"]


def test_message_and_node_are_named_tuples():
    message = decode_message("payment", message_xml("payment", [payment_dict()]), MAX_BYTES)
    assert isinstance(message, Message)
    assert isinstance(message.nodes[0], Node)
    assert message.nodes[0]._fields == ("index", "document", "error", "xml")
    assert message._fields == ("doc_type", "guid", "cop_code", "nodes")
