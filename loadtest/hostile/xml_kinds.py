"""Hostile-input builders for CEB XML messages.

Most start from a valid message parsed with lxml (the inputs are our own), change the tree,
and serialize it; what lxml would refuse to write (control characters, invalid UTF-8, raw
markup) goes in as bytes in place of a placeholder element or text after serializing.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from lxml import etree

from loadtest.hostile.base import MARK, MAX_MESSAGE_BYTES, Mutation
from loadtest.hostile.json_kinds import AMOUNTS, INVALID_UTF8, numbers
from schemas.ceb_xml import CEB_NAMESPACE, MESSAGE_ROOTS
from schemas.documents import DOC_TYPES

__all__ = (
    "attributes",
    "control_chars",
    "declaration",
    "deep_nesting",
    "duplicate_keys",
    "entities",
    "extra_fields",
    "huge_number",
    "huge_string",
    "invalid_utf8",
    "missing_fields",
    "namespace",
    "nan_infinity",
    "not_a_message",
    "oversize",
    "structure",
    "surrogates",
    "wrong_type",
)

_NS = f"{{{CEB_NAMESPACE}}}"
_MARK_BYTES = MARK.encode()
_MARK_ELEMENT = re.compile(rb"<(?:ceb:)?" + _MARK_BYTES + rb"(?: xmlns(?::ceb)?=\"[^\"]*\")?/>")
_DECLARATION = re.compile(rb"^<\?xml[^>]*\?>")
_OTHER_NAMESPACES = (
    "http://www.chinaport.gov.cn/ceb2",
    "HTTP://WWW.CHINAPORT.GOV.CN/CEB",
    "http://www.chinaport.gov.cn/ceb/",
    "urn:x",
    "http://www.w3.org/2000/09/xmldsig#",
)


def _root(m: Mutation) -> Any:
    return etree.fromstring(m.valid("xml"))


def _bytes(m: Mutation, root: Any) -> bytes:
    declaration = m.chance(0.6)
    written: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=declaration)
    return written


def _leaves(root: Any, names: frozenset[str] | None = None) -> list[Any]:
    leaves = [e for e in root.iter() if isinstance(e.tag, str) and len(e) == 0 and e is not root]
    if names:
        named = [e for e in leaves if etree.QName(e).localname in names]
        return named or leaves
    return leaves


def _parents(root: Any) -> list[Any]:
    return [e for e in root.iter() if isinstance(e.tag, str) and len(e)]


def in_text(m: Mutation, raw: bytes, names: frozenset[str] | None = None) -> bytes:
    """A valid message with the raw bytes as a field's text (named in ``names`` if any)."""
    root = _root(m)
    m.rng.choice(_leaves(root, names)).text = MARK
    return _bytes(m, root).replace(_MARK_BYTES, raw, 1)


def as_child(m: Mutation, raw: bytes, root: Any = None) -> bytes:
    """A valid message with the raw bytes as a new child of one of its elements."""
    root = _root(m) if root is None else root
    etree.SubElement(m.rng.choice(_parents(root)), _NS + MARK)
    return _MARK_ELEMENT.sub(lambda _: raw, _bytes(m, root), count=1)


def deep_nesting(m: Mutation) -> bytes:
    """Elements 10 to 100,000 deep, closed or not: in a field, a node, or around the message."""
    depth = m.size(1, 5)
    tag = m.rng.choice((b"a", b"ceb:Order", b"OrderHead", b"x:y"))
    closed = m.chance(0.8)
    nested = (b"<" + tag + b">") * depth + b"1"
    if closed:
        nested += (b"</" + tag + b">") * depth
    match m.rng.randrange(3):
        case 0:
            return in_text(m, nested)
        case 1:
            return as_child(m, nested)
        case _:
            body = _DECLARATION.sub(b"", m.valid())
            return (b"<a>" * depth) + body + (b"</a>" * depth if closed else b"")


def huge_string(m: Mutation) -> bytes:
    """A text, attribute, tag, comment or CDATA of 10^3 to 10^6 characters."""
    size = m.size(3, 6)
    unit = m.rng.choice((b"x", "中".encode(), "😀".encode(), b"&amp;", b"&#x4E2D;", b" "))
    match m.rng.randrange(5):
        case 0:
            return in_text(m, unit * size)
        case 1:
            root = _root(m)
            root.set(m.rng.choice(("guid", "version", "huge")), "g" * size)
            return _bytes(m, root)
        case 2:
            return as_child(m, b"<" + b"t" * size + b"/>")
        case 3:
            return as_child(m, b"<!--" + b"c" * size + b"-->")
        case _:
            return in_text(m, b"<![CDATA[" + unit * size + b"]]>")


def huge_number(m: Mutation) -> bytes:
    """A number's text that is huge, tiny, signed, or no number, in amounts and integers."""
    names = AMOUNTS if m.chance(0.6) else frozenset(("gnum", "packNo"))
    text = numbers(m)
    if m.chance(0.2):
        text = m.rng.choice(("\uff11\uff12".encode(), b"99999999999999999999", b" 1 ", b"1\n"))
    return in_text(m, text, names)


def nan_infinity(m: Mutation) -> bytes:
    """NaN and infinities where amounts and integers go."""
    text = m.rng.choice((b"NaN", b"Infinity", b"-INF", b"INF", b"nan", b"-Infinity", b"inf"))
    return in_text(m, text, AMOUNTS | {"gnum", "packNo"})


def duplicate_keys(m: Mutation) -> bytes:
    """A field element, a head or an attribute repeated."""
    root = _root(m)
    match m.rng.randrange(3):
        case 0:
            leaf = m.rng.choice(_leaves(root))
            twin = copy.deepcopy(leaf)
            twin.tail = None
            twin.text = m.rng.choice(("1", "3", "", "x", leaf.text or ""))
            leaf.addnext(twin)
            return _bytes(m, root)
        case 1:
            head = m.rng.choice(_parents(root))
            if head is not root:
                head.addnext(copy.deepcopy(head))
            return _bytes(m, root)
        case _:
            raw = _bytes(m, root)
            return raw.replace(b' guid="', b' guid="X" guid="', 1)


def invalid_utf8(m: Mutation) -> bytes:
    """Invalid UTF-8 in a text, a tag name, an attribute or a comment."""
    seq = m.rng.choice(INVALID_UTF8)
    match m.rng.randrange(4):
        case 0:
            return in_text(m, b"ab" + seq + b"cd")
        case 1:
            return m.valid().replace(b"Head>", b"He" + seq + b"ad>", 1)
        case 2:
            return m.valid().replace(b' guid="', b' guid="' + seq, 1)
        case _:
            return as_child(m, b"<!--" + seq + b"-->")


def surrogates(m: Mutation) -> bytes:
    """Surrogate code points as character references or CESU-8 bytes."""
    text = m.rng.choice(
        (b"&#xD800;", b"&#55296;", b"&#xDFFF;", b"&#xD83D;&#xDE00;", b"\xed\xa0\xbd\xed\xb8\x80")
    )
    if m.chance(0.2):
        return m.valid().replace(b' guid="', b' guid="' + text, 1)
    return in_text(m, text)


_CONTROL_TEXTS: tuple[bytes, ...] = (b"&#0;", b"&#x1F;", b"&#xFFFE;", b"&#xFFFF;", b"&#x110000;")
_CONTROL_TEXTS += (
    b"&#xFFFFFFFFFF;",
    b"&#;",
    b"&#x;",
    b"\xef\xbf\xbe",
    b"\xc2\x85",
    b"\x7f",
    b"\t\r\n",
)


def control_chars(m: Mutation) -> bytes:
    """Control characters raw and as references; noncharacters; references out of range."""
    char = m.rng.choice((*range(9), 11, 12, *range(14, 32)))
    text = m.rng.choice((bytes([char]), b"&#%d;" % char, *_CONTROL_TEXTS))
    if m.chance(0.15):
        return m.valid().replace(b"><", b">" + text + b"<", 1)
    return in_text(m, b"a" + text + b"b")


_WRONG_TEXTS = ("abc", "", " ", "1.0", "true", "null", "-1", "\uff10", "1,000", "¥1", "0x1", "1e2")


def wrong_type(m: Mutation) -> bytes:
    """A field's text of the wrong kind, or a field holding elements."""
    root = _root(m)
    leaf = m.rng.choice(_leaves(root))
    if m.chance(0.3):
        etree.SubElement(leaf, leaf.tag).text = leaf.text
    else:
        leaf.text = m.rng.choice(_WRONG_TEXTS)
    return _bytes(m, root)


def missing_fields(m: Mutation) -> bytes:
    """Field elements, heads, lines or a node's whole content dropped."""
    root = _root(m)
    if m.chance(0.3):
        parent = m.rng.choice(_parents(root))
        for child in parent[: m.rng.randint(1, len(parent))]:
            parent.remove(child)
    else:
        for _ in range(m.rng.choice((1, 1, 2, 5))):
            leaf = m.rng.choice(_leaves(root))
            if (parent := leaf.getparent()) is not None:
                parent.remove(leaf)
    return _bytes(m, root)


def extra_fields(m: Mutation) -> bytes:
    """Unknown elements (some in other namespaces) and attributes, up to ~3,000 of them."""
    root = _root(m)
    parents = _parents(root)
    for i in range(m.size(0, 3.5)):
        parent = m.rng.choice(parents)
        namespace = m.rng.choice((_NS, _NS, "", f"{{{m.rng.choice(_OTHER_NAMESPACES)}}}"))
        if m.chance(0.8):
            etree.SubElement(parent, f"{namespace}x{i % 50}").text = "1"
        else:
            parent.set(f"{namespace}a{i}", "v")
    return _bytes(m, root)


_FRAGMENTS: tuple[bytes, ...] = (b"<", b"<a/>", b"<>", b"</a>", b"<a>", b"<!-- -->")
_FRAGMENTS += (b"<![CDATA[x]]>", b"<?xml version='1.0'?>", b"<?xml version='1.0'?>\n")


def not_a_message(m: Mutation) -> bytes:
    """Markup that is no message: fragments, two roots, text after the root, a lone root."""
    raw = m.valid()
    body = _DECLARATION.sub(b"", raw)
    root_name = MESSAGE_ROOTS[m.doc_type].encode()
    return m.rng.choice(
        (
            *_FRAGMENTS,
            b"< " + root_name,
            b"<" + root_name + b"/>",
            b"<ceb:" + root_name + b"/>",
            b"<" + root_name + b' xmlns="' + CEB_NAMESPACE.encode() + b'"/>',
            raw + body,
            raw + b"text",
            raw + b"\x00",
            raw + b"<",
            b"<r>" + body + b"</r>",
        )
    )


def oversize(m: Mutation) -> bytes:
    """A message one byte under, at and over the message limit, or far over it."""
    raw = m.valid()
    under = m.chance(0.1)  # parsing 4 MiB costs: a few of these suffice
    target = MAX_MESSAGE_BYTES + (m.rng.choice((-1, 0)) if under else m.rng.choice((1, 1000)))
    padding = b" " * max(0, target - len(raw))
    at = raw.rindex(b"</")
    return raw[:at] + padding + raw[at:]


# CDATA, comments and processing instructions (dropped) in a field's text; markup misplaced
_IN_TEXT: tuple[bytes, ...] = (b"<![CDATA[12.00]]>", b"<![CDATA[<a>]]>", b"<![CDATA[]]>]]>")
_IN_TEXT += (
    b"12<!-- x -->.00",
    b"<?pi x?>12.00",
    b"<!ENTITY e 'x'>",
    b"<![CDATA[",
    b"<!-- <!DOCTYPE x> -->",
)
_DTD_NAMES = {kind: f"ceb:{root}" for kind, root in MESSAGE_ROOTS.items()}


def entities(m: Mutation) -> bytes:
    """DOCTYPEs (entities, billion laughs, XXE, external DTDs), undefined entities, CDATA,
    comments and processing instructions in texts, XInclude."""
    name = _DTD_NAMES[m.doc_type].encode()
    laughs = b"".join(
        b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10 if i else b"lol") for i in range(10)
    )
    doctypes = (
        b'<!DOCTYPE %s [<!ENTITY e "12.00">]>' % name,
        b"<!DOCTYPE %s [%s]>" % (name, laughs),
        b'<!DOCTYPE %s [<!ENTITY e SYSTEM "file:///etc/passwd">]>' % name,
        b'<!DOCTYPE %s SYSTEM "http://127.0.0.1:9/x.dtd">' % name,
        b'<!DOCTYPE %s [<!ENTITY %% p SYSTEM "http://127.0.0.1:9/p.dtd"> %%p;]>' % name,
        b"<!doctype %s>" % name,
        b"<!DOCTYPE>",
    )
    match m.rng.randrange(4):
        case 0:
            doctype = m.rng.choice(doctypes)
            text = in_text(m, m.rng.choice((b"&e;", b"&l9;", b"12.00")))
            if declared := _DECLARATION.match(text):
                return text[: declared.end()] + doctype + text[declared.end() :]
            return doctype + text
        case 1:
            reference = (b"&e;", b"&nbsp;", b"&amp", b"&", b"&#x41;", b"&lt;", b"&e;&e;", b"&%p;")
            return in_text(m, m.rng.choice(reference))
        case 2:
            return in_text(m, m.rng.choice(_IN_TEXT))
        case _:
            include = b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>'
            return as_child(m, m.rng.choice((include, b"<!ENTITY e 'x'>")))


def namespace(m: Mutation) -> bytes:
    """The message, a node or a field in another or no namespace; prefixes undeclared or
    misbound."""
    raw = m.valid()
    ceb = CEB_NAMESPACE.encode()
    match m.rng.randrange(5):
        case 0:
            return raw.replace(ceb, m.rng.choice(_OTHER_NAMESPACES).encode())
        case 1:
            return re.sub(rb' xmlns(?::ceb)?="[^"]*"', b"", raw, count=1)
        case 2:
            root = _root(m)
            element = m.rng.choice([*_leaves(root), *_parents(root)])
            uri = m.rng.choice(("", *_OTHER_NAMESPACES))
            element.tag = f"{{{uri}}}{etree.QName(element).localname}" if uri else "bare"
            return _bytes(m, root)
        case 3:
            bindings = (b' xmlns:xml="urn:x"', b' xmlns:ceb=""', b' xmlns:xmlns="urn:x"')
            return raw.replace(b' guid="', m.rng.choice(bindings) + b' guid="', 1)
        case _:
            return raw.replace(b"Head>", b"x:Head>")


def attributes(m: Mutation) -> bytes:
    """Root guids of every wrong length and shape; many, repeated and malformed attributes."""
    root = _root(m)
    match m.rng.randrange(4):
        case 0:
            guid = m.rng.choice(("", "x" * 35, "x" * 37, "中" * 36, " " * 36, "x" * m.size(3, 6)))
            root.set("guid", guid)
        case 1:
            del root.attrib["guid"]
            if m.chance(0.5):
                root.set(_NS + "guid", "x" * 36)
        case 2:
            target = m.rng.choice([root, *_parents(root), *_leaves(root)])
            for i in range(m.size(0, 3.5)):
                target.set(f"a{i}", "v")
        case _:
            raw = _bytes(m, root)
            broken = (b" guid=abc ", b' guid="a<b" ', b' guid="a&b" ', b" guid ", b' guid="x')
            return raw.replace(b' guid="', m.rng.choice(broken) + b' old="', 1)
    return _bytes(m, root)


def structure(m: Mutation) -> bytes:
    """Root children missing, repeated, unknown or misplaced; nodes of another topic."""
    root = _root(m)
    nodes = [
        child for child in root if etree.QName(child).localname in ("Order", "Payment", "Logistics")
    ]
    transfer = root.find(_NS + "BaseTransfer")
    match m.rng.randrange(7):
        case 0 if transfer is not None:
            root.remove(transfer)
        case 1 if transfer is not None:
            root.append(copy.deepcopy(transfer))
        case 2 if transfer is not None:
            m.rng.choice(list(transfer)).text = m.rng.choice(("", "x" * 19, "DXPX", "中"))
        case 3:
            for node in nodes:
                root.remove(node)
            if m.chance(0.5):  # 101 nodes
                for _ in range(101):
                    root.insert(0, copy.deepcopy(nodes[0]))
        case 4:
            name = m.rng.choice(("Unknown", "BaseSubscribe", "ExtendMessage", "Order", "Payment"))
            for _ in range(m.rng.choice((1, 2, 6))):
                etree.SubElement(root, _NS + name)
        case 5:
            other = m.rng.choice([kind for kind in DOC_TYPES if kind != m.doc_type])
            return as_child(m, _DECLARATION.sub(b"", m.valid("xml", other)), root)
        case _:
            parent = m.rng.choice(_parents(root))
            parent.text = m.rng.choice(("mixed", " ", "1"))
            if len(parent):
                parent[0].tail = "tail"
    return _bytes(m, root)


_ENCODINGS = (
    *(b"UTF-16", b"utf-16le", b"UTF-32", b"ISO-8859-1", b"GBK", b"GB18030", b"ASCII"),
    *(b"UTF-7", b"EBCDIC-US", b"", b"UTF-8 ", b"utf8", b"UTF_8", b"x" * 1000, b"'"),
)


def declaration(m: Mutation) -> bytes:
    """Declared encodings other than UTF-8, versions, misplaced or broken declarations."""
    body = _DECLARATION.sub(b"", m.valid())
    encoding = m.rng.choice(_ENCODINGS)
    match m.rng.randrange(4):
        case 0:
            return b'<?xml version="1.0" encoding="' + encoding + b'"?>' + body
        case 1:
            version = m.rng.choice((b"1.1", b"2.0", b"", b"1.0' standalone='maybe"))
            return b"<?xml version='" + version + b"'?>" + body
        case 2:
            text = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + body
            return text.decode().encode("latin-1", "replace")
        case _:
            placed = (
                b' <?xml version="1.0"?>' + body,
                b'<?xml version="1.0"?><?xml version="1.0"?>' + body,
                b'<?XML version="1.0"?>' + body,
                b'<?xml version="1.0"' + body,
                b"<?xml?>" + body,
                body.replace(b">", b'><?xml version="1.0"?>', 1),
            )
            return m.rng.choice(placed)
