"""The customs standard's XML messages (CEB311/411/511, 202205 edition) as document types.

A record on an input topic may hold, instead of one JSON document, a ``CEB311Message``
(orders), ``CEB411Message`` (payments) or ``CEB511Message`` (waybills) in the namespace
``http://www.chinaport.gov.cn/ceb``, with the ``ceb:`` prefix or as the default namespace:

    CEB311Message @guid      Order{1..100} = OrderHead + OrderList{1..99}
    CEB411Message @guid      Payment{1..100} = PaymentHead
    CEB511Message @guid      Logistics{1..100} = LogisticsHead
      ... then BaseTransfer (required), BaseSubscribe{0..5}, ExtendMessage{0..1}, ds:Signature?

Mapping: each business node is one document. Its head's field elements (local name -> text, an
empty element -> ``""``) and, for an order, one ``orderList`` entry per ``OrderList`` element
become the same object a JSON record holds, checked by the same msgspec types with the same
messages: an XML node with an over-long ``orderNo`` fails with the detail JSON decoding gives,
prefixed by the node's 1-based index (``node 3: Expected `str` of length <= 60 - at
`$.orderNo```). Only ``gnum`` and ``packNo`` are integers; their text, when it is ASCII digits,
is converted to one (JSON would carry a number), every other field stays text. Amounts are
checked by :func:`schemas.fields.dec_hook`, as in JSON.

Lenience, as for unknown JSON fields: elements inside a node that are not fields of its type,
whatever their namespace, and field elements of another namespace are ignored; so are the
contents of BaseSubscribe, ExtendMessage and ds:Signature (the signature is not verified), the
root's ``version`` attribute and the order of the root's children. Strictness: at the root, an
element other than the business nodes, BaseTransfer, BaseSubscribe, ExtendMessage and
ds:Signature rejects the whole message, as do a repeated BaseTransfer, more than 5
BaseSubscribe or more than one ExtendMessage or ds:Signature. A node with no head or two, a
field element repeated or holding child elements is an invalid node, not a whole-message error.

Hostile input: a message is rejected whole (:class:`SchemaError`) before parsing when it is
empty, larger than ``max_bytes``, starts with a UTF-16/32 byte order mark, has an XML
declaration naming an encoding other than UTF-8, or holds ``<!DOCTYPE`` anywhere in its bytes:
no DTD, internal subset or entity declaration ever reaches the parser, which stops XXE, billion
laughs and parameter entities before they start. Parsing uses one locked-down lxml parser,
built once: UTF-8 whatever the declaration says, no entity resolution, no DTD loading or
validation, no network, no huge trees (libxml2's limits on text size and depth hold), comments
and processing instructions dropped. libxml2 refuses invalid UTF-8 and NUL characters anywhere;
the detail then says so as for JSON (``not an XML document in UTF-8: ...``). Any other
well-formedness error is reported with libxml2's text, line and column. After parsing, a
document type found anyway, nesting deeper than :data:`MAX_DEPTH` (one XPath, evaluated in C),
a root that is not the topic's message in the CEB namespace, a root ``guid`` that is not 36
characters, no node or more than :data:`MAX_NODES`, and a missing or invalid BaseTransfer
reject the whole message. Every detail ends with where, in the style of JSON paths: ``$`` is
the message (the root element), ``$.@guid`` its attribute, ``$.BaseTransfer.copCode`` a field.
Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
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
_SIGNATURE = f"{{{DS_NAMESPACE}}}Signature"
_NODE_NAMES: dict[DocType, tuple[str, str]] = {
    "order": ("Order", "OrderHead"),
    "payment": ("Payment", "PaymentHead"),
    "logistics": ("Logistics", "LogisticsHead"),
}
_ROOT_CHILDREN = "BaseTransfer, BaseSubscribe, ExtendMessage or ds:Signature"
_OPTIONAL_LIMITS = {  # root children other than the nodes and BaseTransfer: most allowed
    f"{_NS}BaseSubscribe": ("BaseSubscribe", 5),
    f"{_NS}ExtendMessage": ("ExtendMessage", 1),
    _SIGNATURE: ("ds:Signature", 1),
}

_PARSER = etree.XMLParser(
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
_BOMS = (  # the UTF-32 marks first: UTF-32 LE's starts with UTF-16 LE's
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
)
_TOO_DEEP = etree.XPath("boolean(/*" + "/*" * MAX_DEPTH + ")")


class Node(NamedTuple):
    """One business node of a message: its document, or why it is invalid."""

    index: int  # type: ignore[assignment] # (shadows tuple.index) 1-based position among the message's business nodes
    document: Document | None  # None when the node is invalid
    error: str | None  # "node {index}: " + the message JSON decoding gives for the document
    xml: bytes  # the node element alone (with its namespace declarations), UTF-8


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
    root: str  # the tags, namespace included
    node: str
    head: str
    struct: type[Document]
    fields: dict[str, str]  # tag of each head field -> field name
    integers: tuple[str, ...]  # fields whose digits become an int


def _field_tags(struct: type[msgspec.Struct]) -> dict[str, str]:
    return {f"{_NS}{name}": name for name in struct.__struct_fields__ if name != "orderList"}


_LAYOUTS: dict[DocType, _Layout] = {
    doc_type: _Layout(
        root=_NS + MESSAGE_ROOTS[doc_type],
        node=_NS + _NODE_NAMES[doc_type][0],
        head=_NS + _NODE_NAMES[doc_type][1],
        struct=DOCUMENT_TYPES[doc_type],
        fields=_field_tags(DOCUMENT_TYPES[doc_type]),
        integers=("packNo",) if doc_type == "logistics" else (),
    )
    for doc_type in DOCUMENT_TYPES
}
_LINE = f"{_NS}OrderList"
_LINE_FIELDS = _field_tags(OrderLine)
_TRANSFER = f"{_NS}BaseTransfer"
_TRANSFER_FIELDS = _field_tags(_BaseTransfer)
# Whether any field element of a node holds elements: then the nodes are read field by field.
# (Name tests cost in libxml2's XPath: the inner steps have none, which only widens the test.)
_NESTED = {
    doc_type: etree.XPath(
        f"boolean(/*/c:{_NODE_NAMES[doc_type][0]}/*/*/*)", namespaces={"c": CEB_NAMESPACE}
    )
    for doc_type in DOCUMENT_TYPES
}
_GUIDS = uuid.uuid5(uuid.NAMESPACE_URL, CEB_NAMESPACE)


class _NodeError(Exception):
    """A node that does not make a document; the argument is the detail, without the index."""


def is_xml(raw: bytes | None) -> bool:
    """True when the value is meant as XML: its first byte that is not ASCII whitespace (after
    an optional UTF-8 BOM) is ``<``. Cheap: it runs on every input record."""
    return raw is not None and _XML_START.match(raw) is not None


def decode_message(doc_type: DocType, raw: bytes | None, max_bytes: int) -> Message:
    """Decode a CEB message of the topic's type.

    Raises SchemaError for a message rejected whole; an invalid node does not raise (its Node
    carries the error) and the valid nodes go on.
    """
    raw = _checked_bytes(raw, max_bytes)
    try:
        root = etree.fromstring(raw, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SchemaError(_not_utf8(raw) or f"not well-formed XML: {exc.msg} - at `$`") from None
    if root.getroottree().docinfo.doctype:  # a second guard: _checked_bytes refused DOCTYPEs
        raise SchemaError(_NO_DOCTYPE.format(where=""))
    if _TOO_DEEP(root):
        msg = f"elements nested too deeply: expected at most {MAX_DEPTH} levels - at `$`"
        raise SchemaError(msg)
    layout = _LAYOUTS[doc_type]
    guid = _root_guid(doc_type, root)
    elements, transfer = _root_children(doc_type, root)
    cop_code = _base_transfer(transfer)
    nested = bool(_NESTED[doc_type](root))
    nodes = []
    for index, element in enumerate(elements, 1):
        xml: bytes = etree.tostring(element, encoding="UTF-8", with_tail=False)
        try:
            document = _document(layout, element, nested)
        except _NodeError as exc:
            nodes.append(Node(index, None, f"node {index}: {exc.args[0]}", xml))
        except msgspec.ValidationError as exc:
            nodes.append(Node(index, None, f"node {index}: {exc}", xml))
        else:
            nodes.append(Node(index, document, None, xml))
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
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise SchemaError(f"{_NOT_UTF8}: a {name} byte order mark (byte 0) - at `$`")
    if raw.startswith(_DECLARATIONS) and (declared := _DECLARED_ENCODING.match(raw)):
        encoding = declared[1].decode("ascii", "replace")
        if encoding.lower() not in ("utf-8", "utf8"):
            msg = f"{_NOT_UTF8}: the XML declaration names encoding {encoding!r} - at `$`"
            raise SchemaError(msg)
    # Entity declarations live only in a DOCTYPE's internal subset: elsewhere "<!ENTITY" is a
    # syntax error libxml2 stops at without acting on it. So one search, over all the bytes.
    if (doctype := raw.find(b"<!DOCTYPE")) >= 0:
        raise SchemaError(_NO_DOCTYPE.format(where=f" (byte {doctype})"))
    return raw


def _not_utf8(raw: bytes) -> str | None:
    """Why a message libxml2 refused is not UTF-8, if it is not (libxml2 refuses invalid UTF-8
    and NUL anywhere: the parser checks the encoding, this only explains its refusal)."""
    try:
        raw.decode()
    except UnicodeDecodeError as exc:
        return f"{_NOT_UTF8}: {exc.reason} (byte {exc.start}) - at `$`"
    if (nul := raw.find(b"\x00")) >= 0:
        return f"{_NOT_UTF8}: a NUL character, as in UTF-16 or UTF-32 (byte {nul}) - at `$`"
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
    node_tag = _LAYOUTS[doc_type].node
    node_name = _NODE_NAMES[doc_type][0]
    elements = []
    transfers = []
    optional = dict.fromkeys(_OPTIONAL_LIMITS, 0)
    for child in root:
        tag = child.tag
        if tag == node_tag:
            elements.append(child)
        elif tag == _TRANSFER:
            transfers.append(child)
        elif tag in optional:
            optional[tag] += 1
        else:
            name = etree.QName(child)
            where = f" in namespace `{name.namespace}`" if name.namespace != CEB_NAMESPACE else ""
            msg = (
                f"unexpected element `{name.localname}`{where} in {MESSAGE_ROOTS[doc_type]}: "
                f"expected {node_name}, {_ROOT_CHILDREN} - at `$.{name.localname}`"
            )
            raise SchemaError(msg)
    if not 1 <= len(elements) <= MAX_NODES:
        msg = (
            f"expected 1 to {MAX_NODES} {node_name} elements, got {len(elements)} "
            f"- at `$.{node_name}`"
        )
        raise SchemaError(msg)
    if len(transfers) != 1:
        got = "none" if not transfers else len(transfers)
        raise SchemaError(f"expected one BaseTransfer element, got {got} - at `$.BaseTransfer`")
    for tag, count in optional.items():
        name, most = _OPTIONAL_LIMITS[tag]
        if count > most:
            msg = f"expected at most {most} {name} elements, got {count} - at `$.{name}`"
            raise SchemaError(msg)
    return elements, transfers[0]


def _base_transfer(element: Any) -> str:
    """Validate BaseTransfer; returns its copCode."""
    try:
        fields = _checked_texts(element, _TRANSFER_FIELDS, "$")
        transfer = msgspec.convert(fields, _BaseTransfer)
    except _NodeError as exc:
        raise SchemaError(_within(exc.args[0], "BaseTransfer")) from None
    except msgspec.ValidationError as exc:
        raise SchemaError(_within(str(exc), "BaseTransfer")) from None
    return transfer.copCode


def _within(detail: str, element: str) -> str:
    """A detail about an element's fields, its paths moved under the element."""
    if " - at `$" in detail:
        return detail.replace(" - at `$", f" - at `$.{element}", 1)
    return f"{detail} - at `$.{element}`"


def _document(layout: _Layout, element: Any, nested: bool) -> Document:
    """The document of one node; raises _NodeError or msgspec.ValidationError."""
    head: dict[str, Any] | None = None
    lines: list[dict[str, Any]] = []
    for part in element:
        tag = part.tag
        if tag == layout.head:
            if head is not None:
                raise _NodeError(f"expected one {tag[len(_NS) :]} element, got more - at `$`")
            head = _texts(part, layout.fields, nested, None)
        elif tag == _LINE and layout.struct is Order:
            line = _texts(part, _LINE_FIELDS, nested, len(lines))
            _integer(line, "gnum")
            lines.append(line)
    if head is None:
        raise _NodeError(f"expected one {layout.head[len(_NS) :]} element, got none - at `$`")
    for name in layout.integers:
        _integer(head, name)
    if layout.struct is Order:
        head["orderList"] = lines
    document: Document = msgspec.convert(head, layout.struct, dec_hook=dec_hook)
    return document


def _texts(element: Any, tags: dict[str, str], nested: bool, line: int | None) -> dict[str, Any]:
    """Field name -> text of the field elements of a head (line None) or of an order line."""
    # The fast path, for a node with no field holding elements (nested False): as many
    # distinct names as children means no field is repeated and at most one child is not a
    # field (its name is None).
    fields = {tags.get(child.tag): child.text or "" for child in element}
    if nested or len(fields) != len(element):
        return _checked_texts(element, tags, "$" if line is None else f"$.orderList[{line}]")
    fields.pop(None, None)
    return fields  # type: ignore[return-value] # the None key is gone


def _checked_texts(element: Any, tags: dict[str, str], path: str) -> dict[str, Any]:
    """Field name -> text, refusing a repeated field element or one holding elements."""
    fields: dict[str, Any] = {}
    for child in element:
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


def _integer(fields: dict[str, Any], name: str) -> None:
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
    """A CEB3x1Message holding the documents as nodes, with a BaseTransfer from the sender.

    Fields are written in the standard's order (the struct's), ``None`` fields omitted, amounts
    as their decimal text, an order's lines as OrderList elements. ``prefixed`` writes ``ceb:``
    prefixes, else a default namespace. The guid defaults to a uuid5 of the documents' guids
    (upper case), so the same documents make the same message. The node count is not checked:
    tests build oversize messages with it. Raises TypeError for a document of another type and
    ValueError for a text XML cannot carry (a control character).
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
