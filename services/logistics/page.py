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
from jinja2 import Environment, PackageLoader, select_autoescape

from services.logistics import schemas
from shared.html import style_hashes
from shared.vocabulary import SiteKind, Verdict

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

    def number(self, value: int | None) -> str:
        return format_decimal(value or 0, locale=self.locale)

    def money(self, fen: int | None, currency: str | None) -> str:
        return format_currency((fen or 0) / 100, currency or "CNY", locale=self.locale)

    def quantity(self, item: schemas.TrackItem) -> str:
        return f"{self.number(item.quantity)} {self.pick(item.unit_name)}"

    def when(self, at: datetime) -> str:
        """The time in the site's zone, with the zone's name: `2022-04-10 14:03 中国标准时间`."""
        return format_datetime(at, "yyyy-MM-dd HH:mm zzzz", tzinfo=self.zone, locale=self.locale)

    def local_iso(self, at: datetime) -> str:
        return at.astimezone(self.zone).isoformat()

    def zone_name(self, at: datetime) -> str:
        """The zone's name as of `at` (standard or summer time), with its IANA id."""
        return f"{format_datetime(at, 'zzzz', tzinfo=self.zone, locale=self.locale)} ({self.zone.key})"


@cache
def _templates() -> Environment:
    return Environment(loader=PackageLoader("services.logistics", "templates"), autoescape=select_autoescape())


def render_tracking(tracking: schemas.Tracking, lang: str) -> str:
    words = Words(lang, tracking.time_zone)
    return _templates().get_template("track.html").render(t=tracking, lang=lang, w=words)


@cache
def tracking_page_styles() -> tuple[str, ...]:
    """The Content-Security-Policy hashes of the tracking page's style."""
    env = _templates()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, "track.html")
    return style_hashes(source)
