"""The donor's tracking page in words: every step, status, verdict, site kind and unit in Chinese and English
(English units singular or plural as the quantity asks, by CLDR's plural rules), money and numbers in the
page's locale, and every time in the recipient site's own time zone, named."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal
from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape

from services.logistics import account_schemas, schemas
from shared.html import style_hashes
from shared.vocabulary import BeneficiaryGroup, SiteKind, Verdict

LOCALES = {"zh": "zh_CN", "en": "en"}
DEFAULT_TIME_ZONE = "Asia/Shanghai"
# Every region code is a 6-digit administrative division code of China (shared.vocabulary.RegionCode); its first
# two digits name the province. Mainland China keeps one time, Beijing time; Hong Kong, Macao and Taiwan have zones
# of their own (the same UTC+8 today, named differently).
TIME_ZONES_BY_PROVINCE = {"71": "Asia/Taipei", "81": "Asia/Hong_Kong", "82": "Asia/Macau"}

TITLES: dict[str, tuple[str, str]] = {
    "offered": ("登记捐赠", "Gift registered"),
    "verified": ("工作组核验", "Checked by a working group"),
    "withdrawn": ("捐赠撤回", "Gift withdrawn"),
    "allocated": ("匹配到需求", "Matched to a need"),
    "procurement_ordered": ("善款采购下单", "Goods ordered with the donation"),
    "procurement_received": ("采购物资到货", "Purchased goods arrived"),
    "procurement_cancelled": ("采购取消", "Purchase cancelled"),
    "planned": ("安排运输", "Shipment planned"),
    "picked_up": ("已揽收", "Picked up"),
    "in_transit": ("运输中", "In transit"),
    "delivered": ("已送达", "Delivered"),
    "received": ("受助方确认收货", "Receipt confirmed"),
    "received_with_problem": ("确认收货（有差异）", "Received, with a shortfall"),
    "not_received": ("未收到", "Not received"),
    "cancelled": ("运输取消", "Shipment cancelled"),
    "feedback": ("受助方反馈", "Feedback from the recipient"),
}
# The gift's own status (supply's offer status).
STATUSES: dict[str, tuple[str, str]] = {
    "open": ("进行中", "In progress"),
    "withdrawn": ("已撤回", "Withdrawn"),
    "closed": ("已完成", "Completed"),
}
VERDICTS: dict[str, tuple[str, str]] = {
    Verdict.verified: ("核验通过", "Passed the check"),
    Verdict.rejected: ("未通过核验", "Did not pass the check"),
    "reclassified": ("已重新归类", "Reclassified"),
}
SITE_KINDS: dict[str, tuple[str, str]] = {
    SiteKind.hospital: ("医院", "hospital"),
    SiteKind.community: ("社区", "community"),
    SiteKind.shelter: ("安置点", "shelter"),
    SiteKind.school: ("学校", "school"),
    SiteKind.nursing_home: ("养老院", "nursing home"),
    SiteKind.ngo: ("社会组织", "NGO"),
    SiteKind.government: ("街道/政府", "street office or government"),
    SiteKind.other: ("其他", "other"),
}
GROUPS: dict[str, tuple[str, str]] = {
    BeneficiaryGroup.medical_staff: ("医护人员", "medical staff"),
    BeneficiaryGroup.community_residents: ("社区居民", "community residents"),
    BeneficiaryGroup.elderly: ("老人", "elderly people"),
    BeneficiaryGroup.children: ("儿童", "children"),
    BeneficiaryGroup.students: ("高校学生", "students"),
    BeneficiaryGroup.migrant_workers: ("外来务工人员", "migrant workers"),
    BeneficiaryGroup.patients: ("患者", "patients"),
    BeneficiaryGroup.people_with_disabilities: ("残障人士", "people with disabilities"),
    BeneficiaryGroup.other: ("其他", "others"),
}
LEVELS: dict[str, tuple[str, str]] = {
    "province": ("省级", "Province"),
    "city": ("市级", "City"),
    "county": ("区县", "County"),
}
PURCHASES: dict[str, tuple[str, str]] = {
    "draft": ("草拟", "draft"),
    "ordered": ("已下单", "ordered"),
    "received": ("已到货", "received"),
    "cancelled": ("已取消", "cancelled"),
}
SHIPMENT_STATUSES: dict[str, tuple[str, str]] = {
    "planned": ("已安排", "planned"),
    "picked_up": ("已揽收", "picked up"),
    "in_transit": ("运输中", "in transit"),
    "delivered": ("已送达", "delivered"),
    "received": ("已签收", "received"),
    "received_with_problem": ("已签收（有差异）", "received, with a shortfall"),
    "not_received": ("未收到", "not received"),
    "cancelled": ("已取消", "cancelled"),
}
# The catalog's units: the Chinese measure word, the English singular and plural.
UNITS: dict[str, tuple[str, str, str]] = {
    "piece": ("件", "piece", "pieces"),
    "box": ("盒", "box", "boxes"),
    "pack": ("包", "pack", "packs"),
    "unit": ("台", "unit", "units"),
    "bottle": ("瓶", "bottle", "bottles"),
    "roll": ("卷", "roll", "rolls"),
    "kg": ("千克", "kg", "kg"),
    "litre": ("升", "litre", "litres"),
    "set": ("套", "set", "sets"),
    "session": ("次", "session", "sessions"),
    "pair": ("双", "pair", "pairs"),
    "carton": ("箱", "carton", "cartons"),
    "hour": ("小时", "hour", "hours"),
    "person_day": ("人天", "person-day", "person-days"),
    "tube": ("支", "tube", "tubes"),
}


def _localized(table: dict[str, tuple[str, str]], key: str) -> schemas.Localized:
    zh, en = table.get(key, (key, key))
    return schemas.Localized(zh=zh, en=en)


def title(kind: str) -> schemas.Localized:
    return _localized(TITLES, kind)


def unit_name(unit: str, quantity: int) -> schemas.Localized:
    """`unit` in words for `quantity` of it; a unit outside the catalog's (a donor's own word) stays as given."""
    zh, one, other = UNITS.get(unit, (unit, unit, unit))
    return schemas.Localized(zh=zh, en=one if Locale.parse("en").plural_form(quantity) == "one" else other)


def region_time_zone(region_code: str | None) -> str:
    """The IANA time zone of a site in this region."""
    if region_code is None:
        return DEFAULT_TIME_ZONE
    return TIME_ZONES_BY_PROVINCE.get(region_code[:2], DEFAULT_TIME_ZONE)


class Words:
    """What the template says, in one language, and how it writes numbers, money and times."""

    def __init__(self, lang: str, time_zone: str) -> None:
        self.zh = lang == "zh"
        self.locale = LOCALES[lang]
        self.zone = ZoneInfo(time_zone)

    def pick(self, text: schemas.Localized) -> str:
        return text.zh if self.zh else text.en

    def _pick(self, table: dict[str, tuple[str, str]], key: str) -> str:
        return self.pick(_localized(table, key))

    def status(self, status: str) -> str:
        return self._pick(STATUSES, status)

    def verdict(self, verdict: str) -> str:
        return self._pick(VERDICTS, verdict)

    def site_kind(self, kind: str) -> str:
        return self._pick(SITE_KINDS, kind)

    def group(self, group: str) -> str:
        return self._pick(GROUPS, group)

    def level(self, level: str) -> str:
        return self._pick(LEVELS, level)

    def purchase(self, status: str) -> str:
        return self._pick(PURCHASES, status)

    def shipment(self, status: str) -> str:
        return self._pick(SHIPMENT_STATUSES, status)

    def number(self, value: int | None) -> str:
        return format_decimal(value or 0, locale=self.locale)

    def money(self, fen: int | None, currency: str | None) -> str:
        return format_currency((fen or 0) / 100, currency or "CNY", locale=self.locale)

    def quantity(self, item: schemas.TrackItem) -> str:
        return f"{self.number(item.quantity)} {self.pick(item.unit_name)}"

    def when(self, at: datetime) -> str:
        """The time in the site's zone, with the zone's name: `2022-04-10 14:03 中国标准时间`."""
        return format_datetime(at, "yyyy-MM-dd HH:mm zzzz", tzinfo=self.zone, locale=self.locale)

    def day(self, at: datetime | None) -> str:
        """The date in the page's zone, `2022-04-10`; a dash for none."""
        return format_datetime(at, "yyyy-MM-dd", tzinfo=self.zone, locale=self.locale) if at else "—"

    def local_iso(self, at: datetime) -> str:
        return at.astimezone(self.zone).isoformat()

    def zone_name(self, at: datetime) -> str:
        """The zone's name as of `at` (standard or summer time), with its IANA id."""
        return f"{format_datetime(at, 'zzzz', tzinfo=self.zone, locale=self.locale)} ({self.zone.key})"


def wants_html(request: Request, format: str | None) -> bool:
    """A browser's request: `?format=html`, or an Accept header that names text/html before JSON."""
    if format is not None:
        return format == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split("text/html")[0]


def language(request: Request, lang: str | None) -> str:
    """`?lang=`, else the browser's Accept-Language: English if it asks for it first, else Chinese."""
    if lang is not None:
        return lang
    accepted = request.headers.get("accept-language", "zh").lower()
    return "en" if accepted.startswith("en") else "zh"


@cache
def _templates() -> Environment:
    return Environment(loader=PackageLoader("services.logistics", "templates"), autoescape=select_autoescape())


def render_tracking(tracking: schemas.Tracking, lang: str) -> str:
    words = Words(lang, tracking.time_zone)
    return _templates().get_template("track.html").render(t=tracking, lang=lang, w=words)


def render_statement(statement: account_schemas.DonorStatement, lang: str) -> str:
    words = Words(lang, DEFAULT_TIME_ZONE)
    return _templates().get_template("statement.html").render(s=statement, lang=lang, w=words)


def render_accounts(accounts: account_schemas.PublicAccounts, lang: str) -> str:
    words = Words(lang, DEFAULT_TIME_ZONE)
    return _templates().get_template("accounts.html").render(a=accounts, lang=lang, w=words)


@cache
def page_styles(template: str) -> tuple[str, ...]:
    """The Content-Security-Policy hashes of a page's style."""
    env = _templates()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, template)
    return style_hashes(source)


def tracking_page_styles() -> tuple[str, ...]:
    """The Content-Security-Policy hashes of the tracking page's style."""
    return page_styles("track.html")
