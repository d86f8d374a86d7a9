"""The demo's partners: the hub registers and an operator approves it, partner organisations and working groups
register and the hub approves them; a gift from abroad waits for its customs task, which the customs group
completes (and the translators translate its note); partners declare what they can do (capacities); at the end,
the working groups' tasks are counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reliefhub.demo.client import Api, gather, wait_for
from reliefhub.demo.data import JSON, REGION
from reliefhub.demo.summary import Summary
from shared.auth import Role

HUB_NAME = "上海市民间社会资源服务中心"
# kind, name, region prefixes served, issue areas
PARTNERS: tuple[tuple[str, str, list[str], list[str]], ...] = (
    ("ngo", "黄浦区社会工作服务中心", ["310101"], ["elderly", "psychological_support"]),
    ("community_group", "潍坊新村街道邻里互助会", ["310115"], ["community_residents"]),
    ("volunteer_team", "徐汇青年志愿者服务队", ["310104"], ["last_mile_delivery"]),
    ("carrier", "浦江志愿者货运联盟", [REGION], ["logistics"]),
    ("foundation", "上海市慈善基金会", [REGION], ["fundraising", "customs_consignee"]),
    ("company", "沪通达物流有限公司", ["310112", "310104"], ["warehousing"]),
)
# the working groups of the center: (group, name)
GROUPS: tuple[tuple[str, str], ...] = (
    ("medical_device", "医疗器械核验组"),
    ("customs", "海关清关组"),
    ("translation", "翻译组"),
    ("procurement", "全球采购组"),
)
# what partners can do: (index in PARTNERS, service, units a day, days, region prefixes, note)
CAPACITIES: tuple[tuple[int, str, int, int, list[str], str], ...] = (
    (0, "service.psych.support_session", 30, 7, ["310101"], "老年人心理支持，线上线下均可"),
    (2, "service.transport.volunteer_driver", 6, 14, ["310104"], "最后一公里配送"),
    (4, "service.customs.brokerage", 2, 30, [REGION], "捐赠物资进口报关"),
)
GIFT_ITEM = "ppe.mask.kn95"
GIFT_QUANTITY = 600


async def register_partners(api: Api, summary: Summary, coordinator: dict[str, str]) -> None:
    """The hub, approved by an operator; partners and working groups, approved by the hub."""
    hub = api.org("hub")
    admin = api.auth(Role.admin, api.org("operators"))
    body: JSON = {"name": HUB_NAME, "kind": "hub", "region_codes": [REGION], "issue_areas": ["coordination"]}
    await api.call("POST", "/v1/organizations", coordinator, key="org-hub", json=body, allow=(409,))
    await api.call("POST", f"/v1/organizations/{hub}/approve", admin, key="approve-hub", json={}, allow=(409,))
    members: list[tuple[str, dict[str, str], JSON]] = []
    for i, (kind, name, regions, areas) in enumerate(PARTNERS):
        org = api.org(f"partner-{i}")
        org_body: JSON = {"name": name, "kind": kind, "parent_id": hub, "region_codes": regions, "issue_areas": areas}
        members.append((org, api.auth(Role.frontline, org), org_body | {"public_name": name}))
    for group, name in GROUPS:
        org = api.org(f"wg-{group}")
        group_body: JSON = {"name": name, "kind": "working_group", "parent_id": hub, "region_codes": [REGION]}
        members.append((org, api.auth(Role.working_group, org, group=group), group_body))

    async def join(org: str, headers: dict[str, str], member: JSON) -> None:
        await api.call("POST", "/v1/organizations", headers, key=f"register-{org}", json=member, allow=(409,))
        approved = await api.call(
            "POST", f"/v1/organizations/{org}/approve", coordinator, key=f"approve-{org}", json={}, allow=(409,)
        )
        summary.organizations += 1
        summary.organizations_approved += approved.status_code == 200

    await gather([join(*m) for m in members])
    await declare_capacities(api, summary)


async def declare_capacities(api: Api, summary: Summary) -> None:
    """Approved partners declare capacities: units of a service a day, from today, over the regions they serve."""
    today = datetime.now(UTC).date()

    async def declare(index: int, service: str, units: int, days: int, regions: list[str], note: str) -> None:
        org = api.org(f"partner-{index}")
        body: JSON = {
            "service_code": service,
            "units_per_day": units,
            "starts_on": today.isoformat(),
            "ends_on": (today + timedelta(days=days - 1)).isoformat(),
            "region_codes": regions,
            "note": note,
        }
        await api.call("POST", "/v1/capacities", api.auth(Role.frontline, org), key=f"capacity-{org}", json=body)
        summary.capacities += 1
        summary.capacity_units_per_day += units

    await gather([declare(*c) for c in CAPACITIES])


async def gift_from_abroad(api: Api, summary: Summary, wait_seconds: float) -> str:
    """Masks donated from Japan: their lots await customs until the customs group clears them with the HS code,
    the consignee foundation and the exemption reference; the translators translate the donor's note. Returns
    the offer's id."""
    donor_headers = api.auth(Role.donor, api.org("abroad"))
    donor = await api.json(
        "POST", "/v1/donors", donor_headers, key="donor-abroad", json={"name": "日本友好团体联合会", "kind": "group"}
    )
    lot = {"item_code": GIFT_ITEM, "quantity": GIFT_QUANTITY, "region_code": "310115", "lat": 31.15, "lon": 121.80}
    offer = await api.json(
        "POST",
        "/v1/offers",
        donor_headers,
        key="offer-abroad",
        json={
            "donor_id": donor["id"],
            "kind": "in_kind",
            "origin_country": "JP",
            "note": "山川異域、風月同天。上海の皆様のご健康をお祈りします。",
            "lots": [lot],
        },
    )
    summary.inkind_offers += 1
    summary.lots += len(offer["lots"])
    customs = api.auth(Role.working_group, api.org("wg-customs"), group="customs")
    translators = api.auth(Role.working_group, api.org("wg-translation"), group="translation")

    async def task_of(headers: dict[str, str], kind: str) -> JSON | None:
        page = await api.json("GET", "/v1/tasks", headers, params={"subject_id": offer["id"], "kind": kind})
        return page["items"][0] if page["items"] else None

    clearance = await wait_for(
        lambda: "the customs task of the gift from abroad", lambda: task_of(customs, "customs_clearance"), wait_seconds
    )
    await api.call("POST", f"/v1/tasks/{clearance['id']}/claim", customs, key="claim-customs")
    data = {
        "hs_codes": {GIFT_ITEM: "6307900010"},
        "consignee_foundation": PARTNERS[4][1],
        "exemption_reference": "沪关免字〔2022〕0417号",
    }
    body = {"outcome": "cleared", "notes": "单证齐全，准予放行", "data": data}
    await api.call("POST", f"/v1/tasks/{clearance['id']}/complete", customs, key="complete-customs", json=body)
    summary.customs_cleared_lots += len(offer["lots"])
    translation = await wait_for(
        lambda: "the translation task of the gift's note", lambda: task_of(translators, "translation"), wait_seconds
    )
    text = "山川异域，风月同天。祝上海的各位身体健康。"
    body = {"outcome": "translated", "data": {"language": "zh", "text": text}}
    await api.call(
        "POST", f"/v1/tasks/{translation['id']}/complete", translators, key="complete-translation", json=body
    )
    return str(offer["id"])


async def count_tasks(api: Api, summary: Summary, coordinator: dict[str, str], offer_ids: set[str]) -> None:
    """The working groups' tasks about this run's offers, done by now."""
    tasks = [t for t in await api.all("/v1/tasks", coordinator, {"status": "done"}) if t["subject"]["id"] in offer_ids]
    summary.tasks_done = len(tasks)
    summary.tasks_by_kind = {
        kind: sum(1 for t in tasks if t["kind"] == kind) for kind in sorted({t["kind"] for t in tasks})
    }


async def serve_the_elderly(api: Api, summary: Summary, coordinator: dict[str, str], wait_seconds: float) -> None:
    """A nursing home in Huangpu needs 20 psychological-support sessions: matching proposes the Huangpu social
    work center's capacity, the hub accepts, and the center confirms its assignment and reports it done."""
    home = api.org("nursing-home")
    headers = api.auth(Role.frontline, home)
    body: JSON = {"name": "黄浦区第一福利院", "kind": "community_group", "parent_id": api.org("hub")}
    body["region_codes"] = ["310101"]
    await api.call("POST", "/v1/organizations", headers, key=f"register-{home}", json=body, allow=(409,))
    await api.call(
        "POST", f"/v1/organizations/{home}/approve", coordinator, key=f"approve-{home}", json={}, allow=(409,)
    )
    site = await api.json(
        "POST",
        "/v1/sites",
        headers,
        key="site-nursing-home",
        json={"name": "黄浦区第一福利院", "kind": "nursing_home", "region_code": "310101", "lat": 31.23, "lon": 121.48},
    )
    line = {"item_code": CAPACITIES[0][1], "quantity": 20}
    need = await api.json(
        "POST",
        "/v1/needs",
        headers,
        key="need-nursing-home",
        json={"site_id": site["id"], "title": "老人心理疏导", "urgency": "high", "lines": [line]},
    )
    verdict = {"verdict": "verified", "reason": "福利院负责人电话核实"}
    await api.call("POST", f"/v1/needs/{need['id']}/verify", coordinator, key=f"verify-{need['id']}", json=verdict)

    async def first(path: str, params: dict[str, str]) -> JSON | None:
        page = await api.json("GET", path, coordinator, params=params)
        return page["items"][0] if page["items"] else None

    proposal = await wait_for(
        lambda: "a proposal of a capacity for the nursing home",
        lambda: first("/v1/proposals", {"need_id": need["id"], "status": "proposed"}),
        wait_seconds,
    )
    await api.call("POST", f"/v1/proposals/{proposal['id']}/accept", coordinator, key=f"accept-{proposal['id']}")
    assignment = await wait_for(
        lambda: "the nursing home's assignment", lambda: first("/v1/assignments", {"need_id": need["id"]}), wait_seconds
    )
    partner = api.auth(Role.frontline, api.org("partner-0"))
    url = f"/v1/assignments/{assignment['id']}"
    await api.call("POST", f"{url}/confirm", partner, key=f"confirm-{assignment['id']}")
    units = int(assignment["quantity"])
    report = {
        "units_delivered": units,
        "people_served": 36,
        "served_by_group": {"elderly": 36},
        "note": "团体与个体辅导",
    }
    await api.call("POST", f"{url}/report", partner, key=f"report-{assignment['id']}", json=report)
    summary.assignments_done += 1
    summary.service_units_delivered += units
