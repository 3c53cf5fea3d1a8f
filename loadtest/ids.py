# ruff: noqa: RUF001 - Chinese text is written with full-width punctuation, as it should be.
"""Realistic, invented data for the load test: people, resident IDs, addresses, firms, goods,
and realistic garbage.

Everything is drawn from a ``random.Random`` passed in, so a seed reproduces it. Resident IDs follow
GB 11643-1999 (domain.md §4.4): 6-digit region code, birth date ``YYYYMMDD``, 3-digit sequence,
and an ISO 7064 MOD 11-2 check character (upper-case ``X`` for 10). This module has its own check
(:func:`is_valid_resident_id`) so the load test does not depend on sandan's matchers.

Firm codes have the shape of customs registration codes (10 characters) but are invented, except
Tenpay's ``4403169D3W``, which domain.md cites; names are plausible, not real registrations.
"""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import msgspec

__all__ = (
    "CENT",
    "GOODS",
    "LOGISTICS_FIRMS",
    "PAY_FIRMS",
    "PLATFORMS",
    "SHOPS",
    "VIRTUAL_PREFIXES",
    "ZERO",
    "Doc",
    "Firm",
    "Goods",
    "Person",
    "address",
    "address_variant",
    "alter_char",
    "alter_digit",
    "chance",
    "check_char",
    "chinese_name",
    "full_width",
    "garbage",
    "guid",
    "invalid_resident_id",
    "is_valid_resident_id",
    "mobile",
    "name_variant",
    "parcel_station",
    "person",
    "resident_id",
    "serial",
    "telephone_variant",
    "yuan",
)

Doc = dict[str, Any]
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_LENGTH = 18


class Firm(msgspec.Struct, frozen=True):
    """A firm registered with customs; ``pattern`` shapes its serial numbers (:func:`serial`)."""

    code: str
    name: str
    pattern: str


class Goods(msgspec.Struct, frozen=True):
    """A catalogue item: the order line's fields, and a unit price range in yuan."""

    name: str
    model: str
    unit: str
    country: str
    low: int
    high: int


class Person(msgspec.Struct, frozen=True):
    """A buyer (and usually payer and consignee) with a resident ID, phone and home address."""

    name: str
    id_number: str
    phone: str
    reg_no: str
    district: str
    address: str


def chance(rng: random.Random, probability: float) -> bool:
    """True with the given probability."""
    return rng.random() < probability


def guid(rng: random.Random) -> str:
    """A 36-character upper-case UUID (version 4 layout) from the seeded generator."""
    h = f"{rng.getrandbits(128):032X}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89AB'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def check_char(body: str) -> str:
    """The ISO 7064 MOD 11-2 check character of a 17-digit ID body (``X`` for 10)."""
    return _CHECK[sum(int(c) * w for c, w in zip(body, _WEIGHTS, strict=True)) % 11]


def is_valid_resident_id(text: str) -> bool:
    """True for an 18-character ID with a real birth date and the right check character."""
    if len(text) != _ID_LENGTH or not text[:17].isascii() or not text[:17].isdigit():
        return False
    try:
        date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    return text[17] == check_char(text[:17])


# (GB/T 2260 district code, the address up to the district)
_DISTRICTS = (
    ("110101", "北京市东城区"),
    ("110105", "北京市朝阳区"),
    ("110108", "北京市海淀区"),
    ("120101", "天津市和平区"),
    ("310104", "上海市徐汇区"),
    ("310112", "上海市闵行区"),
    ("310115", "上海市浦东新区"),
    ("320106", "江苏省南京市鼓楼区"),
    ("320505", "江苏省苏州市虎丘区"),
    ("330106", "浙江省杭州市西湖区"),
    ("330108", "浙江省杭州市滨江区"),
    ("340104", "安徽省合肥市蜀山区"),
    ("350203", "福建省厦门市思明区"),
    ("370202", "山东省青岛市市南区"),
    ("410105", "河南省郑州市金水区"),
    ("420106", "湖北省武汉市武昌区"),
    ("430104", "湖南省长沙市岳麓区"),
    ("440106", "广东省广州市天河区"),
    ("440304", "广东省深圳市福田区"),
    ("440305", "广东省深圳市南山区"),
    ("500103", "重庆市渝中区"),
    ("510107", "四川省成都市武侯区"),
    ("530102", "云南省昆明市五华区"),
    ("610113", "陕西省西安市雁塔区"),
)
_STREETS = (
    "中山路", "人民路", "解放路", "建设路", "文三路", "科技园南路", "长江路", "黄河路", "新华路",
    "和平路", "滨江大道", "学院路", "天府大道", "光谷大道", "金融街", "南京西路", "五四路",
)  # fmt: skip
_ESTATES = (
    "阳光花园", "锦绣华庭", "翠湖苑", "金色家园", "世纪城", "滨江花园", "绿城玫瑰园", "幸福里",
    "香樟苑", "枫林湾", "御景湾", "东方明珠花园", "都市丽景", "春晓苑", "海棠湾",
)  # fmt: skip
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史黎贺顾毛郝龚"
)
_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "慕容")
_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉萍红鹏辉建文斌宇浩凯婷雪琳晨欣怡子涵梓轩"
    "诗雨嘉佳思博俊一诺睿泽欢倩颖晶峰鑫龙飞亮宁波云燕琴兰梅莉凤春海林东阳晓振永志国成荣新丹蕾"
)
_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
    "156", "158", "159", "166", "173", "176", "177", "180", "181", "185", "186", "187", "188",
    "189", "191", "198", "199",
)  # fmt: skip
_FULL_WIDTH = {ord("0") + i: 0xFF10 + i for i in range(10)}  # 0-9 to their full-width forms
_FULL_WIDTH_ALL = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}  # printable ASCII to full width
# Numbers of virtual operators (drop points and parcel stations use them): never drawn by
# :func:`mobile`, so a planted drop point's telephone is no ordinary buyer's.
VIRTUAL_PREFIXES = ("162", "165", "167", "170", "171")
_STATIONS = ("菜鸟驿站", "丰巢快递柜", "妈妈驿站", "兔喜生活", "京东快递站", "邮政驿站")
_SPACES = (" ", "\u3000", "  ")  # a space, the ideographic space, two spaces


def chinese_name(rng: random.Random) -> str:
    """A Chinese personal name: mostly one-character surnames, one or two given characters."""
    surname = rng.choice(_COMPOUND_SURNAMES) if chance(rng, 0.02) else rng.choice(_SURNAMES)
    return surname + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))


def mobile(rng: random.Random) -> str:
    """An 11-digit mainland mobile number."""
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def full_width(text: str) -> str:
    """The text with its ASCII digits turned into full-width ones (a classic data-entry fault)."""
    return text.translate(_FULL_WIDTH)


def name_variant(rng: random.Random, name: str) -> str:
    """The name written otherwise, the same once normalised (schemas.alerts): a space or an
    ideographic space inside, around or after it; an ASCII name in another case or full width."""
    if name.isascii() and any(c.isalpha() for c in name):
        match rng.randrange(3):
            case 0:
                return name.upper() if name != name.upper() else name.lower()
            case 1:
                return name.translate(_FULL_WIDTH_ALL)
            case _:
                return f" {name} "
    if len(name) > 1 and chance(rng, 0.7):
        i = rng.randrange(1, len(name))
        return name[:i] + rng.choice(_SPACES) + name[i:]
    return name + rng.choice(_SPACES)


def address_variant(rng: random.Random, text: str) -> str:
    """The address written otherwise, the same once normalised: its digits full width, a space
    after its province, city or district, or a trailing space."""
    match rng.randrange(3):
        case 0 if any(c.isascii() and c.isdigit() for c in text):
            return full_width(text)
        case 1:
            for mark in ("区", "市", "省"):
                if mark in text[:-1]:
                    head, tail = text.split(mark, 1)
                    return f"{head}{mark}{rng.choice(_SPACES)}{tail}"
    return text + rng.choice(_SPACES)


def telephone_variant(rng: random.Random, phone: str) -> str:
    """An 11-digit mobile number written otherwise, the same once normalised: with ``+86`` or
    ``86``, grouped by spaces or dashes, or in full-width digits."""
    grouped = f"{phone[:3]}{{0}}{phone[3:7]}{{0}}{phone[7:]}"
    match rng.randrange(5):
        case 0:
            return f"+86 {phone}"
        case 1:
            return f"86{phone}"
        case 2:
            return grouped.format("-")
        case 3:
            return "+86 " + grouped.format(" ")
        case _:
            return full_width(phone)


def parcel_station(rng: random.Random, number: str) -> tuple[str, str]:
    """A district code and the address of a parcel station (a drop point) numbered ``number``."""
    code, prefix = rng.choice(_DISTRICTS)
    street = f"{rng.choice(_STREETS)}{rng.randint(1, 999)}号"
    return code, f"{prefix}{street}{rng.choice(_STATIONS)}（{rng.choice(_ESTATES)}店{number}）"


def address(rng: random.Random) -> tuple[str, str]:
    """A district code and a full street address inside that district."""
    code, prefix = rng.choice(_DISTRICTS)
    street = f"{rng.choice(_STREETS)}{rng.randint(1, 999)}号"
    home = f"{rng.choice(_ESTATES)}{rng.randint(1, 30)}栋{rng.randint(1, 4)}单元"
    room = f"{rng.randint(1, 33)}{rng.randint(1, 8):02d}室"
    return code, prefix + street + home + room


def resident_id(rng: random.Random, *, region: str | None = None, birth: date | None = None) -> str:
    """A valid 18-character resident ID (birth dates 1950-2005)."""
    region = region or rng.choice(_DISTRICTS)[0]
    if birth is None:
        birth = date(1950, 1, 1) + timedelta(days=rng.randrange(20454))  # to 2005-12-31
    body = f"{region}{birth:%Y%m%d}{rng.randrange(1, 1000):03d}"
    return body + check_char(body)


def person(rng: random.Random, id_number: str | None = None) -> Person:
    """A new person; ``id_number`` overrides the valid ID drawn otherwise."""
    district, home = address(rng)
    return Person(
        name=chinese_name(rng),
        id_number=id_number or resident_id(rng, region=district),
        phone=mobile(rng),
        reg_no=rng.choice(("u", "m_", "tb", "jd_")) + f"{rng.randrange(10**9):09d}",
        district=district,
        address=home,
    )


def serial(rng: random.Random, pattern: str, day: date) -> str:
    """A serial number after ``pattern``: ``#`` a digit, ``@`` an upper-case letter, ``{d}`` the
    date ``YYYYMMDD``, other characters as they are."""
    out = []
    for run in _RUNS.findall(pattern.replace("{d}", f"{day:%Y%m%d}")):
        if run[0] == "#":  # one draw for a run of digits
            out.append(f"{rng.randrange(10 ** len(run)):0{len(run)}d}")
        elif run[0] == "@":
            out.extend(chr(65 + rng.randrange(26)) for _ in run)
        else:
            out.append(run)
    return "".join(out)


_RUNS = re.compile(r"#+|@+|[^#@]+")


# Platforms (ebpCode, name, orderNo pattern). The numeric patterns overlap on purpose: the
# ambiguous-waybill fault needs one orderNo that two platforms can both have issued.
PLATFORMS = (
    Firm("3301964J31", "杭州云集跨境电子商务有限公司", "{d}##########"),
    Firm("1105910159", "北京京选国际电子商务有限公司", "#############"),
    Firm("4403960NRM", "深圳前海海淘网络科技有限公司", "HT{d}########"),
    Firm("3120660Z01", "上海环球优品电子商务有限公司", "GO##############"),
    Firm("4601660A2B", "海南国际免税购物平台有限公司", "HN{d}######@"),
    Firm("3702960Q8K", "青岛海购全球电子商务有限公司", "#############"),
)
# E-commerce firms (shops) selling on the platforms: ebcCode, ebcName.
SHOPS = (
    ("3301960XYZ", "杭州优选海外旗舰店贸易有限公司"),
    ("3301966K21", "浙江母婴之家进出口有限公司"),
    ("1105960A77", "北京美妆汇国际贸易有限公司"),
    ("4403966B0C", "深圳环球保健品进出口有限公司"),
    ("3120960M5E", "上海欧洲红酒直营贸易有限公司"),
    ("4601960H3F", "海南免税精品贸易有限公司"),
    ("3702966T88", "青岛日韩优品进出口有限公司"),
    ("4403964P9A", "深圳数码生活跨境贸易有限公司"),
)
PAY_FIRMS = (
    Firm("4403169D3W", "财付通支付科技有限公司", "4200001{d}##############"),
    Firm("31222699S7", "支付宝（中国）网络技术有限公司", "{d}22001##############"),
    Firm("1101080JDZ", "网银在线（北京）科技有限公司", "JDPAY{d}############"),
    Firm("3101960UMS", "银联商务支付股份有限公司", "UMS##################"),
    Firm("3120961TLZ", "通联支付网络服务股份有限公司", "TL{d}##########"),
)
LOGISTICS_FIRMS = (
    Firm("440316T01B", "顺丰速运有限公司", "SF#############"),
    Firm("3122680ZTO", "中通国际物流有限公司", "7##############"),
    Firm("1100980EMS", "中国邮政速递物流股份有限公司", "E#########CN"),
    Firm("3301980YTO", "圆通速递有限公司", "YT#############"),
    Firm("3301968CNL", "菜鸟供应链管理有限公司", "LP##############"),
    Firm("4403680JDL", "京东物流供应链有限公司", "JDVA###########"),
)
# Units: 122 罐, 125 包, 140 盒, 142 瓶, 011 件, 007 个; countries: 116 日本, 133 韩国,
# 304 德国, 305 法国, 307 意大利, 309 荷兰, 331 瑞士, 502 美国, 601 澳大利亚, 609 新西兰.
GOODS = (
    Goods("婴幼儿配方奶粉3段", "800g/罐；品牌：美素；适用1-3岁", "122", "309", 180, 420),
    Goods("婴儿纸尿裤L号", "54片/包；品牌：花王", "125", "116", 89, 169),
    Goods("补水保湿面膜", "10片/盒；品牌：JM", "140", "133", 59, 199),
    Goods("修护精华液", "50ml/瓶；品牌：雅诗", "142", "502", 390, 980),
    Goods("深海鱼油软胶囊", "1000mg*200粒/瓶；品牌：Nature", "142", "601", 99, 268),
    Goods("复合维生素片", "100片/瓶；品牌：Swiss", "142", "601", 79, 239),
    Goods("乳清蛋白粉", "2.27kg/罐；品牌：ON", "122", "502", 299, 599),
    Goods("干红葡萄酒", "750ml/瓶；产区：波尔多", "142", "305", 128, 1280),
    Goods("麦卢卡蜂蜜UMF10+", "500g/瓶；品牌：康维他", "142", "609", 199, 499),
    Goods("黑巧克力礼盒", "250g/盒；可可含量70%", "140", "331", 69, 189),
    Goods("声波电动牙刷", "1支装；品牌：博朗", "007", "304", 299, 899),
    Goods("防晒乳SPF50", "60ml/瓶；品牌：安热沙", "142", "116", 139, 229),
    Goods("淡香水", "100ml/瓶；木质花香调", "142", "305", 499, 1299),
    Goods("洗发水", "500ml/瓶；无硅油", "142", "116", 49, 129),
    Goods("咖啡豆", "1kg/包；意式拼配", "125", "307", 119, 329),
    Goods("机械腕表", "表径40mm；瑞士产", "011", "331", 3800, 48000),
    Goods("真皮手提包", "小牛皮；33x25cm", "011", "307", 4200, 36000),
)


def invalid_resident_id(rng: random.Random) -> str:
    """An ID that fails the rule: wrong check char, impossible date, lower-case x, or 15 digits."""
    region = rng.choice(_DISTRICTS)[0]
    match rng.randrange(4):
        case 0:
            valid = resident_id(rng)
            return valid[:17] + rng.choice([c for c in _CHECK if c != valid[17]])
        case 1:
            day = rng.choice(("19900230", "19871301", "20010000", "19950431", "19830229"))
            body = f"{region}{day}{rng.randrange(1, 1000):03d}"
            return body + check_char(body)
        case 2:
            while not (valid := resident_id(rng)).endswith("X"):
                pass
            return valid[:17] + "x"
        case _:  # the legacy 15-digit form: region, YYMMDD, sequence
            day = f"{rng.randint(50, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            return f"{region}{day}{rng.randrange(1000):03d}"


def alter_char(rng: random.Random, text: str, alphabet: str = _GIVEN) -> str:
    """The text with one character replaced by a different one from ``alphabet``."""
    i = rng.randrange(len(text))
    return text[:i] + rng.choice([c for c in alphabet if c != text[i]]) + text[i + 1 :]


def alter_digit(rng: random.Random, text: str) -> str:
    """The text with one of its digits replaced by another digit."""
    i = rng.choice([k for k, c in enumerate(text) if c.isdigit()])
    return text[:i] + rng.choice([d for d in "0123456789" if d != text[i]]) + text[i + 1 :]


def yuan(rng: random.Random, low: float | Decimal, high: float | Decimal) -> Decimal:
    """A random amount in [low, high] yuan, in cents."""
    return Decimal(rng.randint(round(low * 100), round(high * 100))).scaleb(-2)


_AMOUNT_FIELD = {"order": "goodsValue", "payment": "amountPaid", "logistics": "weight"}
_LONG_FIELDS = {
    "order": (("orderNo", 60), ("buyerName", 60), ("consigneeAddress", 200)),
    "payment": (("payTransactionId", 60), ("payerName", 60)),
    "logistics": (("logisticsNo", 60), ("consigneeAddress", 200)),
}
_BAD_ENUMS = {
    "order": (("currency", "840"), ("buyerIdType", "2"), ("orderType", "E")),
    "payment": (("currency", "840"), ("payerIdType", "2"), ("currency", "USD")),
    "logistics": (("currency", "840"), ("packNo", 2), ("packNo", "1")),
}
_REQUIRED = {"order": "consignee", "payment": "payerIdNumber", "logistics": "logisticsNo"}
_XML_ROOT = {"order": "CEB311Message", "payment": "CEB411Message", "logistics": "CEB511Message"}
_ENCODE = msgspec.json.Encoder().encode


def garbage(rng: random.Random, kind: str, doc: Doc) -> bytes:
    """A record value that should not decode as a ``kind`` document, made from ``doc`` (changed).

    Not JSON (text, truncated, GBK, XML, empty), a JSON array, a field too long, an enumeration
    out of range (currency 840), a wrong type, a malformed amount or time, a required field gone.
    A variant may not apply to every document: the caller checks that the result fails.
    """
    match rng.randrange(12):
        case 0:
            return "订单推送失败：系统繁忙，请稍后重试".encode()
        case 1:
            return _ENCODE(doc)[: rng.randrange(10, 80)]
        case 2:
            return _ENCODE(doc).decode().encode("gbk", errors="replace")
        case 3:
            root, head, guid_ = _XML_ROOT[kind], kind.capitalize() + "Head", doc["guid"]
            xml = f'<?xml version="1.0"?><ceb:{root} guid="{guid_}" version="1.0" '
            xml += f'xmlns:ceb="http://www.chinaport.gov.cn/ceb"><ceb:{head}><ceb:orderNo>'
            return f"{xml}{doc['orderNo']}</ceb:orderNo></ceb:{head}></ceb:{root}>".encode()
        case 4:
            return b"[" + _ENCODE(doc) + b"]"
        case 5:
            return b""
        case 6:
            field, limit = rng.choice(_LONG_FIELDS[kind])
            doc[field] = (str(doc[field]) * 50)[: limit + rng.randint(1, 20)]
        case 7:
            field, value = rng.choice(_BAD_ENUMS[kind])
            doc[field] = value
        case 8:
            doc[rng.choice(("appType", "appStatus"))] = int(doc["appType"])
        case 9:
            bad = rng.choice((True, "12.345678", "-5.00", "1e3", "1,000.00", "¥99.00"))
            doc[_AMOUNT_FIELD[kind]] = bad
        case 10:
            doc["appTime"] = rng.choice(("2026-03-01 10:00:00", "20260230101010", "202603011000"))
        case _:
            del doc[_REQUIRED[kind]]
    return _ENCODE(doc)
