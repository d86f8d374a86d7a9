"""The scenario, generated from a seed: recipient sites and their needs, donors with their gifts and pledges,
and one purchase; the same seed gives the same scenario."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from reliefhub.demo.data import (
    CASH_DONORS,
    COMMITTEES,
    DISTRICTS,
    FUND_TURNS,
    INKIND_DONORS,
    JSON,
    KIND_WEIGHTS,
    KIND_ZH,
    PLEDGE_YUAN,
    PROFILES,
    PURCHASABLE,
    ROADS,
    SITE_KINDS,
    SPECIALTIES,
    SPECIALTY_ITEMS,
    SPECIALTY_OF,
    SUPPLIER,
    SURNAMES,
    WAREHOUSES,
    Demand,
    District,
    Place,
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


Pledge = tuple[int, int]  # (donor index, the donor's nth pledge)


@dataclass
class Scenario:
    seed: int
    sites: list[SitePlan]
    donors: list[DonorPlan]
    purchase: PurchasePlan
    pledge_fund: dict[Pledge, str] = field(default_factory=dict)  # the special fund (its key) each pledge goes into
    unpaid: set[Pledge] = field(default_factory=set)  # pledges whose money has not arrived yet

    def fund_pledged(self, *keys: str) -> int:
        return sum(fen for d in self.donors for n, fen in enumerate(d.pledges) if self.pledge_fund[d.index, n] in keys)

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
        return f"{street}{rng.choice(COMMITTEES)}居委会"
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
                address=f"上海市{d.name}{street}{rng.choice(ROADS)}{rng.randint(1, 1500)}号",
                contact_name=f"{rng.choice(SURNAMES)}{rng.choice(('老师', '书记', '主任', '医生', '站长', '社工'))}",
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
    demand = _demand(site_plans)
    by_specialty = _inkind_donors(max(len(SPECIALTIES), round(sites / 10)))
    donors = [d for group in by_specialty.values() for d in group]
    donors.sort(key=lambda d: d.index)
    donors += _cash_donors(rng, len(donors), max(3, round(sites / 25)))
    for donor in donors:
        if donor.specialty and donor.kind == "company" and rng.random() < 0.3:
            donor.pledges.append(rng.randint(50_000, 300_000) * 100)
    gifts, supplied = _gifts(rng, demand, by_specialty)
    districts = sorted({s.district for s in site_plans}, key=lambda x: x.code)
    for donor in donors:
        if donor.specialty is not None:
            first_of_kind = by_specialty[donor.specialty][0] is donor
            donor.offers = _offers(rng, donor, gifts.get(donor.index), first_of_kind, districts)
    pledge_fund, unpaid = _into_funds(donors)
    scenario = Scenario(seed, site_plans, donors, PurchasePlan(SUPPLIER, []), pledge_fund, unpaid)
    scenario.purchase = _purchase(demand, supplied, scenario.fund_pledged("general", "staples"))
    return scenario


def _into_funds(donors: list[DonorPlan]) -> tuple[dict[Pledge, str], set[Pledge]]:
    """Each pledge into a special fund, in turns, largest first; every pledge paid but the staples fund's
    smallest (that fund may spend what is pledged and not yet paid)."""
    amounts = {(d.index, n): fen for d in donors for n, fen in enumerate(d.pledges)}
    pledges = sorted(amounts, key=lambda p: (-amounts[p], p))
    fund = {p: FUND_TURNS[i % len(FUND_TURNS)] for i, p in enumerate(pledges)}
    staples = [p for p in pledges if fund[p] == "staples"]
    return fund, set(staples[-1:])


def _demand(site_plans: list[SitePlan]) -> dict[str, int]:
    demand: dict[str, int] = defaultdict(int)
    for site in site_plans:
        for need in site.needs:
            for code, q in need.lines:
                demand[code] += q
    return demand


def _inkind_donors(n: int) -> dict[str, list[DonorPlan]]:
    """Several in-kind donors per specialty, in turn (the second round of a name marked as a later batch)."""
    by_specialty: dict[str, list[DonorPlan]] = defaultdict(list)
    for i in range(n):
        specialty = SPECIALTIES[i % len(SPECIALTIES)]
        pool = INKIND_DONORS[specialty]
        k = len(by_specialty[specialty])
        name, kind = pool[k % len(pool)]
        by_specialty[specialty].append(
            DonorPlan(i, name if k < len(pool) else f"{name}（第{k // len(pool) + 1}批）", kind, specialty)
        )
    return by_specialty


def _cash_donors(rng: random.Random, first_index: int, n: int) -> list[DonorPlan]:
    donors = []
    for j in range(n):
        name, kind = CASH_DONORS[j % len(CASH_DONORS)]
        if j >= len(CASH_DONORS):
            name = f"{name}（{j // len(CASH_DONORS) + 1}）"
        lo, hi = PLEDGE_YUAN[kind]
        donor = DonorPlan(first_index + j, name, kind, None, pledges=[rng.randint(lo, hi) * 100])
        if kind in ("foundation", "company") and rng.random() < 0.4:
            donor.pledges.append(rng.randint(lo, hi) * 50)  # a second round of giving
        donors.append(donor)
    return donors


def _gifts(
    rng: random.Random, demand: dict[str, int], by_specialty: dict[str, list[DonorPlan]]
) -> tuple[dict[int, list[tuple[str, int]]], dict[str, int]]:
    """Most of what is asked for, split among one to three donors of its specialty; some items short (the
    purchase fills part of the staples' gap). Returns (lots per donor index, quantity supplied per item)."""
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
    return gifts, supplied


def _offers(
    rng: random.Random,
    donor: DonorPlan,
    lots: list[tuple[str, int]] | None,
    first_of_kind: bool,
    districts: list[District],
) -> list[OfferPlan]:
    """An in-kind donor's offers: large gifts come in two batches from two warehouses."""
    assert donor.specialty is not None
    lots = lots or [(SPECIALTY_ITEMS[donor.specialty][0], rng.randint(50, 500))]
    restrictions: JSON = {}
    note = f"{donor.name}捐赠，支援上海抗疫"
    if not first_of_kind and rng.random() < 0.3:
        restrictions, note = _restrictions(rng, donor.specialty, districts)
    places = rng.sample(WAREHOUSES, k=2)
    batches = [lots[0::2], lots[1::2]] if len(lots) >= 4 else [lots]
    offers = []
    for b, batch in enumerate(batches):
        reject: frozenset[str] = frozenset()
        if not first_of_kind and donor.specialty == "medical" and rng.random() < 0.25:
            reject = frozenset({"medical_device"})  # e.g. papers not matching the registered product
        offers.append(OfferPlan(batch, places[b], restrictions, note, reject))
    return offers


def _restrictions(rng: random.Random, specialty: str, districts: list[District]) -> tuple[JSON, str]:
    """A donor's wish, and the offer's note saying it: one district, or kinds of sites."""
    if rng.random() < 0.5:
        d = rng.choice(districts)
        return {"region_codes": [d.code]}, f"定向捐赠{d.name}"
    kinds = {"medical": ["hospital", "shelter", "nursing_home"], "baby": ["community", "ngo"]}.get(
        specialty, ["community", "nursing_home", "shelter"]
    )
    return {"site_kinds": kinds}, "定向捐赠：" + "、".join(KIND_ZH[k] for k in kinds)


def _purchase(demand: dict[str, int], supplied: dict[str, int], pledged: int) -> PurchasePlan:
    """Staples still short, at wholesale prices, for up to 60% of what the funds that may buy them hold."""
    budget = int(pledged * 0.6)
    wanted = [
        (code, round((demand[code] - supplied[code]) * 0.8), price)
        for code, price in PURCHASABLE.items()
        if demand.get(code, 0) > supplied.get(code, 0)
    ]
    wanted = [w for w in wanted if w[1] > 0] or [("food.grain.rice", 500, PURCHASABLE["food.grain.rice"])]
    cost = sum(q * p for _, q, p in wanted)
    scale = min(1.0, budget / cost) if cost else 1.0
    return PurchasePlan(SUPPLIER, [(code, max(1, int(q * scale)), p) for code, q, p in wanted])
