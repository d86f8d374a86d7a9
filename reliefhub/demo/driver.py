"""Driving the scenario through the public HTTP API: sites and needs, donors, offers and their checks, partners
and working groups' tasks (partners.py), the purchase, matching, shipments moved to receipts and feedback, the
impact report and a tracking page."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from reliefhub.demo.claims import partner_claim
from reliefhub.demo.client import Api, DemoError, gather, problem_text, wait_for
from reliefhub.demo.data import CARRIERS, FEEDBACK, JSON, REGION, SHORTFALLS, Place
from reliefhub.demo.funds import (
    Funds,
    buy,
    fund_accounts,
    fund_purchases,
    funding,
    open_funds,
    post_pledge,
    record_payments,
    supplier,
)
from reliefhub.demo.partners import count_tasks, gift_from_abroad, register_partners, serve_the_elderly
from reliefhub.demo.scenario import DonorPlan, Pledge, Scenario, SitePlan, build_scenario
from reliefhub.demo.summary import Summary
from shared.auth import Role
from shared.settings import Settings


@dataclass
class _Created:
    site_ids: dict[int, str] = field(default_factory=dict)  # plan index → id
    site_by_id: dict[str, SitePlan] = field(default_factory=dict)
    since: datetime | None = None
    need_lines: dict[str, int] = field(default_factory=dict)  # need line id → quantity
    need_ids: set[str] = field(default_factory=set)
    need_of: dict[tuple[int, int], str] = field(default_factory=dict)  # (site plan index, nth need) → id
    offer_place: dict[str, Place] = field(default_factory=dict)  # offer id → where its lots are
    tracking: dict[str, str] = field(default_factory=dict)  # in-kind offer id → tracking code
    pledges: dict[Pledge, str] = field(default_factory=dict)  # (donor plan index, nth pledge) → offer id


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
    say("a relief operation and its special funds: general, staples, medical, elderly")
    funds = await open_funds(api, summary, coordinator)
    say(f"registering {len(scenario.donors)} donors, their offers and pledges")
    await _create_donors(api, scenario, made, summary, catalog, funds, wait_seconds)
    say("recording the money received for the pledges")
    await record_payments(api, scenario, made.pledges, funds, summary, coordinator, wait_seconds)
    say("partners: the hub approves its partner organisations and working groups; a gift from abroad clears customs")
    await register_partners(api, summary, coordinator)
    abroad = await gift_from_abroad(api, summary, wait_seconds)
    say("buying staples from the general and staples funds, supplies for a hospital and a nursing home from theirs")
    await _procure(api, scenario, made, summary, coordinator, funds, wait_seconds)
    say("matching: waiting for the projection, accepting proposals")
    await wait_for(
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
    say("a partner claims a need line, the hub confirms, the partner brings it and the site receives it")
    await partner_claim(api, summary, coordinator, made.need_ids, wait_seconds)
    await serve_the_elderly(api, summary, coordinator, wait_seconds)
    await count_tasks(api, summary, coordinator, {*made.offer_place, abroad})
    await fund_accounts(api, summary, funds, coordinator)
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
            made.need_of[plan.index, n] = body["id"]
            for line in body["lines"]:
                made.need_lines[line["id"]] = int(line["quantity"])

    await gather([one(p) for p in scenario.sites])
    summary.sites = len(made.site_ids)
    summary.needs = len(made.need_ids)
    summary.need_lines = len(made.need_lines)
    summary.quantity_needed = sum(made.need_lines.values())


async def _create_donors(
    api: Api,
    scenario: Scenario,
    made: _Created,
    summary: Summary,
    catalog: dict[str, JSON],
    funds: Funds,
    wait_seconds: float,
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
            fund_id = funds[scenario.pledge_fund[plan.index, n]]["id"]
            pledge = {"donor_id": donor["id"], "kind": "cash", "amount": amount, "currency": "CNY", "fund_id": fund_id}
            body = await post_pledge(api, headers, f"pledge-{plan.index}-{n}", pledge, wait_seconds)
            made.pledges[plan.index, n] = body["id"]
            summary.pledges += 1
            summary.pledged_fen += amount

    await gather([one(p) for p in scenario.donors])
    summary.donors = len(scenario.donors)


async def _procure(
    api: Api,
    scenario: Scenario,
    made: _Created,
    summary: Summary,
    coordinator: dict[str, str],
    funds: Funds,
    wait_seconds: float,
) -> None:
    """The staples still short, for anywhere in Shanghai, from the staples fund and then the general fund; the
    hospital's and the nursing home's purchases from their own funds."""
    plan = scenario.purchase
    body = {
        "supplier": supplier(),
        "lines": [{"item_code": code, "quantity": q, "unit_price": price} for code, q, price in plan.lines],
        "funding": await funding(api, funds, coordinator, plan.total, ("staples", "general")),
        "region_code": REGION,
        "note": "保供缺口：采购大米、食用油等民生物资",
    }
    received = await buy(api, summary, coordinator, body, "procurement", wait_seconds)
    for goods in [received.get("goods_offer_id")] + await fund_purchases(
        api, scenario, made.need_of, funds, summary, coordinator, wait_seconds
    ):
        if goods:
            made.offer_place[str(goods)] = plan.supplier


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
    while quiet < 2:
        proposed = await _proposed(api, made, summary, coordinator)
        if proposed:
            quiet = 0
            taken = sum(await gather([_accept(api, summary, coordinator, p) for p in _spread_by_lot(proposed)]))
            say(f"  accepted {taken} of {len(proposed)} proposals (the others were superseded meanwhile)")
        else:
            quiet += 1
            if quiet < 2:
                await asyncio.sleep(settle_seconds)
        if quiet < 2 and loop.time() > deadline:
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


def _spread_by_lot(proposals: list[JSON]) -> list[JSON]:
    """The proposals in turns over their lots (one of each lot, then the next of each, …): an accept reserves in
    its lot's row, so accepts in flight together then reserve different lots instead of queueing on one."""
    by_lot: dict[str, list[JSON]] = defaultdict(list)
    for p in proposals:
        by_lot[str(p["lot_id"])].append(p)
    queues = [by_lot[lot] for lot in sorted(by_lot)]
    return [q[turn] for turn in range(max(map(len, queues), default=0)) for q in queues if turn < len(q)]


async def _proposed(api: Api, made: _Created, summary: Summary, coordinator: dict[str, str]) -> list[JSON]:
    """The proposals for our needs waiting for an answer; when there are none, those of a new allocation run."""
    proposed = [
        p
        for p in await api.all("/v1/proposals", coordinator, {"status": "proposed", "region_code": REGION})
        if p["need_id"] in made.need_ids
    ]
    if proposed:
        return proposed
    run = await api.json(
        "POST",
        "/v1/allocation-runs",
        coordinator,
        key=f"run-{summary.allocation_runs}",
        json={"scope": {"region_code": REGION}},
    )
    summary.allocation_runs += 1
    return [p for p in run["proposals"] if p["status"] == "proposed" and p["need_id"] in made.need_ids]


async def _accept(api: Api, summary: Summary, coordinator: dict[str, str], proposal: JSON) -> bool:
    """Accept one proposal; False when it was superseded meanwhile (a 409)."""
    for attempt in range(4):
        r = await api.call(
            "POST",
            f"/v1/proposals/{proposal['id']}/accept",
            coordinator,
            json={},
            key=f"accept-{proposal['id']}",
            allow=(409, 500),
        )
        if r.status_code != 500:
            break
        # Concurrent accepts whose lots were taken re-match their lines and can deadlock in matching (a 500
        # that rolls back and releases the idempotency key): the accept is safe to repeat.
        summary.accept_retries += 1
        await asyncio.sleep(0.2 * (attempt + 1))
    else:
        raise DemoError(f"POST /v1/proposals/{proposal['id']}/accept kept answering 500: {problem_text(r)}")
    if r.status_code == 409:  # superseded by a newer run, or the lot was taken: the line is re-matched
        summary.proposals_conflicts += 1
        return False
    return True


async def _planned_shipments(
    api: Api,
    made: _Created,
    accepted: dict[str, JSON],
    coordinator: dict[str, str],
    wait_seconds: float,
    say: Callable[[str], None],
) -> list[JSON]:
    missing: set[str] = set(accepted)
    seen: dict[str, JSON] = {}  # shipment id → as last listed
    since = "0"

    async def planned() -> list[JSON] | None:
        # Only what changed since the last look (logistics adds lines to a route's planned shipment as accepts
        # arrive): each look costs what logistics did meanwhile, not the whole list again.
        nonlocal missing, since
        changed, since = await api.changed("/v1/shipments", coordinator, {"region_code": REGION}, since)
        seen.update((s["id"], s) for s in changed if s["destination_site_id"] in made.site_by_id)
        on_shipments = {line["proposal_id"] for s in seen.values() for line in s["lines"]}
        missing = set(accepted) - on_shipments
        return list(seen.values()) if not missing else None

    return await wait_for(
        lambda: f"logistics to plan shipments for {len(missing)} of {len(accepted)} accepted proposals",
        planned,
        wait_seconds,
        interval=0.5,
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
    # As many shipments on their way at once as requests in flight: each goes the whole way (receipt, feedback)
    # while the next start, so the projections behind the impact report count them as the demo goes, instead
    # of every shipment's first step queueing ahead of every second one and all receipts arriving at the end.
    lanes = asyncio.Semaphore(api.concurrency)

    async def one(shipment: JSON, is_short: bool, r: float, rating: int) -> JSON:
        async with lanes:
            done = await _move(api, made, summary, shipment, is_short, r, rating, per_site)
        if summary.feedback % step == 0 and summary.feedback < len(plans):
            say(f"  {summary.feedback} of {len(plans)} shipments received, with feedback")
        return done

    return await gather([one(*plan) for plan in plans])


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
    lines, short_line = _receipt_lines(shipment["lines"], short, r)
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
            "comment": "部分物资短缺，已说明原因" if short_line else FEEDBACK[int(r * len(FEEDBACK)) % len(FEEDBACK)],
            "beneficiaries_served": served,
        },
    )
    summary.feedback += 1
    summary.beneficiaries_reported += served
    return dict(done)


def _receipt_lines(shipped: list[JSON], short: bool, r: float) -> tuple[list[JSON], str | None]:
    """What the site counts on receipt: everything, or (a short one) one line a part less, with a reason."""
    short_line = next((ln["id"] for ln in shipped if ln["quantity"] >= 2), None) if short else None
    lines: list[JSON] = []
    for line in shipped:
        q = int(line["quantity"])
        if line["id"] == short_line:
            got = max(1, min(q - 1, int(q * (0.75 + 0.2 * r))))
            reason = SHORTFALLS[int(r * len(SHORTFALLS)) % len(SHORTFALLS)]
            lines.append({"line_id": line["id"], "quantity_received": got, "discrepancy_reason": reason})
        else:
            lines.append({"line_id": line["id"], "quantity_received": q})
    return lines, short_line


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
            if line.get("need_line_id"):  # in the line's unit: a converted substitute counts line units
                credited = line.get("line_quantity_received")
                per_line[line["need_line_id"]] += got if credited is None else int(credited)
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
        report = await wait_for(
            lambda: "the impact report to count what the demo did: " + differ(),
            caught_up,
            wait_seconds,
            interval=min(1.0, 0.3 + len(received) / 2000),
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
    summary.time_to_match_p50_seconds = totals.get("time_to_match_seconds_p50")


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
