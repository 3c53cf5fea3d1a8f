"""The customs standard's XML messages (CEB311/411/511, 202205 edition) as document types.

A record may hold, instead of one JSON document, a ``CEB311Message`` (orders), ``CEB411Message``
(payments) or ``CEB511Message`` (waybills) in the namespace ``http://www.chinaport.gov.cn/ceb``,
prefixed ``ceb:`` or as the default namespace, with or without an XML declaration: a ``guid``
attribute, 1 to 100 business nodes (``Order`` = OrderHead + OrderList{1..99}, ``Payment`` =
PaymentHead, ``Logistics`` = LogisticsHead), BaseTransfer, BaseSubscribe{0..5},
ExtendMessage{0..1} and ds:Signature{0..1}.

Mapping: each node is one document. The head's field elements (local name -> text, an empty
element -> ``""``) and, for an order, one ``orderList`` entry per OrderList element make the
object a JSON record holds, checked by the same msgspec types with the same messages, prefixed
by the node's 1-based index: ``node 3: Expected `str` of length <= 60 - at `$.orderNo```. Only
``gnum`` and ``packNo`` are integers: their text, when it is ASCII digits, becomes one (JSON
carries a number); amounts go through :func:`schemas.fields.dec_hook` as in JSON.

Lenient where JSON is (unknown fields): inside a node, elements that are no field of its type
and field elements of another namespace are ignored; so are the contents of BaseSubscribe,
ExtendMessage and ds:Signature (not verified), the root's ``version`` and the order of its
children. Strict at the root: any other element there rejects the whole message, as do a
missing or repeated BaseTransfer, more than 5 BaseSubscribe, 2 ExtendMessage or 2 ds:Signature.
A node without its head or with two, a field element repeated or holding elements, or a field
its type refuses makes an invalid node: its Node carries the error and, for the rejection, the
node element's bytes (a valid node's carries only the document). The other nodes go on.

Hostile input is rejected whole (:class:`SchemaError`), before parsing when the message is
empty, larger than ``max_bytes``, starts with a UTF-16/32 byte order mark, declares an encoding
other than UTF-8, or holds ``<!DOCTYPE`` anywhere in its bytes: no DTD, internal subset or
entity declaration reaches the parser, which stops XXE, billion laughs and parameter entities.
The one parser, built once, is locked down: UTF-8 whatever a declaration says, no entity
resolution, no DTD loading or validation, no network, no huge trees (libxml2's limits on depth
and text size hold), comments and processing instructions dropped. libxml2 refuses invalid
UTF-8 and NUL anywhere (the detail then says ``not an XML document in UTF-8``, as for JSON),
and any other malformation with its text, line and column. After parsing, a document type
found anyway, nesting deeper than :data:`MAX_DEPTH` (XPath, in C), a root that is not the
topic's message in the CEB namespace, a root guid that is not 36 characters, no node or more
than :data:`MAX_NODES` and an invalid BaseTransfer reject the message. Details end with where,
as JSON paths: ``$`` the message, ``$.@guid`` an attribute, ``$.BaseTransfer.copCode`` a field.
Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import msgspec
from lxml import etree

from schemas.documents import DOCUMENT_TYPES, DocType, Document, Order, OrderLine
from schemas.errors import SchemaError
from schemas.fields import C3, C18, OptC30, OptC100, OptC1000, dec_hook

__all__ = (
    "CEB_NAMESPACE",
    "MAX_DEPTH",
    "MAX_NODES",
    "MESSAGE_ROOTS",
    "PARSER",
    "Message",
    "Node",
    "decode_message",
    "encode_message",
    "is_xml",
)

CEB_NAMESPACE = "http://www.chinaport.gov.cn/ceb"
DS_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
MESSAGE_ROOTS: dict[DocType, str] = {
    "order": "CEB311Message",
    "payment": "CEB411Message",
    "logistics": "CEB511Message",
}
MAX_NODES = 100  # the standard's maxOccurs of Order/Payment/Logistics
# Counting the root as 1, the standard's fields sit at depth 4 (CEB311Message/Order/OrderList/
# gnum) and ds:Signature reaches 7 (Signature/SignedInfo/Reference/Transforms/Transform/XPath).
# ExtendMessage/Message (depth 3) takes any XML: 12 leaves its content 9 levels, ample for a
# custom message, while a document nested deeper is not a CEB message and is refused.
MAX_DEPTH = 12

_NS = f"{{{CEB_NAMESPACE}}}"
_ROOT_CHILDREN = {  # the root's children besides the nodes: name, least and most of them
    f"{_NS}BaseTransfer": ("BaseTransfer", 1, 1),
    f"{_NS}BaseSubscribe": ("BaseSubscribe", 0, 5),
    f"{_NS}ExtendMessage": ("ExtendMessage", 0, 1),
    f"{{{DS_NAMESPACE}}}Signature": ("ds:Signature", 0, 1),
}

PARSER = etree.XMLParser(  # locked down: see the module docstring
    encoding="utf-8",  # whatever a declaration says (other encodings are refused before)
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    attribute_defaults=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
)
_XML_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*<")
_DECLARED_ENCODING = re.compile(
    rb"(?:\xef\xbb\xbf)?<\?xml[ \t\r\n][^>]*?encoding[ \t\r\n]*=[ \t\r\n]*[\"']([^\"']*)[\"']"
)
_DECLARATIONS = (b"<?xml", b"\xef\xbb\xbf<?xml")
_UTF8_DECLARATIONS = (  # lxml's and the standard's samples'
    b"<?xml version='1.0' encoding='UTF-8'?>",
    b'<?xml version="1.0" encoding="UTF-8"?>',
)
_BOMS = (  # the UTF-32 marks first: UTF-32 LE's starts with UTF-16 LE's
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
)
# Nothing below a node's fields (depth 5), the usual message: no field holds elements, nothing
# is too deep, and the two precise checks are skipped. (regexp=False: no EXSLT registered.)
_DEEPER = etree.XPath("boolean(/*/*/*/*/*)", regexp=False)
_TOO_DEEP = etree.XPath("boolean(/*" + "/*" * MAX_DEPTH + ")", regexp=False)


class Node(NamedTuple):
    """One business node of a message: its document, or why it is invalid."""

    index: int  # type: ignore[assignment] # 1-based, among the nodes (shadows tuple.index)
    document: Document | None  # None when the node is invalid
    error: str | None  # "node {index}: " + the message JSON decoding gives for the document
    xml: bytes  # invalid: the node element alone, UTF-8, with its namespace declarations; else b""


class Message(NamedTuple):
    """A decoded CEB message: the root's guid, the sender (BaseTransfer/copCode), the nodes."""

    doc_type: DocType
    guid: str
    cop_code: str
    nodes: list[Node]


class _BaseTransfer(msgspec.Struct, gc=False):
    """BaseTransfer as the XSD has it: copName and dxpId may be empty."""

    copCode: C18  # noqa: N815 - the standard's spelling
    copName: OptC100  # noqa: N815
    dxpMode: C3  # noqa: N815
    dxpId: OptC30  # noqa: N815
    note: OptC1000 | None = None


class _Layout(NamedTuple):
    node_name: str  # Order, Payment, Logistics
    root: str  # tags, namespace included
    node: str
    head: str
    struct: type[Document]
    fields: dict[str, str]  # tag of each head field -> field name
    lines: bool  # orders have OrderList lines


def _field_tags(struct: type[msgspec.Struct]) -> dict[str, str]:
    return {f"{_NS}{name}": name for name in struct.__struct_fields__ if name != "orderList"}


def _layout(doc_type: DocType, node: str) -> _Layout:
    struct = DOCUMENT_TYPES[doc_type]
    tags = (_NS + MESSAGE_ROOTS[doc_type], _NS + node, f"{_NS}{node}Head")
    return _Layout(node, *tags, struct, _field_tags(struct), struct is Order)


_LAYOUTS = {
    "order": _layout("order", "Order"),
    "payment": _layout("payment", "Payment"),
    "logistics": _layout("logistics", "Logistics"),
}
_LINE = f"{_NS}OrderList"
_LINE_FIELDS = _field_tags(OrderLine)
_LINE_NAME = _LINE_FIELDS.get
# gnum's usual texts, read as _integer reads them (a dict lookup costs less than its checks)
_NUMBERS: dict[str | None, int] = {str(number): number for number in range(100)}
_TRANSFER = f"{_NS}BaseTransfer"
_TRANSFER_FIELDS = _field_tags(_BaseTransfer)
# Whether any field element of a node holds elements: then the nodes are read field by field.
# (Name tests cost in libxml2's XPath: the inner steps have none, which only widens the test.)
_NESTED = {
    doc_type: etree.XPath(
        f"boolean(/*/c:{layout.node_name}/*/*/*)", namespaces={"c": CEB_NAMESPACE}, regexp=False
    )
    for doc_type, layout in _LAYOUTS.items()
}
_GUIDS = uuid.uuid5(uuid.NAMESPACE_URL, CEB_NAMESPACE)
# dec_hook remembering the amounts it built: a hit makes no Python call (errors are not kept).
_DEC_HOOK: Callable[[Any, Any], object] = lru_cache(maxsize=4096)(dec_hook)


class _NodeError(Exception):
    """A node that does not make a document; the argument is the detail, without the index."""


def is_xml(raw: bytes | None) -> bool:
    """True when the value is meant as XML: its first byte that is not ASCII whitespace (space,
    tab, CR, LF), after an optional UTF-8 BOM, is ``<``. Cheap: it runs on every input record."""
    return raw is not None and _XML_START.match(raw) is not None


def decode_message(doc_type: DocType, raw: bytes | None, max_bytes: int) -> Message:
    """Decode a CEB message of the topic's type.

    Raises SchemaError for a message rejected whole; an invalid node does not raise (its Node
    carries the error) and the valid nodes go on.
    """
    raw = _checked_bytes(raw, max_bytes)
    try:
        root = etree.fromstring(raw, PARSER)
    except etree.XMLSyntaxError as exc:
        raise SchemaError(_not_utf8(raw) or f"not well-formed XML: {exc.msg} - at `$`") from None
    if root.getroottree().docinfo.doctype:  # a second guard: _checked_bytes refused DOCTYPEs
        raise SchemaError(_NO_DOCTYPE.format(where=""))
    deeper = _DEEPER(root)
    if deeper and _TOO_DEEP(root):
        msg = f"elements nested too deeply: expected at most {MAX_DEPTH} levels - at `$`"
        raise SchemaError(msg)
    layout = _LAYOUTS[doc_type]
    guid = _root_guid(doc_type, root)
    elements, transfer = _root_children(doc_type, root)
    cop_code = _base_transfer(transfer)
    nested = deeper and bool(_NESTED[doc_type](root))
    nodes = []
    for index, element in enumerate(elements, 1):
        try:
            document = _document(layout, element, nested)
        except (_NodeError, msgspec.ValidationError) as exc:
            xml: bytes = etree.tostring(element, encoding="UTF-8", with_tail=False)
            nodes.append(Node(index, None, f"node {index}: {exc}", xml))
        else:
            nodes.append(Node(index, document, None, b""))
    return Message(doc_type, guid, cop_code, nodes)


_NOT_UTF8 = "not an XML document in UTF-8"
_NO_DOCTYPE = "a DOCTYPE{where}: expected a CEB message without DTD or entity declarations - at `$`"


def _checked_bytes(raw: bytes | None, max_bytes: int) -> bytes:
    """The checks before parsing: size, encoding, no DOCTYPE."""
    if not raw:
        raise SchemaError("empty message: expected one XML document - at `$`")
    if len(raw) > max_bytes:
        msg = f"message of {len(raw)} bytes exceeds the limit of {max_bytes} bytes - at `$`"
        raise SchemaError(msg)
    if raw[0] in b"\x00\xfe\xff":  # what the marks of UTF-16 and UTF-32 start with
        for bom, name in _BOMS:
            if raw.startswith(bom):
                raise SchemaError(f"{_NOT_UTF8}: a {name} byte order mark (byte 0) - at `$`")
    if (
        raw.startswith(_DECLARATIONS)
        and not raw.startswith(_UTF8_DECLARATIONS)  # the usual ones: no regex needed
        and (declared := _DECLARED_ENCODING.match(raw))
    ):
        encoding = declared[1].decode("ascii", "replace")
        if encoding.lower() not in ("utf-8", "utf8"):
            msg = f"{_NOT_UTF8}: the XML declaration names encoding {encoding!r} - at `$`"
            raise SchemaError(msg)
    # Entity declarations live only in a DOCTYPE's internal subset: elsewhere "<!ENTITY" is a
    # syntax error libxml2 stops at without acting on it. So one search, over all the bytes,
    # needed only when there is a "!" (rare in a message; memchr finds it or not at once).
    if b"!" in raw and (doctype := raw.find(b"<!DOCTYPE")) >= 0:
        raise SchemaError(_NO_DOCTYPE.format(where=f" (byte {doctype})"))
    return raw


def _not_utf8(raw: bytes) -> str | None:
    """Why a message libxml2 refused is not UTF-8, if it is not (libxml2 refuses invalid UTF-8
    and NUL anywhere: the parser checks the encoding, this only explains its refusal)."""
    if (nul := raw.find(b"\x00")) >= 0:
        return f"{_NOT_UTF8}: a NUL character, as in UTF-16 or UTF-32 (byte {nul}) - at `$`"
    try:
        raw.decode()
    except UnicodeDecodeError as exc:
        return f"{_NOT_UTF8}: {exc.reason} (byte {exc.start}) - at `$`"
    return None


def _root_guid(doc_type: DocType, root: Any) -> str:
    """Check the root's namespace and name; returns its guid attribute."""
    expected = MESSAGE_ROOTS[doc_type]
    if root.tag != _LAYOUTS[doc_type].root:
        name = etree.QName(root)
        if name.namespace != CEB_NAMESPACE:
            found = f"namespace `{name.namespace}`" if name.namespace else "no namespace"
            msg = f"expected the root element in namespace `{CEB_NAMESPACE}`, got {found}"
        else:
            msg = f"expected a {expected} on the {doc_type} topic, got {name.localname}"
        raise SchemaError(f"{msg} - at `$`")
    guid: str | None = root.get("guid")
    if guid is None or len(guid) != 36:  # noqa: PLR2004 - the standard's C36
        got = "none" if guid is None else f"{len(guid)} characters"
        msg = f"expected a `guid` attribute of 36 characters on {expected}, got {got}"
        raise SchemaError(f"{msg} - at `$.@guid`")
    return guid


def _root_children(doc_type: DocType, root: Any) -> tuple[list[Any], Any]:
    """The business node elements and the BaseTransfer element; refuses anything unexpected."""
    layout = _LAYOUTS[doc_type]
    nodes: list[Any] = []
    rest: list[Any] = []
    for child in root[:]:
        (nodes if child.tag == layout.node else rest).append(child)
    if len(rest) == 1 and 0 < len(nodes) <= MAX_NODES and rest[0].tag == _TRANSFER:
        return nodes, rest[0]  # the usual message: the nodes and a BaseTransfer
    others: dict[str, list[Any]] = {tag: [] for tag in _ROOT_CHILDREN}
    for child in rest:
        if (same := others.get(child.tag)) is not None:
            same.append(child)
        else:
            name = etree.QName(child)
            where = f" in namespace `{name.namespace}`" if name.namespace != CEB_NAMESPACE else ""
            expected = ", ".join([layout.node_name, *(n for n, _, _ in _ROOT_CHILDREN.values())])
            msg = (
                f"unexpected element `{name.localname}`{where} in {MESSAGE_ROOTS[doc_type]}: "
                f"expected {expected.replace(', ds:', ' or ds:')} - at `$.{name.localname}`"
            )
            raise SchemaError(msg)
    counts = [(layout.node_name, 1, MAX_NODES, nodes)]
    counts += [(*_ROOT_CHILDREN[tag], found) for tag, found in others.items()]
    for name, least, most, found in counts:
        if not least <= len(found) <= most:
            expected = (
                "one" if least == most else f"{least} to {most}" if least else f"at most {most}"
            )
            msg = f"expected {expected} {name} element{'s' * (most > 1)}, got {len(found)}"
            raise SchemaError(f"{msg} - at `$.{name}`")
    return nodes, others[_TRANSFER][0]


def _base_transfer(element: Any) -> str:
    """Validate BaseTransfer; returns its copCode."""
    try:
        fields = _checked_texts(element, _TRANSFER_FIELDS, "$")
        return msgspec.convert(fields, _BaseTransfer).copCode
    except (_NodeError, msgspec.ValidationError) as exc:
        detail = str(exc)  # its paths, from `$`, moved under BaseTransfer
        if " - at `$" not in detail:
            raise SchemaError(f"{detail} - at `$.BaseTransfer`") from None
        raise SchemaError(detail.replace(" - at `$", " - at `$.BaseTransfer", 1)) from None


def _document(layout: _Layout, element: Any, nested: bool) -> Document:
    """The document of one node; raises _NodeError or msgspec.ValidationError.

    The fast path, for a message with no node's field holding elements (``nested`` False): as
    many distinct names as children means no field is repeated and at most one child is not a
    field (its name, None, is dropped). Else _checked_texts reads the fields one by one.
    """
    head: dict[Any, Any] | None = None
    lines: list[dict[Any, Any]] = []
    head_tag, head_name = layout.head, layout.fields.get  # bound once: they run per field
    line_tag = _LINE if layout.lines else None  # another node's OrderList is no field: ignored
    for part in element[:]:  # (a list, made in C, iterates faster than the element)
        tag = part.tag
        if tag == line_tag:
            fields = part[:]
            line: dict[Any, Any] = {_LINE_NAME(f.tag): f.text or "" for f in fields}
            if nested or len(line) != len(fields):
                line = _checked_texts(part, _LINE_FIELDS, f"$.orderList[{len(lines)}]")
            elif None in line:
                del line[None]
            if (number := _NUMBERS.get(line.get("gnum"))) is not None:
                line["gnum"] = number
            else:
                _integer(line, "gnum")
            lines.append(line)
        elif tag == head_tag:
            if head is not None:
                raise _NodeError(f"expected one {tag[len(_NS) :]} element, got more - at `$`")
            fields = part[:]
            head = {head_name(f.tag): f.text or "" for f in fields}
            if nested or len(head) != len(fields):
                head = _checked_texts(part, layout.fields, "$")
            elif None in head:
                del head[None]
    if head is None:
        raise _NodeError(f"expected one {head_tag[len(_NS) :]} element, got none - at `$`")
    if line_tag:
        head["orderList"] = lines
    else:
        _integer(head, "packNo")  # a waybill's; a payment has no field of that name
    document: Document = msgspec.convert(head, layout.struct, dec_hook=_DEC_HOOK)
    return document


def _checked_texts(element: Any, tags: dict[str, str], path: str) -> dict[Any, Any]:
    """Field name -> text, refusing a repeated field element or one holding elements."""
    fields: dict[str, Any] = {}
    for child in element[:]:
        name = tags.get(child.tag)
        if name is None:
            continue  # not a field of this type: ignored, like an unknown JSON field
        if name in fields:
            count = sum(1 for other in element if other.tag == child.tag)
            raise _NodeError(f"expected one `{name}` element, got {count} - at `{path}.{name}`")
        if len(child):
            raise _NodeError(f"expected text, got child elements - at `{path}.{name}`")
        fields[name] = child.text or ""
    return fields


def _integer(fields: dict[Any, Any], name: str) -> None:
    """An integer field's text as an int when it is ASCII digits (else msgspec refuses it)."""
    text = fields.get(name)
    if text and len(text) <= 18 and text.isascii() and text.isdigit():  # noqa: PLR2004
        fields[name] = int(text)


def encode_message(
    doc_type: DocType,
    documents: Sequence[Document],
    *,
    cop_code: str,
    cop_name: str = "",
    dxp_id: str = "",
    guid: str | None = None,
    prefixed: bool = True,
    declaration: bool = True,
) -> bytes:
    """The inverse: a CEB3x1Message holding the documents as nodes, with a BaseTransfer.

    Fields in the standard's (the struct's) order, None fields omitted, amounts as their decimal
    text, an order's lines as OrderList elements; ``prefixed`` writes ``ceb:`` prefixes, else a
    default namespace. The guid defaults to a uuid5 of the documents' guids, upper case. The
    node count is not checked (tests build oversize messages). Raises TypeError for a document
    of another type, ValueError for a text XML cannot carry (a control character).
    """
    layout = _LAYOUTS[doc_type]
    for document in documents:
        if not isinstance(document, layout.struct):
            msg = f"expected {layout.struct.__name__} documents, got {type(document).__name__}"
            raise TypeError(msg)
    if guid is None:
        names = "\n".join([doc_type, *(document.guid for document in documents)])
        guid = str(uuid.uuid5(_GUIDS, names)).upper()
    nsmap = {"ceb": CEB_NAMESPACE} if prefixed else {None: CEB_NAMESPACE}
    root = etree.Element(layout.root, {"guid": guid, "version": "1.0"}, nsmap=nsmap)
    for document in documents:
        node = etree.SubElement(root, layout.node)
        _append_fields(etree.SubElement(node, layout.head), document)
        if isinstance(document, Order):
            for line in document.orderList:
                _append_fields(etree.SubElement(node, _LINE), line)
    transfer = _BaseTransfer(copCode=cop_code, copName=cop_name, dxpMode="DXP", dxpId=dxp_id)
    _append_fields(etree.SubElement(root, _TRANSFER), transfer)
    encoded: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=declaration)
    return encoded


def _append_fields(parent: Any, struct: msgspec.Struct) -> None:
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if value is None or name == "orderList":
            continue
        etree.SubElement(parent, _NS + name).text = value if isinstance(value, str) else str(value)
