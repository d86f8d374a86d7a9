"""The demo's scenario data: Shanghai's districts and streets, the kinds of recipient sites and what each asks
for, the donors and what they give, warehouses, a supplier, carriers, and the words sites use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
REGION = "31"  # Shanghai


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

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
ROADS = (
    "长乐路", "延安西路", "中山北路", "张杨路", "浦东南路", "漕溪北路", "江浦路", "共和新路", "沪太路",
    "曹安公路", "四平路", "武宁路", "天山路", "华山路", "龙华西路", "七莘路", "莘松路", "虹梅路", "罗山路",
)  # fmt: skip
COMMITTEES = (
    "康乐", "和平", "幸福", "阳光", "明珠", "锦绣", "长乐", "永安", "春晖", "兴旺", "梅园", "桂林", "绿洲",
    "东方", "翠竹", "云台", "紫藤", "金桥", "新港", "海棠",
)  # fmt: skip
FEEDBACK = (
    "物资已分发到户，居民很感谢",
    "解了燃眉之急，谢谢各位爱心人士",
    "已发放给一线医护和志愿者",
    "老人们的药和尿裤都送到了",
    "方舱里的患者今天都吃上了热饭",
    "数量清点无误，感谢保供车队",
)
SHORTFALLS = (
    "外箱破损，部分物资受潮无法使用",
    "清点时少了几箱，已拍照留证",
    "运输途中挤压，部分包装破损",
    "部分批次临近效期，现场拒收",
)


@dataclass(frozen=True)
class FundPlan:
    key: str
    name: str
    restrictions: JSON
    overhead_share: float
    spend_pledged: bool
    rules: str  # the restrictions in words, for the summary


# The operation's special funds (专项基金). Cash pledges are paid into them in turn, largest first, by FUND_TURNS.
OPERATION_NAME = "上海抗疫保供专项行动"
FUNDS: tuple[FundPlan, ...] = (
    FundPlan("general", "上海抗疫综合专项基金", {}, 0.05, False, "any purpose in Shanghai"),
    FundPlan(
        "staples", "民生保供专项基金", {"item_codes": ["food.", "water."]}, 0.02, True,
        "food and water; may spend what is pledged and not yet paid",
    ),
    FundPlan(
        "medical",
        "医疗救治专项基金",
        {"site_kinds": ["hospital"], "item_codes": ["ppe.", "medical_consumable.", "medicine.", "medical_device."]},
        0.03,
        False,
        "hospitals' medical items",
    ),
    FundPlan("elderly", "关爱老人专项基金", {"site_kinds": ["nursing_home"]}, 0.0, False, "nursing homes; no overhead"),
)  # fmt: skip
FUND_TURNS = ("general", "staples", "medical", "general", "elderly", "staples")
# What the funds' own purchases for a hospital and a nursing home may buy (fen per unit).
FUND_PRICES = {
    "ppe.mask.n95": 350,
    "ppe.mask.surgical": 60,
    "ppe.suit.protective": 3800,
    "ppe.glove.nitrile": 2500,
    "ppe.gown.isolation": 1500,
    "medical_consumable.test.antigen": 1200,
    "medicine.antipyretic.ibuprofen": 1800,
    "hygiene.adult.diaper_l": 320,
    "hygiene.adult.underpad": 180,
    "food.milk.uht": 450,
    "food.canned.congee": 600,
    "food.grain.rice": 550,
    "medicine.hypertension.amlodipine": 1500,
    "medicine.diabetes.metformin": 1200,
}
