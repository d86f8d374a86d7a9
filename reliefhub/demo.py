"""`reliefhub demo`: a relief operation modelled on the Shanghai 2022 lockdown, loaded and driven end to end
through the public HTTP API only.

The scenario is generated from a seed (same seed, same sites, needs, donors and gifts): recipient sites in
Shanghai's 16 districts — hospitals, residents' committees, street offices, nursing homes, makeshift
shelters, schools used as quarantine points, NGOs — each posting medical and living-supply needs; companies,
foundations, people and volunteer groups offering goods (some checked by a working group) and cash; one
purchase paid from the cash pledges. Then the operation runs: matching proposes, a coordinator accepts,
logistics plans shipments by itself, carriers move them through district sub-centers, every site confirms
receipt with its handover PIN (a few short, with a reason) and gives feedback; finally the impact report and a
donor's public tracking page.

`run_demo` is the core: it takes an `httpx.AsyncClient` (a server's URL, or the in-process gateway in tests)
and the settings that sign tokens, and returns a `Summary`. `run_cli` wraps it for `reliefhub demo`.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from rich.console import Console
from rich.table import Table

from shared.auth import Role, create_token
from shared.settings import Settings

JSON = dict[str, Any]
T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
REGION = "31"  # Shanghai


class DemoError(RuntimeError):
    """The demo cannot go on: a request failed or something it waits for did not happen in time."""


# --- the scenario ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class District:
    code: str
    name: str
    lat: float
    lon: float
    spread: float  # degrees around the centre where its sites lie
    population: int  # 10,000s (2020 census), to weight where sites are
    streets: tuple[str, ...]  # street offices (街道) and towns (镇)


# code, name, centre, spread (degrees) of its sites, population (10,000s, 2020 census)
_DISTRICT_ROWS: tuple[tuple[str, str, float, float, float, int], ...] = (
    ("310101", "黄浦区", 31.2317, 121.4846, 0.02, 66),
    ("310104", "徐汇区", 31.1885, 121.4365, 0.03, 111),
    ("310105", "长宁区", 31.2204, 121.4244, 0.025, 69),
    ("310106", "静安区", 31.249, 121.456, 0.03, 98),
    ("310107", "普陀区", 31.2496, 121.3975, 0.03, 124),
    ("310109", "虹口区", 31.2646, 121.505, 0.02, 76),
    ("310110", "杨浦区", 31.2596, 121.526, 0.03, 124),
    ("310112", "闵行区", 31.1128, 121.3817, 0.07, 265),
    ("310113", "宝山区", 31.4054, 121.4893, 0.06, 223),
    ("310114", "嘉定区", 31.3747, 121.2655, 0.07, 183),
    ("310115", "浦东新区", 31.2215, 121.5447, 0.12, 568),
    ("310116", "金山区", 30.7413, 121.342, 0.07, 82),
    ("310117", "松江区", 31.0322, 121.2277, 0.07, 191),
    ("310118", "青浦区", 31.1497, 121.1242, 0.08, 127),
    ("310120", "奉贤区", 30.918, 121.474, 0.08, 114),
    ("310151", "崇明区", 31.6228, 121.3974, 0.12, 64),
)
# Street offices (街道) and towns (镇) of each district.
_STREETS: dict[str, str] = {
    "310101": (
        "南京东路街道 外滩街道 半淞园路街道 小东门街道 豫园街道 老西门街道 "
        "五里桥街道 打浦桥街道 淮海中路街道 瑞金二路街道"
    ),
    "310104": (
        "天平路街道 湖南路街道 斜土路街道 枫林路街道 长桥街道 田林街道 虹梅路街道 "
        "康健新村街道 徐家汇街道 凌云路街道 龙华街道 漕河泾街道 华泾镇"
    ),
    "310105": (
        "华阳路街道 江苏路街道 新华路街道 周家桥街道 天山路街道 仙霞新村街道 虹桥街道 程家桥街道 北新泾街道 新泾镇"
    ),
    "310106": (
        "江宁路街道 石门二路街道 南京西路街道 静安寺街道 曹家渡街道 天目西路街道 "
        "北站街道 宝山路街道 共和新路街道 大宁路街道 彭浦新村街道 临汾路街道 "
        "芷江西路街道 彭浦镇"
    ),
    "310107": (
        "曹杨新村街道 长风新村街道 长寿路街道 甘泉路街道 石泉路街道 宜川路街道 万里街道 真如镇街道 长征镇 桃浦镇"
    ),
    "310109": "欧阳路街道 曲阳路街道 广中路街道 嘉兴路街道 凉城新村街道 四川北路街道 北外滩街道 江湾镇街道",
    "310110": (
        "定海路街道 平凉路街道 江浦路街道 四平路街道 控江路街道 长白新村街道 "
        "延吉新村街道 殷行街道 大桥街道 五角场街道 新江湾城街道 长海路街道"
    ),
    "310112": "江川路街道 古美街道 新虹街道 浦锦街道 莘庄镇 七宝镇 颛桥镇 华漕镇 虹桥镇 梅陇镇 吴泾镇 马桥镇 浦江镇",
    "310113": "友谊路街道 吴淞街道 张庙街道 罗店镇 大场镇 杨行镇 月浦镇 罗泾镇 顾村镇 高境镇 庙行镇 淞南镇",
    "310114": "新成路街道 真新街道 嘉定镇街道 南翔镇 安亭镇 马陆镇 徐行镇 华亭镇 外冈镇 江桥镇",
    "310115": (
        "潍坊新村街道 陆家嘴街道 周家渡街道 塘桥街道 上钢新村街道 南码头路街道 "
        "沪东新村街道 金杨新村街道 洋泾街道 浦兴路街道 东明路街道 花木街道 "
        "川沙新镇 高桥镇 北蔡镇 合庆镇 唐镇 曹路镇 金桥镇 高行镇 高东镇 张江镇 "
        "三林镇 惠南镇 周浦镇 新场镇 大团镇 康桥镇 航头镇 祝桥镇 泥城镇 宣桥镇 "
        "书院镇 万祥镇 老港镇 南汇新城镇"
    ),
    "310116": "石化街道 朱泾镇 枫泾镇 张堰镇 亭林镇 吕巷镇 廊下镇 金山卫镇 漕泾镇 山阳镇",
    "310117": (
        "岳阳街道 永丰街道 方松街道 中山街道 广富林街道 九里亭街道 泗泾镇 佘山镇 "
        "车墩镇 新桥镇 洞泾镇 九亭镇 泖港镇 石湖荡镇 新浜镇 叶榭镇 小昆山镇"
    ),
    "310118": "夏阳街道 盈浦街道 香花桥街道 朱家角镇 练塘镇 金泽镇 赵巷镇 徐泾镇 华新镇 重固镇 白鹤镇",
    "310120": "西渡街道 奉浦街道 金海街道 南桥镇 奉城镇 庄行镇 金汇镇 四团镇 青村镇 柘林镇 海湾镇",
    "310151": (
        "城桥镇 堡镇 新河镇 庙镇 竖新镇 向化镇 三星镇 港沿镇 中兴镇 陈家镇 "
        "绿华镇 港西镇 建设镇 新海镇 东平镇 长兴镇 横沙乡"
    ),
}
DISTRICTS: tuple[District, ...] = tuple(
    District(*row, streets=tuple(_STREETS[row[0]].split())) for row in _DISTRICT_ROWS
)

SITE_KINDS = ("community", "hospital", "shelter", "nursing_home", "government", "school", "ngo")
KIND_WEIGHTS = {
    "community": 40,
    "hospital": 12,
    "government": 12,
    "nursing_home": 12,
    "shelter": 8,
    "school": 6,
    "ngo": 10,
}
KIND_ZH = {
    "community": "居委会",
    "hospital": "医院",
    "shelter": "方舱/安置点",
    "nursing_home": "养老院",
    "government": "街道/镇",
    "school": "学校隔离点",
    "ngo": "社会组织",
}

# (item code, probability a site of this kind asks for it, range per 1,000 beneficiaries)
Demand = tuple[str, float, tuple[int, int]]


@dataclass(frozen=True)
class KindProfile:
    beneficiaries: tuple[int, int]
    medical: tuple[Demand, ...]
    living: tuple[Demand, ...]
    urgency: tuple[str, ...]


PROFILES: dict[str, KindProfile] = {
    "community": KindProfile(
        (1500, 6000),
        (
            ("medical_consumable.test.antigen", 0.9, (2000, 5000)),
            ("ppe.mask.kn95", 0.6, (1000, 3000)),
            ("medicine.hypertension.amlodipine", 0.5, (10, 40)),
            ("medicine.diabetes.metformin", 0.4, (8, 30)),
            ("medicine.antipyretic.ibuprofen", 0.4, (10, 30)),
        ),
        (
            ("food.grain.rice", 0.9, (300, 700)),
            ("food.oil.cooking", 0.7, (60, 150)),
            ("food.fresh.vegetable_box", 0.6, (80, 250)),
            ("food.instant.noodles", 0.5, (30, 100)),
            ("infant.formula.stage2", 0.35, (3, 10)),
            ("hygiene.menstrual.pad_day", 0.4, (30, 90)),
            ("food.milk.uht", 0.3, (50, 150)),
        ),
        ("high", "high", "normal", "critical"),
    ),
    "hospital": KindProfile(
        (300, 3000),
        (
            ("ppe.mask.n95", 0.9, (3000, 10000)),
            ("ppe.mask.surgical", 0.8, (5000, 15000)),
            ("ppe.suit.protective", 0.9, (500, 2000)),
            ("ppe.glove.nitrile", 0.7, (50, 200)),
            ("medical_consumable.test.antigen", 0.6, (1000, 4000)),
            ("ppe.gown.isolation", 0.5, (300, 1000)),
            ("medicine.antipyretic.ibuprofen", 0.4, (50, 200)),
        ),
        (
            ("water.bottled.small_550ml", 0.7, (100, 300)),
            ("food.instant.self_heating_rice", 0.7, (500, 1500)),
            ("food.instant.noodles", 0.4, (30, 100)),
        ),
        ("critical", "critical", "high"),
    ),
    "government": KindProfile(
        (3000, 10000),
        (
            ("medical_consumable.test.antigen", 0.9, (3000, 8000)),
            ("ppe.suit.protective", 0.7, (50, 200)),
            ("ppe.mask.kn95", 0.6, (1000, 3000)),
            ("medical_consumable.disinfect.alcohol_75", 0.5, (20, 60)),
        ),
        (
            ("food.grain.rice", 0.8, (200, 500)),
            ("food.oil.cooking", 0.6, (50, 120)),
            ("food.fresh.vegetable_box", 0.6, (50, 150)),
            ("water.bottled.small_550ml", 0.4, (20, 60)),
        ),
        ("high", "normal"),
    ),
    "nursing_home": KindProfile(
        (80, 400),
        (
            ("medicine.hypertension.amlodipine", 0.8, (200, 500)),
            ("medicine.diabetes.metformin", 0.7, (150, 400)),
            ("medicine.diabetes.insulin_glargine", 0.5, (30, 100)),
            ("ppe.mask.surgical", 0.7, (5000, 15000)),
            ("medical_consumable.test.antigen", 0.7, (2000, 6000)),
            ("medical_device.monitor.pulse_oximeter", 0.4, (10, 40)),
        ),
        (
            ("hygiene.adult.diaper_l", 0.9, (1000, 3000)),
            ("hygiene.adult.underpad", 0.6, (500, 1500)),
            ("food.milk.uht", 0.6, (500, 1500)),
            ("food.canned.congee", 0.5, (1000, 3000)),
            ("food.grain.rice", 0.5, (300, 800)),
        ),
        ("critical", "high", "high"),
    ),
    "shelter": KindProfile(
        (500, 3000),
        (
            ("ppe.mask.n95", 0.7, (2000, 6000)),
            ("ppe.suit.protective", 0.8, (300, 1000)),
            ("medical_consumable.test.antigen", 0.8, (2000, 5000)),
            ("medicine.antipyretic.ibuprofen", 0.6, (50, 150)),
            ("medicine.respiratory.lianhua_qingwen", 0.5, (50, 150)),
        ),
        (
            ("water.bottled.small_550ml", 0.9, (200, 500)),
            ("food.instant.self_heating_rice", 0.8, (1000, 3000)),
            ("food.instant.noodles", 0.7, (50, 150)),
            ("hygiene.paper.toilet_roll", 0.6, (1000, 3000)),
            ("hygiene.oral.toothpaste_kit", 0.6, (500, 1000)),
            ("hygiene.menstrual.pad_day", 0.5, (50, 200)),
            ("shelter.bed.folding", 0.3, (200, 600)),
            ("shelter.bedding.blanket", 0.4, (300, 800)),
        ),
        ("critical", "high"),
    ),
    "school": KindProfile(
        (200, 800),
        (
            ("medical_consumable.test.antigen", 0.8, (2000, 5000)),
            ("ppe.mask.kn95", 0.7, (2000, 5000)),
            ("medical_consumable.disinfect.alcohol_75", 0.5, (30, 80)),
        ),
        (
            ("water.bottled.small_550ml", 0.8, (100, 300)),
            ("food.instant.compressed_biscuit", 0.6, (500, 1500)),
            ("food.instant.self_heating_rice", 0.6, (500, 1500)),
            ("hygiene.paper.toilet_roll", 0.5, (500, 1500)),
        ),
        ("high", "normal"),
    ),
    "ngo": KindProfile(
        (500, 3000),
        (
            ("ppe.suit.protective", 0.8, (100, 400)),
            ("ppe.mask.kn95", 0.7, (1000, 3000)),
            ("ppe.glove.nitrile", 0.6, (10, 40)),
            ("medical_consumable.test.antigen", 0.6, (1000, 3000)),
        ),
        (
            ("food.grain.rice", 0.6, (100, 300)),
            ("food.oil.cooking", 0.5, (20, 60)),
            ("food.fresh.vegetable_box", 0.5, (30, 100)),
            ("infant.formula.stage1", 0.4, (3, 10)),
            ("infant.diaper.m", 0.4, (10, 40)),
        ),
        ("normal", "high"),
    ),
}

# What each kind of in-kind donor gives.
SPECIALTY_ITEMS: dict[str, tuple[str, ...]] = {
    "medical": (
        "ppe.mask.n95",
        "ppe.mask.surgical",
        "ppe.mask.kn95",
        "ppe.suit.protective",
        "ppe.glove.nitrile",
        "ppe.gown.isolation",
        "medical_consumable.test.antigen",
        "medical_consumable.disinfect.alcohol_75",
        "medical_device.monitor.pulse_oximeter",
    ),
    "pharma": (
        "medicine.hypertension.amlodipine",
        "medicine.diabetes.metformin",
        "medicine.diabetes.insulin_glargine",
        "medicine.antipyretic.ibuprofen",
        "medicine.respiratory.lianhua_qingwen",
    ),
    "grain": ("food.grain.rice", "food.oil.cooking"),
    "food": (
        "water.bottled.small_550ml",
        "food.instant.noodles",
        "food.instant.self_heating_rice",
        "food.instant.compressed_biscuit",
        "food.canned.congee",
        "food.milk.uht",
    ),
    "fresh": ("food.fresh.vegetable_box",),
    "baby": ("infant.formula.stage1", "infant.formula.stage2", "infant.diaper.m"),
    "daily": (
        "hygiene.menstrual.pad_day",
        "hygiene.adult.diaper_l",
        "hygiene.adult.underpad",
        "hygiene.paper.toilet_roll",
        "hygiene.oral.toothpaste_kit",
        "shelter.bed.folding",
        "shelter.bedding.blanket",
    ),
}
SPECIALTIES = tuple(SPECIALTY_ITEMS)
SPECIALTY_OF = {code: s for s, codes in SPECIALTY_ITEMS.items() for code in codes}

# Names are made up, in the style of the organisations that gave in spring 2022.
INKIND_DONORS: dict[str, tuple[tuple[str, str], ...]] = {
    "medical": (
        ("申康医疗器械有限公司", "company"),
        ("沪宁防护用品有限公司", "company"),
        ("华东医用耗材有限公司", "company"),
        ("江南生物检测试剂有限公司", "company"),
        ("浦江医疗科技有限公司", "company"),
    ),
    "pharma": (
        ("申城医药连锁有限公司", "company"),
        ("沪济药业有限公司", "company"),
        ("海派大药房连锁有限公司", "company"),
        ("仁和堂医药有限公司", "company"),
        ("长江医药物流有限公司", "company"),
    ),
    "grain": (
        ("沪东粮油贸易有限公司", "company"),
        ("江海粮油集团有限公司", "company"),
        ("金穗米业有限公司", "company"),
        ("东北大米产地直供联盟", "group"),
        ("福满仓食品有限公司", "company"),
    ),
    "food": (
        ("清泉饮品有限公司", "company"),
        ("好滋味方便食品有限公司", "company"),
        ("申江乳业有限公司", "company"),
        ("百味食品有限公司", "company"),
        ("旺来食品贸易有限公司", "company"),
    ),
    "fresh": (
        ("沪鲜生鲜电商平台", "company"),
        ("古北社区团购志愿者群", "group"),
        ("崇明蔬菜种植合作社", "group"),
        ("邻里优选社区团购", "company"),
        ("申城连锁超市有限公司", "company"),
    ),
    "baby": (
        ("贝安母婴用品有限公司", "company"),
        ("暖流儿童关爱基金会", "foundation"),
        ("宝贝营养食品有限公司", "company"),
        ("育婴互助妈妈群", "group"),
        ("小星星母婴连锁有限公司", "company"),
    ),
    "daily": (
        ("洁雅日化有限公司", "company"),
        ("舒柔纸业有限公司", "company"),
        ("安心护理用品有限公司", "company"),
        ("家家福日用品有限公司", "company"),
        ("华亭寝具有限公司", "company"),
    ),
}
CASH_DONORS: tuple[tuple[str, str], ...] = (
    ("申城公益基金会", "foundation"),
    ("浦江慈善基金会", "foundation"),
    ("陈先生", "individual"),
    ("复兴校友抗疫互助群", "group"),
    ("沪爱助老基金会", "foundation"),
    ("王女士", "individual"),
    ("临港外企员工爱心捐款", "group"),
    ("海上互助公益基金会", "foundation"),
    ("李女士", "individual"),
    ("申城互联网企业联合捐赠", "company"),
    ("张先生", "individual"),
    ("沪上海归志愿者联盟", "group"),
)
PLEDGE_YUAN = {
    "foundation": (200_000, 2_000_000),
    "company": (100_000, 1_000_000),
    "group": (10_000, 200_000),
    "individual": (500, 50_000),
}


@dataclass(frozen=True)
class Place:
    label: str
    region_code: str
    lat: float
    lon: float


WAREHOUSES: tuple[Place, ...] = (
    Place("外高桥物流园仓库", "310115", 31.360, 121.590),
    Place("浦东空港物流园仓库", "310115", 31.150, 121.800),
    Place("桃浦西北物流园仓库", "310107", 31.280, 121.350),
    Place("南翔物流园仓库", "310114", 31.290, 121.310),
    Place("九亭仓储中心", "310117", 31.130, 121.320),
    Place("莘庄配送中心", "310112", 31.110, 121.380),
    Place("罗店物流基地", "310113", 31.410, 121.350),
    Place("华新物流园仓库", "310118", 31.230, 121.180),
    Place("南桥配送仓", "310120", 30.920, 121.450),
    Place("昆山花桥物流园（江苏）", "320583", 31.300, 121.080),
    Place("平湖独山港仓库（浙江）", "330482", 30.700, 121.020),
)
SUPPLIER = Place("沪西农产品批发市场有限公司", "310112", 31.190, 121.360)
# What the purchase may buy, at wholesale prices (fen per unit).
PURCHASABLE = {
    "food.grain.rice": 550,
    "food.oil.cooking": 1450,
    "food.instant.noodles": 4600,
    "water.bottled.small_550ml": 2500,
}
CARRIERS = ("申城应急保供车队", "浦江志愿者货运联盟", "沪通达物流有限公司", "邮政保供专班")

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_ROADS = (
    "长乐路", "延安西路", "中山北路", "张杨路", "浦东南路", "漕溪北路", "江浦路", "共和新路", "沪太路",
    "曹安公路", "四平路", "武宁路", "天山路", "华山路", "龙华西路", "七莘路", "莘松路", "虹梅路", "罗山路",
)  # fmt: skip
_COMMITTEES = (
    "康乐", "和平", "幸福", "阳光", "明珠", "锦绣", "长乐", "永安", "春晖", "兴旺", "梅园", "桂林", "绿洲",
    "东方", "翠竹", "云台", "紫藤", "金桥", "新港", "海棠",
)  # fmt: skip
_FEEDBACK = (
    "物资已分发到户，居民很感谢",
    "解了燃眉之急，谢谢各位爱心人士",
    "已发放给一线医护和志愿者",
    "老人们的药和尿裤都送到了",
    "方舱里的患者今天都吃上了热饭",
    "数量清点无误，感谢保供车队",
)
_SHORTFALLS = (
    "外箱破损，部分物资受潮无法使用",
    "清点时少了几箱，已拍照留证",
    "运输途中挤压，部分包装破损",
    "部分批次临近效期，现场拒收",
)


@dataclass
class NeedPlan:
    title: str
    urgency: str
    days: int  # needed within this many days
    beneficiaries: int
    lines: list[tuple[str, int]]


@dataclass
class SitePlan:
    index: int
    name: str
    kind: str
    district: District
    street: str
    lat: float
    lon: float
    address: str
    contact_name: str
    contact_phone: str
    beneficiaries: int
    needs: list[NeedPlan]

    @property
    def org(self) -> str:
        return f"site-{self.index:04d}"

    @property
    def sub_center(self) -> str:
        return f"{self.district.name}应急物资中转站"


@dataclass
class OfferPlan:
    lots: list[tuple[str, int]]
    place: Place
    restrictions: JSON
    note: str
    reject_groups: frozenset[str] = frozenset()  # working groups that will not pass this offer's lots


@dataclass
class DonorPlan:
    index: int
    name: str
    kind: str
    specialty: str | None  # None: cash only
    offers: list[OfferPlan] = field(default_factory=list)
    pledges: list[int] = field(default_factory=list)  # fen

    @property
    def org(self) -> str:
        return f"donor-{self.index:03d}"


@dataclass
class PurchasePlan:
    supplier: Place
    lines: list[tuple[str, int, int]]  # item code, quantity, unit price (fen)

    @property
    def total(self) -> int:
        return sum(q * p for _, q, p in self.lines)


@dataclass
class Scenario:
    seed: int
    sites: list[SitePlan]
    donors: list[DonorPlan]
    purchase: PurchasePlan

    @property
    def item_codes(self) -> set[str]:
        codes = {code for s in self.sites for n in s.needs for code, _ in n.lines}
        codes |= {code for d in self.donors for o in d.offers for code, _ in o.lots}
        return codes | {code for code, _, _ in self.purchase.lines}


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}（{n}）", n + 1
    used.add(candidate)
    return candidate


def _site_name(rng: random.Random, kind: str, d: District, street: str) -> str:
    town = street.removesuffix("街道")
    if kind == "community":
        return f"{street}{rng.choice(_COMMITTEES)}居委会"
    if kind == "hospital":
        return rng.choice((f"{town}社区卫生服务中心", f"{d.name}中心医院", f"{d.name}中医医院"))
    if kind == "government":
        return f"{street}办事处" if street.endswith("街道") else f"{street}人民政府"
    if kind == "nursing_home":
        return rng.choice((f"{town}敬老院", f"{town}长者照护之家", f"{town}养老院"))
    if kind == "shelter":
        return rng.choice((f"{town}体育馆临时方舱", f"{town}临时安置点", f"{d.name.removesuffix('区')}方舱医院"))
    if kind == "school":
        return rng.choice((f"{town}中学（临时隔离点）", f"{town}小学（临时隔离点）"))
    return rng.choice((f"{d.name}青年志愿者服务队", f"{town}社会工作服务站", f"{d.name}邻里互助社"))


def _need(rng: random.Random, demands: Sequence[Demand], beneficiaries: int) -> list[tuple[str, int]]:
    lines = []
    for code, probability, (lo, hi) in demands:
        if rng.random() < probability:
            lines.append((code, max(1, round(beneficiaries / 1000 * rng.randint(lo, hi)))))
    if not lines:  # every site that posts asks for something
        code, _, (lo, hi) = demands[0]
        lines.append((code, max(1, round(beneficiaries / 1000 * rng.randint(lo, hi)))))
    return lines


def _sites(rng: random.Random, n: int) -> list[SitePlan]:
    by_population = sorted(DISTRICTS, key=lambda d: -d.population)
    kinds = list(KIND_WEIGHTS)
    used: set[str] = set()
    sites = []
    for i in range(n):
        # Every district and every kind of site appears first, then they come as often as people live there.
        d = by_population[i] if i < len(by_population) else rng.choices(DISTRICTS, [x.population for x in DISTRICTS])[0]
        kind = SITE_KINDS[i] if i < len(SITE_KINDS) else rng.choices(kinds, [KIND_WEIGHTS[k] for k in kinds])[0]
        street = rng.choice(d.streets)
        profile = PROFILES[kind]
        beneficiaries = rng.randint(*profile.beneficiaries)
        name = _unique(_site_name(rng, kind, d, street), used)
        needs = [
            NeedPlan(
                title=f"{name}：防疫和医疗物资",
                urgency=rng.choice(profile.urgency),
                days=rng.randint(2, 6),
                beneficiaries=beneficiaries,
                lines=_need(rng, profile.medical, beneficiaries),
            )
        ]
        if rng.random() < 0.85 or i < len(SITE_KINDS):
            needs.append(
                NeedPlan(
                    title=f"{name}：生活保供物资",
                    urgency=rng.choice(profile.urgency),
                    days=rng.randint(2, 7),
                    beneficiaries=beneficiaries,
                    lines=_need(rng, profile.living, beneficiaries),
                )
            )
        sites.append(
            SitePlan(
                index=i,
                name=name,
                kind=kind,
                district=d,
                street=street,
                lat=round(d.lat + rng.uniform(-d.spread, d.spread), 5),
                lon=round(d.lon + rng.uniform(-d.spread, d.spread), 5),
                address=f"上海市{d.name}{street}{rng.choice(_ROADS)}{rng.randint(1, 1500)}号",
                contact_name=f"{rng.choice(_SURNAMES)}{rng.choice(('老师', '书记', '主任', '医生', '站长', '社工'))}",
                contact_phone=f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(10_000_000, 99_999_999)}",
                beneficiaries=beneficiaries,
                needs=needs,
            )
        )
    return sites


def build_scenario(seed: int = 2022, sites: int = 300) -> Scenario:
    """The whole operation's data from a seed: sites and needs, donors and their gifts, the purchase."""
    if sites < 1:
        raise ValueError("at least one site")
    rng = random.Random(seed)
    site_plans = _sites(rng, sites)
    demand: dict[str, int] = defaultdict(int)
    for site in site_plans:
        for need in site.needs:
            for code, q in need.lines:
                demand[code] += q

    # In-kind donors, several per specialty; cash donors after them.
    n_inkind = max(len(SPECIALTIES), round(sites / 10))
    donors: list[DonorPlan] = []
    by_specialty: dict[str, list[DonorPlan]] = defaultdict(list)
    for i in range(n_inkind):
        specialty = SPECIALTIES[i % len(SPECIALTIES)]
        pool = INKIND_DONORS[specialty]
        k = len(by_specialty[specialty])
        name, kind = pool[k % len(pool)]
        donor = DonorPlan(i, name if k < len(pool) else f"{name}（第{k // len(pool) + 1}批）", kind, specialty)
        donors.append(donor)
        by_specialty[specialty].append(donor)
    for j in range(max(3, round(sites / 25))):
        name, kind = CASH_DONORS[j % len(CASH_DONORS)]
        if j >= len(CASH_DONORS):
            name = f"{name}（{j // len(CASH_DONORS) + 1}）"
        lo, hi = PLEDGE_YUAN[kind]
        donor = DonorPlan(len(donors), name, kind, None, pledges=[rng.randint(lo, hi) * 100])
        if kind in ("foundation", "company") and rng.random() < 0.4:
            donor.pledges.append(rng.randint(lo, hi) * 50)  # a second round of giving
        donors.append(donor)
    for donor in donors:
        if donor.specialty and donor.kind == "company" and rng.random() < 0.3:
            donor.pledges.append(rng.randint(50_000, 300_000) * 100)

    # Supply: most of what is asked for, some items short (the purchase fills part of the staples' gap).
    gifts: dict[int, list[tuple[str, int]]] = defaultdict(list)
    supplied: dict[str, int] = {}
    for code in sorted(demand):
        share = rng.uniform(0.35, 0.55) if code in PURCHASABLE else rng.uniform(0.6, 1.05)
        total = max(1, round(demand[code] * share))
        supplied[code] = total
        givers = by_specialty[SPECIALTY_OF[code]]
        chosen = rng.sample(givers, k=min(len(givers), rng.randint(1, 3)))
        weights = [rng.uniform(0.5, 1.5) for _ in chosen]
        left = total
        for n, (donor, w) in enumerate(zip(chosen, weights, strict=True)):
            q = left if n == len(chosen) - 1 else min(left, max(1, round(total * w / sum(weights))))
            if q > 0:
                gifts[donor.index].append((code, q))
                left -= q
    for donor in donors:
        if donor.specialty is None:
            continue
        lots = gifts.get(donor.index) or [(SPECIALTY_ITEMS[donor.specialty][0], rng.randint(50, 500))]
        first_of_kind = by_specialty[donor.specialty][0] is donor
        restrictions: JSON = {}
        note = f"{donor.name}捐赠，支援上海抗疫"
        if not first_of_kind and rng.random() < 0.3:  # a donor's wish: a district, or kinds of sites
            if rng.random() < 0.5:
                d = rng.choice(sorted({s.district for s in site_plans}, key=lambda x: x.code))
                restrictions = {"region_codes": [d.code]}
                note = f"定向捐赠{d.name}"
            else:
                kinds = {"medical": ["hospital", "shelter", "nursing_home"], "baby": ["community", "ngo"]}.get(
                    donor.specialty, ["community", "nursing_home", "shelter"]
                )
                restrictions = {"site_kinds": kinds}
                note = "定向捐赠：" + "、".join(KIND_ZH[k] for k in kinds)
        places = rng.sample(WAREHOUSES, k=2)
        # Large gifts come in two batches from two warehouses.
        batches = [lots[0::2], lots[1::2]] if len(lots) >= 4 else [lots]
        for b, batch in enumerate(batches):
            reject: frozenset[str] = frozenset()
            if not first_of_kind and donor.specialty == "medical" and rng.random() < 0.25:
                reject = frozenset({"medical_device"})  # e.g. papers not matching the registered product
            donor.offers.append(OfferPlan(batch, places[b], restrictions, note, reject))

    # The purchase: staples still short, at wholesale prices, for up to 60% of the cash pledged.
    budget = int(sum(p for d in donors for p in d.pledges) * 0.6)
    wanted = [
        (code, round((demand[code] - supplied[code]) * 0.8), price)
        for code, price in PURCHASABLE.items()
        if demand.get(code, 0) > supplied.get(code, 0)
    ]
    wanted = [w for w in wanted if w[1] > 0] or [("food.grain.rice", 500, PURCHASABLE["food.grain.rice"])]
    cost = sum(q * p for _, q, p in wanted)
    scale = min(1.0, budget / cost) if cost else 1.0
    lines = [(code, max(1, int(q * scale)), p) for code, q, p in wanted]
    return Scenario(seed, site_plans, donors, PurchasePlan(SUPPLIER, lines))


# --- the HTTP side -------------------------------------------------------------------------------------------


@dataclass
class Summary:
    """What the demo did, step by step, and what the impact report says about it."""

    base_url: str = ""
    seed: int = 0
    sites: int = 0
    needs: int = 0
    need_lines: int = 0
    quantity_needed: int = 0
    donors: int = 0
    inkind_offers: int = 0
    lots: int = 0
    lots_verified: int = 0
    lots_rejected: int = 0
    pledges: int = 0
    pledged_fen: int = 0
    procurement_orders: int = 0
    procurement_ordered: int = 0
    procurement_received: int = 0
    procurement_fen: int = 0
    allocation_runs: int = 0
    proposals_accepted: int = 0
    proposals_auto_accepted: int = 0
    proposals_conflicts: int = 0
    accept_retries: int = 0
    quantity_accepted: int = 0
    shipments: int = 0
    picked_up: int = 0
    in_transit: int = 0
    delivered: int = 0
    received: int = 0
    received_with_problem: int = 0
    short_receipts: int = 0
    quantity_received: int = 0
    feedback: int = 0
    beneficiaries_reported: int = 0
    money_raised_fen: int = 0
    money_spent_fen: int = 0
    goods_value_offered_fen: int = 0
    goods_value_delivered_fen: int = 0
    sites_supported: int = 0
    beneficiaries: int = 0
    fill_rate: float = 0.0
    time_to_match_p50_hours: float | None = None
    tracking_code: str = ""
    tracking_url: str = ""
    tracking_steps: int = 0
    requests: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str, str]]:
        yuan = _yuan
        return [
            ("recipient sites", f"{self.sites}", "16 districts of Shanghai; one organisation each"),
            ("needs posted", f"{self.needs}", f"{self.need_lines} lines, {self.quantity_needed:,} units asked for"),
            ("donors", f"{self.donors}", "companies, foundations, individuals, volunteer groups"),
            ("in-kind offers", f"{self.inkind_offers}", f"{self.lots} lots"),
            ("lots checked by working groups", f"{self.lots_verified + self.lots_rejected}",
             f"{self.lots_verified} verified, {self.lots_rejected} rejected"),
            ("cash pledges", f"{self.pledges}", yuan(self.pledged_fen)),
            ("procurement orders", f"{self.procurement_orders}",
             f"{self.procurement_ordered} ordered, {self.procurement_received} received, "
             f"{yuan(self.procurement_fen)}"),
            ("allocation runs (manual)", f"{self.allocation_runs}", "plus the continuous runs matching makes itself"),
            ("proposals accepted", f"{self.proposals_accepted}",
             f"{self.quantity_accepted:,} units; {self.proposals_auto_accepted} by policy, "
             f"{self.proposals_conflicts} superseded meanwhile"
             + (f", {self.accept_retries} retried after a 500" if self.accept_retries else "")),
            ("shipments planned", f"{self.shipments}", "by logistics, from the accepted proposals"),
            ("picked up → in transit → delivered", f"{self.delivered}",
             f"{self.picked_up} picked up, {self.in_transit} through district sub-centers"),
            ("receipts with PIN", f"{self.received + self.received_with_problem}",
             f"{self.received} complete, {self.received_with_problem} with a problem; "
             f"{self.quantity_received:,} units"),
            ("short receipts", f"{self.short_receipts}", "each with a discrepancy reason"),
            ("feedback", f"{self.feedback}", f"{self.beneficiaries_reported:,} beneficiaries reported"),
            ("money raised", yuan(self.money_raised_fen), "impact report"),
            ("money spent", yuan(self.money_spent_fen), "on the purchase"),
            ("goods value delivered", yuan(self.goods_value_delivered_fen),
             f"catalog value, purchased goods included; {yuan(self.goods_value_offered_fen)} given in kind"),
            ("sites supported", f"{self.sites_supported}", "confirmed at least one receipt"),
            ("beneficiaries", f"{self.beneficiaries:,}", "as the sites reported"),
            ("fill rate", f"{self.fill_rate:.1%}",
             "delivered / asked for" + (
                 f"; time to match p50 {_duration(self.time_to_match_p50_hours)}"
                 if self.time_to_match_p50_hours is not None else "")),
            ("requests", f"{self.requests:,}", f"in {self.seconds:.1f} s"),
        ]  # fmt: skip


def _duration(hours: float) -> str:
    seconds = hours * 3600
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{hours:.1f} h"


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


def summary_table(summary: Summary) -> Table:
    table = Table(title=f"ReliefHub demo — Shanghai 2022 (seed {summary.seed})", title_justify="left")
    table.add_column("step")
    table.add_column("count", justify="right")
    table.add_column("detail")
    for step, count, detail in summary.rows():
        table.add_row(step, count, detail)
    return table


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    text = str(body.get("detail") or body.get("title") or body)
    errors = body.get("errors")
    if errors:
        text += " " + "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in errors[:5])
    return text[:500]


class Api:
    """The demo's HTTP client: bearer tokens minted locally, bounded concurrency, idempotency keys on POSTs,
    retries of what is safe to retry (transport errors, 429, 502–504, a key still in flight)."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings, concurrency: int, tag: str) -> None:
        self.client = client
        self.settings = settings
        self.tag = tag
        self.limit = asyncio.Semaphore(concurrency)
        self.requests = 0
        self._tokens: dict[tuple[str, str, str | None], dict[str, str]] = {}

    def org(self, name: str) -> str:
        return f"demo-{self.tag}-{name}"

    def auth(self, role: Role, org: str, group: str | None = None) -> dict[str, str]:
        key = (role.value, org, group)
        if key not in self._tokens:
            token = create_token(
                sub=f"{org}-{role.value}",
                org=org,
                roles=[role],
                group=group,
                ttl_seconds=6 * 3600,
                settings=self.settings,
            )
            self._tokens[key] = {"Authorization": f"Bearer {token}"}
        return self._tokens[key]

    async def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        key: str | None = None,
        ok: tuple[int, ...] = (200, 201),
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One request; a status outside `ok` and `allow` is a DemoError naming the request and the problem."""
        send = dict(headers or {})
        if method == "POST":
            send["Idempotency-Key"] = f"demo-{self.tag}-{key or secrets.token_hex(8)}"
        for attempt in range(8):
            async with self.limit:
                self.requests += 1
                try:
                    response = await self.client.request(method, path, headers=send, json=json, params=params)
                except httpx.TransportError as exc:
                    if attempt == 7:
                        raise DemoError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
                    response = None
            if response is not None:
                if response.status_code in ok or response.status_code in allow:
                    return response
                retry = response.status_code in (429, 502, 503, 504) or (
                    response.status_code == 409 and "idempotency-key-in-flight" in response.text
                )
                if not retry or attempt == 7:
                    hint = (
                        " (does the server sign tokens with another RELIEFHUB_JWT_SECRET?)"
                        if response.status_code == 401
                        else ""
                    )
                    raise DemoError(f"{method} {path} answered {response.status_code}: {_problem(response)}{hint}")
                wait = float(response.headers.get("Retry-After", "0") or 0)
            else:
                wait = 0.0
            await asyncio.sleep(min(max(wait, 0.2 * 2**attempt), 10.0))
        raise AssertionError("unreachable")

    async def json(self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> JSON:
        body = (await self.call(method, path, headers, **kw)).json()
        assert isinstance(body, dict)
        return body

    async def all(self, path: str, headers: dict[str, str], params: dict[str, Any] | None = None) -> list[JSON]:
        """Every page of a list."""
        items: list[JSON] = []
        query = {**(params or {}), "limit": 500}
        while True:
            page = await self.json("GET", path, headers, params=query)
            items.extend(page["items"])
            if not page.get("next_cursor"):
                return items
            query["cursor"] = page["next_cursor"]


async def _wait_for(
    what: Callable[[], str],
    probe: Callable[[], Awaitable[T | None]],
    wait_seconds: float,
    interval: float = 0.4,
    say: Callable[[str], None] | None = None,
) -> T:
    """Poll `probe` until it returns something other than None; DemoError after `wait_seconds` seconds, saying what
    was awaited and how far it got (`what` is called then, and every 15 s to `say`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    next_note = loop.time() + 15
    while True:
        value = await probe()
        if value is not None:
            return value
        if loop.time() > deadline:
            raise DemoError(f"gave up after {wait_seconds:.0f} s waiting for {what()}")
        if say is not None and loop.time() > next_note:
            say(f"  still waiting for {what()}")
            next_note = loop.time() + 15
        await asyncio.sleep(interval)


async def _gather(coros: Sequence[Awaitable[T]]) -> list[T]:
    """Run everything (the Api's semaphore bounds what is in flight); the first failure cancels the rest."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass
class _Created:
    site_ids: dict[int, str] = field(default_factory=dict)  # plan index → id
    site_by_id: dict[str, SitePlan] = field(default_factory=dict)
    since: datetime | None = None
    need_lines: dict[str, int] = field(default_factory=dict)  # need line id → quantity
    need_ids: set[str] = field(default_factory=set)
    offer_place: dict[str, Place] = field(default_factory=dict)  # offer id → where its lots are
    tracking: dict[str, str] = field(default_factory=dict)  # in-kind offer id → tracking code
    pledge_ids: list[tuple[str, int]] = field(default_factory=list)  # (offer id, fen)


async def run_demo(
    client: httpx.AsyncClient,
    settings: Settings,
    *,
    sites: int = 300,
    seed: int = 2022,
    concurrency: int = 16,
    wait_seconds: float = 180.0,
    settle_seconds: float = 1.0,
    base_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Summary:
    """Load the scenario through `client` and drive it to receipts, feedback and the impact report.

    `settings` sign the tokens (its `jwt_secret` must be the server's); `wait_seconds` bounds every wait;
    matching is done when two allocation runs `settle_seconds` apart propose nothing new."""
    started = time.perf_counter()
    say = progress or (lambda _: None)
    scenario = build_scenario(seed, sites)
    api = Api(client, settings, concurrency, secrets.token_hex(3))
    summary = Summary(base_url=base_url or str(client.base_url).rstrip("/"), seed=seed)
    made = _Created()
    coordinator = api.auth(Role.coordinator, api.org("hub"))

    catalog = {i["code"]: i for i in (await api.json("GET", "/v1/items", coordinator))["items"]}
    unknown = sorted(scenario.item_codes - set(catalog))
    if unknown:
        raise DemoError(f"the server's item catalog lacks {', '.join(unknown)}")
    kpis = await api.json("GET", "/v1/matching-kpis", coordinator, params={"level": 2, "region_code": REGION})
    lines_before = sum(int(r["lines"]) for r in kpis["items"])

    say(f"creating {len(scenario.sites)} sites and their needs")
    await _create_sites(api, scenario, made, summary)
    say(f"registering {len(scenario.donors)} donors, their offers and pledges")
    await _create_donors(api, scenario, made, summary, catalog)
    say("buying staples with the cash pledges")
    await _procure(api, scenario, made, summary, coordinator, wait_seconds)
    say("matching: waiting for the projection, accepting proposals")
    await _wait_for(
        lambda: f"matching to project the {summary.need_lines} new need lines",
        lambda: _kpi_lines_reach(api, coordinator, lines_before + summary.need_lines),
        wait_seconds,
    )
    accepted = await _match(api, made, summary, coordinator, wait_seconds, settle_seconds, say)
    say(f"{len(accepted)} proposals accepted; waiting for logistics to plan their shipments")
    shipments = await _planned_shipments(api, made, accepted, coordinator, wait_seconds, say)
    summary.shipments = len(shipments)
    say(f"moving {len(shipments)} shipments: picked up → district sub-center → delivered → receipt → feedback")
    received = await _deliver(api, scenario, made, summary, shipments, say)
    say("impact report and a donor's tracking page")
    await _report(api, made, summary, coordinator, catalog, received, wait_seconds, say)
    await _tracking(api, made, summary, received)
    summary.requests = api.requests
    summary.seconds = time.perf_counter() - started
    return summary


async def _kpi_lines_reach(api: Api, headers: dict[str, str], target: int) -> bool | None:
    kpis = await api.json("GET", "/v1/matching-kpis", headers, params={"level": 2, "region_code": REGION})
    return True if sum(int(r["lines"]) for r in kpis["items"]) >= target else None


async def _create_sites(api: Api, scenario: Scenario, made: _Created, summary: Summary) -> None:
    async def one(plan: SitePlan) -> None:
        headers = api.auth(Role.frontline, api.org(plan.org))
        site = await api.json(
            "POST",
            "/v1/sites",
            headers,
            key=f"site-{plan.index}",
            json={
                "name": plan.name,
                "kind": plan.kind,
                "region_code": plan.district.code,
                "address": plan.address,
                "lat": plan.lat,
                "lon": plan.lon,
                "contact_name": plan.contact_name,
                "contact_phone": plan.contact_phone,
            },
        )
        made.site_ids[plan.index] = site["id"]
        made.site_by_id[site["id"]] = plan
        created = datetime.fromisoformat(site["created_at"])
        made.since = created if made.since is None else min(made.since, created)
        now = datetime.now(UTC)
        for n, need in enumerate(plan.needs):
            body = await api.json(
                "POST",
                "/v1/needs",
                headers,
                key=f"need-{plan.index}-{n}",
                json={
                    "site_id": site["id"],
                    "title": need.title,
                    "urgency": need.urgency,
                    "needed_by": (now + timedelta(days=need.days)).isoformat(),
                    "beneficiaries": need.beneficiaries,
                    "lines": [{"item_code": code, "quantity": q} for code, q in need.lines],
                },
            )
            made.need_ids.add(body["id"])
            for line in body["lines"]:
                made.need_lines[line["id"]] = int(line["quantity"])

    await _gather([one(p) for p in scenario.sites])
    summary.sites = len(made.site_ids)
    summary.needs = len(made.need_ids)
    summary.need_lines = len(made.need_lines)
    summary.quantity_needed = sum(made.need_lines.values())


async def _create_donors(
    api: Api, scenario: Scenario, made: _Created, summary: Summary, catalog: dict[str, JSON]
) -> None:
    async def one(plan: DonorPlan) -> None:
        headers = api.auth(Role.donor, api.org(plan.org))
        donor = await api.json(
            "POST", "/v1/donors", headers, key=f"donor-{plan.index}", json={"name": plan.name, "kind": plan.kind}
        )
        now = datetime.now(UTC)
        for n, offer in enumerate(plan.offers):
            lots = []
            for code, q in offer.lots:
                lot: JSON = {
                    "item_code": code,
                    "quantity": q,
                    "lat": offer.place.lat,
                    "lon": offer.place.lon,
                    "region_code": offer.place.region_code,
                }
                if catalog[code]["perishable"]:
                    lot["expires_at"] = (now + timedelta(days=5)).isoformat()
                lots.append(lot)
            body = await api.json(
                "POST",
                "/v1/offers",
                headers,
                key=f"offer-{plan.index}-{n}",
                json={
                    "donor_id": donor["id"],
                    "kind": "in_kind",
                    "lots": lots,
                    "restrictions": offer.restrictions,
                    "note": offer.note,
                },
            )
            made.offer_place[body["id"]] = offer.place
            made.tracking[body["id"]] = body["tracking_code"]
            summary.inkind_offers += 1
            summary.lots += len(body["lots"])
            for group in sorted({lot["check_by"] for lot in body["lots"] if lot["verification"] == "pending"}):
                verdict = "rejected" if group in offer.reject_groups else "verified"
                checked = await api.json(
                    "POST",
                    f"/v1/offers/{body['id']}/verification",
                    api.auth(Role.working_group, api.org(f"wg-{group}"), group=group),
                    key=f"verify-{body['id']}-{group}",
                    json={
                        "verdict": verdict,
                        "notes": "注册证与实物不符，退回捐赠方" if verdict == "rejected" else "资质齐全，抽检合格",
                    },
                )
                n_lots = sum(1 for lot in checked["lots"] if lot["check_by"] == group)
                if verdict == "verified":
                    summary.lots_verified += n_lots
                else:
                    summary.lots_rejected += n_lots
        for n, amount in enumerate(plan.pledges):
            body = await api.json(
                "POST",
                "/v1/offers",
                headers,
                key=f"pledge-{plan.index}-{n}",
                json={"donor_id": donor["id"], "kind": "cash", "amount": amount, "currency": "CNY"},
            )
            made.pledge_ids.append((body["id"], amount))
            summary.pledges += 1
            summary.pledged_fen += amount

    await _gather([one(p) for p in scenario.donors])
    summary.donors = len(scenario.donors)


async def _procure(
    api: Api, scenario: Scenario, made: _Created, summary: Summary, coordinator: dict[str, str], wait_seconds: float
) -> None:
    plan = scenario.purchase
    funding, left = [], plan.total
    for offer_id, amount in sorted(made.pledge_ids, key=lambda p: (-p[1], p[0])):
        if left <= 0:
            break
        take = min(amount, left)
        funding.append({"offer_id": offer_id, "amount": take})
        left -= take
    if left > 0:
        raise DemoError(f"the pledges ({_yuan(summary.pledged_fen)}) cannot pay for the purchase ({_yuan(plan.total)})")
    body = {
        "supplier": {
            "name": plan.supplier.label,
            "region_code": plan.supplier.region_code,
            "lat": plan.supplier.lat,
            "lon": plan.supplier.lon,
        },
        "lines": [{"item_code": code, "quantity": q, "unit_price": price} for code, q, price in plan.lines],
        "funding": funding,
        "region_code": REGION,
        "note": "保供缺口：采购大米、食用油等民生物资",
    }
    last = ""

    async def drafted() -> JSON | None:
        nonlocal last
        r = await api.call("POST", "/v1/procurements", coordinator, json=body, key="procurement", allow=(409,))
        if r.status_code == 409:  # logistics has not heard of every pledge yet
            last = _problem(r)
            return None
        return dict(r.json())

    draft = await _wait_for(lambda: f"logistics to accept the purchase's pledges (last: {last})", drafted, wait_seconds)
    summary.procurement_orders = 1
    ordered = await api.json("POST", f"/v1/procurements/{draft['id']}/order", coordinator, key="procurement-order")
    summary.procurement_ordered = int(ordered["status"] == "ordered")
    summary.procurement_fen = int(ordered["total"])
    received = await api.json("POST", f"/v1/procurements/{draft['id']}/receive", coordinator, key="procurement-recv")
    summary.procurement_received = int(received["status"] == "received")
    if received.get("goods_offer_id"):
        made.offer_place[received["goods_offer_id"]] = plan.supplier


async def _match(
    api: Api,
    made: _Created,
    summary: Summary,
    coordinator: dict[str, str],
    wait_seconds: float,
    settle_seconds: float,
    say: Callable[[str], None],
) -> dict[str, JSON]:
    """Accept what matching proposes for our needs until it proposes nothing more: first what the continuous
    runs proposed by themselves, then manual allocation runs, until two in a row (a moment apart) add nothing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    quiet = 0

    async def accept(p: JSON) -> bool:
        for attempt in range(4):
            r = await api.call(
                "POST",
                f"/v1/proposals/{p['id']}/accept",
                coordinator,
                json={},
                key=f"accept-{p['id']}",
                allow=(409, 500),
            )
            if r.status_code != 500:
                break
            # Concurrent accepts whose lots were taken re-match their lines and can deadlock in matching (a 500
            # that rolls back and releases the idempotency key): the accept is safe to repeat.
            summary.accept_retries += 1
            await asyncio.sleep(0.2 * (attempt + 1))
        else:
            raise DemoError(f"POST /v1/proposals/{p['id']}/accept kept answering 500: {_problem(r)}")
        if r.status_code == 409:  # superseded by a newer run, or the lot was taken: the line is re-matched
            summary.proposals_conflicts += 1
            return False
        return True

    while True:
        proposed = [
            p
            for p in await api.all("/v1/proposals", coordinator, {"status": "proposed", "region_code": REGION})
            if p["need_id"] in made.need_ids
        ]
        if not proposed:
            run = await api.json(
                "POST",
                "/v1/allocation-runs",
                coordinator,
                key=f"run-{summary.allocation_runs}",
                json={"scope": {"region_code": REGION}},
            )
            summary.allocation_runs += 1
            proposed = [p for p in run["proposals"] if p["status"] == "proposed" and p["need_id"] in made.need_ids]
        if proposed:
            quiet = 0
            taken = sum(await _gather([accept(p) for p in proposed]))
            say(f"  accepted {taken} of {len(proposed)} proposals (the others were superseded meanwhile)")
        else:
            quiet += 1
            if quiet >= 2:
                break
            await asyncio.sleep(settle_seconds)
        if loop.time() > deadline:
            raise DemoError(f"matching still proposed new allocations after {wait_seconds:.0f} s")
    accepted = {
        p["id"]: p
        for p in await api.all("/v1/proposals", coordinator, {"status": "accepted", "region_code": REGION})
        if p["need_id"] in made.need_ids
    }
    summary.proposals_accepted = len(accepted)
    summary.proposals_auto_accepted = sum(1 for p in accepted.values() if p["auto"])
    summary.quantity_accepted = sum(int(p["accepted_quantity"] or 0) for p in accepted.values())
    if not accepted:
        raise DemoError("matching proposed nothing for the demo's needs")
    return accepted


async def _planned_shipments(
    api: Api,
    made: _Created,
    accepted: dict[str, JSON],
    coordinator: dict[str, str],
    wait_seconds: float,
    say: Callable[[str], None],
) -> list[JSON]:
    missing: set[str] = set(accepted)

    async def planned() -> list[JSON] | None:
        nonlocal missing
        shipments = [
            s
            for s in await api.all("/v1/shipments", coordinator, {"region_code": REGION})
            if s["destination_site_id"] in made.site_by_id
        ]
        on_shipments = {line["proposal_id"] for s in shipments for line in s["lines"]}
        missing = set(accepted) - on_shipments
        return shipments if not missing else None

    return await _wait_for(
        lambda: f"logistics to plan shipments for {len(missing)} of {len(accepted)} accepted proposals",
        planned,
        wait_seconds,
        interval=min(2.0, 0.3 + len(accepted) / 1000),  # each look lists every shipment: not too often
        say=say,
    )


async def _deliver(
    api: Api, scenario: Scenario, made: _Created, summary: Summary, shipments: list[JSON], say: Callable[[str], None]
) -> list[JSON]:
    rng = random.Random(scenario.seed + 1)
    # A stable order (sites by plan index, then what is on board) so the same seed picks the same short ones.
    shipments = sorted(
        shipments,
        key=lambda s: (made.site_by_id[s["destination_site_id"]].index, sorted(ln["item_code"] for ln in s["lines"])),
    )
    per_site: dict[str, int] = defaultdict(int)
    for s in shipments:
        per_site[s["destination_site_id"]] += 1
    short = {
        i for i, s in enumerate(shipments) if rng.random() < 0.08 and any(ln["quantity"] >= 2 for ln in s["lines"])
    }
    if not short:  # show at least one
        short = {next((i for i, s in enumerate(shipments) if any(ln["quantity"] >= 2 for ln in s["lines"])), -1)}
    plans = [(s, i in short, rng.random(), rng.randint(3, 5)) for i, s in enumerate(shipments)]
    step = max(1, len(plans) // 10)

    async def one(shipment: JSON, is_short: bool, r: float, rating: int) -> JSON:
        done = await _move(api, made, summary, shipment, is_short, r, rating, per_site)
        if summary.feedback % step == 0 and summary.feedback < len(plans):
            say(f"  {summary.feedback} of {len(plans)} shipments received, with feedback")
        return done

    return await _gather([one(*plan) for plan in plans])


async def _move(
    api: Api,
    made: _Created,
    summary: Summary,
    shipment: JSON,
    short: bool,
    r: float,
    rating: int,
    per_site: dict[str, int],
) -> JSON:
    site = made.site_by_id[shipment["destination_site_id"]]
    sid = shipment["id"]
    origin = made.offer_place.get(shipment["lines"][0]["offer_id"])
    origin_label = origin.label if origin else "捐赠方仓库"
    carrier_name = CARRIERS[site.index % len(CARRIERS)]
    carrier = api.auth(Role.logistics, api.org(f"carrier-{site.index % len(CARRIERS)}"))
    legs = [
        {"origin": origin_label, "destination": site.sub_center, "carrier": carrier_name},
        {"origin": site.sub_center, "destination": site.name, "carrier": carrier_name},
    ]
    # The route's planned shipment may have changed since it was listed: work from what the PATCH returns.
    shipment = await _patch_legs(api, sid, carrier, {"carrier": carrier_name, "legs": legs}, int(shipment["version"]))
    steps = (
        ("picked_up", 0, f"{origin_label}装车", f"{carrier_name}已提货"),
        ("in_transit", 1, site.sub_center, "到达区中转站，分拣后转运"),
        ("delivered", 1, site.name, "已送达，待收货方核验"),
    )
    for status, leg, location, note in steps:
        await api.call(
            "POST",
            f"/v1/shipments/{sid}/status",
            carrier,
            key=f"status-{sid}-{status}",
            json={"status": status, "location": location, "note": note, "leg": leg},
        )
        if status == "picked_up":
            summary.picked_up += 1
        elif status == "in_transit":
            summary.in_transit += 1
        else:
            summary.delivered += 1
    recipient = api.auth(Role.frontline, api.org(site.org))
    pin = (await api.json("GET", f"/v1/shipments/{sid}", recipient)).get("handover_pin")
    if not pin:
        raise DemoError(f"GET /v1/shipments/{sid} showed no handover PIN to the receiving site's organisation")
    lines = []
    short_line = next((ln["id"] for ln in shipment["lines"] if ln["quantity"] >= 2), None) if short else None
    for line in shipment["lines"]:
        q = int(line["quantity"])
        if line["id"] == short_line:
            got = max(1, min(q - 1, int(q * (0.75 + 0.2 * r))))
            lines.append(
                {
                    "line_id": line["id"],
                    "quantity_received": got,
                    "discrepancy_reason": _SHORTFALLS[int(r * len(_SHORTFALLS)) % len(_SHORTFALLS)],
                }
            )
        else:
            lines.append({"line_id": line["id"], "quantity_received": q})
    done = await api.json(
        "POST", f"/v1/shipments/{sid}/receipt", recipient, key=f"receipt-{sid}", json={"pin": pin, "lines": lines}
    )
    if done["status"] == "received":
        summary.received += 1
    elif done["status"] == "received_with_problem":
        summary.received_with_problem += 1
    else:
        raise DemoError(f"shipment {sid} became {done['status']} on receipt")
    if short_line:
        summary.short_receipts += 1
    summary.quantity_received += sum(int(x["quantity_received"]) for x in lines)
    served = max(1, site.beneficiaries // per_site[shipment["destination_site_id"]])
    await api.json(
        "POST",
        f"/v1/shipments/{sid}/feedback",
        recipient,
        key=f"feedback-{sid}",
        json={
            "rating": min(rating, 4) if short_line else rating,
            "comment": "部分物资短缺，已说明原因"
            if short_line
            else _FEEDBACK[int(r * len(_FEEDBACK)) % len(_FEEDBACK)],
            "beneficiaries_served": served,
        },
    )
    summary.feedback += 1
    summary.beneficiaries_reported += served
    return dict(done)


async def _patch_legs(api: Api, sid: str, headers: dict[str, str], body: JSON, version: int) -> JSON:
    """Set the carrier and the legs through the district sub-center (If-Match: re-read once if stale)."""
    for _ in range(3):
        r = await api.call(
            "PATCH", f"/v1/shipments/{sid}", {**headers, "If-Match": f'"{version}"'}, json=body, allow=(412,)
        )
        if r.status_code != 412:
            return dict(r.json())
        version = int((await api.json("GET", f"/v1/shipments/{sid}", headers))["version"])
    raise DemoError(f"PATCH /v1/shipments/{sid} kept answering 412: the shipment kept changing")


async def _report(
    api: Api,
    made: _Created,
    summary: Summary,
    coordinator: dict[str, str],
    catalog: dict[str, JSON],
    received: list[JSON],
    wait_seconds: float,
    say: Callable[[str], None],
) -> None:
    """Read the impact report for what this run posted (`from` its first site) and wait until it counts every
    receipt, pledge, purchase and feedback the demo made; a report that never catches up is a warning."""
    per_line: dict[str, int] = defaultdict(int)
    value = 0
    for shipment in received:
        for line in shipment["lines"]:
            got = int(line["quantity_received"] or 0)
            value += got * int(catalog[line["item_code"]]["unit_value_fen"])
            if line.get("need_line_id"):
                per_line[line["need_line_id"]] += got
    expected = {
        "money raised": summary.pledged_fen,
        "money spent": summary.procurement_fen,
        "goods value delivered": value,
        "beneficiaries": summary.beneficiaries_reported,
        "quantity delivered": sum(min(q, made.need_lines.get(lid, q)) for lid, q in per_line.items()),
    }
    assert made.since is not None
    params = {"region_code": REGION, "level": "county", "from": made.since.isoformat()}
    seen: dict[str, int] = {}
    last: JSON = {}

    def differ() -> str:
        return ", ".join(f"{k} {seen.get(k)} of {v:,}" for k, v in expected.items() if seen.get(k) != v)

    async def caught_up() -> JSON | None:
        nonlocal seen, last
        last = await api.json("GET", "/v1/reports/impact", coordinator, params=params)
        totals = last["totals"]
        seen = {
            "money raised": int(last["money_raised"]),
            "money spent": int(totals["money_spent"]),
            "goods value delivered": int(totals["goods_value_delivered"]),
            "beneficiaries": int(totals["beneficiaries"]),
            "quantity delivered": int(totals["quantity_delivered"]),
        }
        return last if seen == expected else None

    try:
        report = await _wait_for(
            lambda: "the impact report to count what the demo did: " + differ(),
            caught_up,
            wait_seconds,
            interval=min(2.0, 0.5 + len(received) / 1000),
            say=say,
        )
    except DemoError:
        report = last
        summary.warnings.append(f"the impact report did not catch up with the demo: {differ()}")
    totals = report["totals"]
    summary.money_raised_fen = int(report["money_raised"])
    summary.goods_value_offered_fen = int(report["goods_value_offered"])
    summary.money_spent_fen = int(totals["money_spent"])
    summary.goods_value_delivered_fen = int(totals["goods_value_delivered"])
    summary.sites_supported = int(totals["sites_supported"])
    summary.beneficiaries = int(totals["beneficiaries"])
    summary.fill_rate = float(totals["fill_rate"])
    summary.time_to_match_p50_hours = totals.get("time_to_match_hours_p50")


async def _tracking(api: Api, made: _Created, summary: Summary, received: list[JSON]) -> None:
    """The public tracking page of the donor offer that reached the most sites (no token)."""
    reached: dict[str, set[str]] = defaultdict(set)
    for shipment in received:
        for line in shipment["lines"]:
            if line["offer_id"] in made.tracking and line["quantity_received"]:
                reached[line["offer_id"]].add(shipment["destination_site_id"])
    if not reached:
        summary.warnings.append("no donor's in-kind gift was received, so there is no tracking page to show")
        return
    offer_id = max(sorted(reached), key=lambda o: len(reached[o]))
    code = made.tracking[offer_id]
    track = await api.json("GET", f"/v1/track/{code}")
    if not track["summary"]["quantity_received"]:
        summary.warnings.append(f"the tracking page of offer {offer_id} shows nothing received")
    page = await api.call("GET", f"/v1/track/{code}", params={"format": "html"})
    if "text/html" not in page.headers.get("content-type", ""):
        summary.warnings.append("the tracking page did not answer with HTML")
    summary.tracking_code = code
    summary.tracking_steps = len(track["timeline"])
    summary.tracking_url = f"{summary.base_url}/v1/track/{code}"


def run_cli(base_url: str, *, sites: int, seed: int, concurrency: int, settings: Settings, console: Console) -> int:
    """`reliefhub demo`: run against a server, print progress and the summary; the exit code."""
    started = time.perf_counter()

    def say(message: str) -> None:
        console.print(f"[dim]{time.perf_counter() - started:6.1f}s[/] {message}")

    async def main() -> Summary:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            try:
                ready = await client.get("/readyz")
            except httpx.TransportError as exc:
                raise DemoError(
                    f"no ReliefHub server answers at {base_url} ({exc.__class__.__name__}); "
                    "start one with `make dev` in another terminal, or pass --base-url"
                ) from exc
            if ready.status_code != 200:
                raise DemoError(f"{base_url}/readyz answered {ready.status_code}: the server is not ready")
            return await run_demo(
                client,
                settings,
                sites=sites,
                seed=seed,
                concurrency=concurrency,
                wait_seconds=max(180.0, 3.0 * sites),
                base_url=base_url.rstrip("/"),
                progress=say,
            )

    try:
        summary = asyncio.run(main())
    except DemoError as exc:
        console.print(f"[red]✗[/] the demo stopped: {exc}")
        return 1
    console.print(summary_table(summary))
    console.print(f"A donor's gift, step by step (open in a browser): {summary.tracking_url}", soft_wrap=True)
    for warning in summary.warnings:
        console.print(f"[yellow]![/] {warning}")
    return 0
