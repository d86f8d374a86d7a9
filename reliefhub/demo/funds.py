"""The demo's money: one relief operation with its special funds, cash pledges into them and the payments that
arrive, purchases paid from the funds whose rules allow the destination (one, on purpose, refused), and each
fund's accounts at the end with the public accounts page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from reliefhub.demo.client import Api, DemoError, gather, problem_text, wait_for
from reliefhub.demo.data import FUND_PRICES, FUNDS, JSON, OPERATION_NAME, REGION, SUPPLIER, FundPlan
from reliefhub.demo.scenario import NeedPlan, Pledge, Scenario, SitePlan
from reliefhub.demo.summary import FundRow, Summary

Funds = dict[str, JSON]  # fund key → the fund as created
NeedIds = dict[tuple[int, int], str]  # (site plan index, its nth need) → need id
PLAN_OF = {f.key: f for f in FUNDS}


def _problem_type(body: JSON) -> str:
    """The slug of a problem's type (`urn:reliefhub:problem:<slug>`)."""
    return str(body.get("type", "")).rsplit(":", 1)[-1]


async def open_funds(api: Api, summary: Summary, coordinator: dict[str, str]) -> Funds:
    """The relief operation in Shanghai and its special funds, public, managed by the hub."""
    now = datetime.now(UTC)
    operation = await api.json(
        "POST",
        "/v1/operations",
        coordinator,
        key="operation",
        json={
            "name": OPERATION_NAME,
            "region_code": REGION,
            "starts_at": (now - timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=90)).isoformat(),
        },
    )
    summary.operation_id = str(operation["id"])

    async def one(plan: FundPlan) -> tuple[str, JSON]:
        body = {
            "name": plan.name,
            "operation_id": operation["id"],
            "managed_by": api.org("hub"),
            "currency": "CNY",
            "restrictions": plan.restrictions,
            "overhead_share": plan.overhead_share,
            "spend_pledged": plan.spend_pledged,
            "public": True,
        }
        return plan.key, await api.json("POST", "/v1/funds", coordinator, key=f"fund-{plan.key}", json=body)

    return dict(await gather([one(p) for p in FUNDS]))


async def post_pledge(api: Api, headers: dict[str, str], key: str, body: JSON, wait_seconds: float) -> JSON:
    """`POST /v1/offers` of a cash pledge into a fund, again while supply has not yet heard of the new fund or
    its operation (a 422 saying it is unknown)."""
    last = ""

    async def pledged() -> JSON | None:
        nonlocal last
        r = await api.call("POST", "/v1/offers", headers, key=key, json=body, allow=(422,))
        if r.status_code == 201 or r.status_code == 200:
            return dict(r.json())
        if _problem_type(r.json()) not in ("unknown-fund", "unknown-operation"):
            raise DemoError(f"POST /v1/offers answered 422: {problem_text(r)}")
        last = problem_text(r)
        return None

    return await wait_for(lambda: f"supply to hear of the new funds (last: {last})", pledged, wait_seconds)


async def record_payments(
    api: Api,
    scenario: Scenario,
    pledges: dict[Pledge, str],
    funds: Funds,
    summary: Summary,
    coordinator: dict[str, str],
    wait_seconds: float,
) -> None:
    """The money that arrived for every pledge but the unpaid ones, recorded by the hub; then wait until
    logistics has booked it into each fund."""
    amounts = {(d.index, n): fen for d in scenario.donors for n, fen in enumerate(d.pledges)}
    received_at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    expected = dict.fromkeys(funds, 0)
    paid = sorted(p for p in pledges if p not in scenario.unpaid)

    async def one(plan: Pledge) -> None:
        offer_id = pledges[plan]
        await api.call(
            "POST",
            f"/v1/offers/{offer_id}/payments",
            coordinator,
            key=f"payment-{offer_id}",
            json={
                "amount": amounts[plan],
                "received_at": received_at,
                "reference": f"ICBC-{api.tag}-{plan[0]}-{plan[1]}",
            },
        )
        summary.payments += 1
        summary.received_fen += amounts[plan]

    await gather([one(p) for p in paid])
    for p in paid:
        expected[scenario.pledge_fund[p]] += amounts[p]
    seen: dict[str, int] = {}

    async def booked() -> bool | None:
        for k, fund in funds.items():
            seen[k] = int((await api.json("GET", f"/v1/funds/{fund['id']}", coordinator))["received"])
        return True if seen == expected else None

    await wait_for(
        lambda: (
            "logistics to book the payments: "
            + ", ".join(f"{k} {seen.get(k)} of {v}" for k, v in expected.items() if seen.get(k) != v)
        ),
        booked,
        wait_seconds,
    )


def spendable(available: int, share: float) -> int:
    """The most a fund holding `available` may pay, its overhead on it included."""
    amount = int(Decimal(available) / (1 + Decimal(str(share))))
    while amount > 0 and amount + _overhead(amount, share) > available:
        amount -= 1
    return amount


def _overhead(amount: int, share: float) -> int:
    return int((Decimal(amount) * Decimal(str(share))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def funding(api: Api, funds: Funds, coordinator: dict[str, str], total: int, keys: tuple[str, ...]) -> list[JSON]:
    """`funding` of a purchase of `total` fen from the funds `keys`: each in turn an equal part as far as it
    holds, the last one the rest."""
    out: list[JSON] = []
    left = total
    for n, key in enumerate(keys):
        fund = await api.json("GET", f"/v1/funds/{funds[key]['id']}", coordinator)
        part = left if n == len(keys) - 1 else min(left, -(-total // len(keys)))
        take = min(part, spendable(int(fund["available"]), PLAN_OF[key].overhead_share))
        if take > 0:
            out.append({"fund_id": fund["id"], "amount": take})
            left -= take
    if left > 0:
        raise DemoError(f"the funds {', '.join(keys)} cannot pay for a purchase of {total} fen ({left} short)")
    return out


def supplier() -> JSON:
    return {"name": SUPPLIER.label, "region_code": SUPPLIER.region_code, "lat": SUPPLIER.lat, "lon": SUPPLIER.lon}


async def buy(
    api: Api, summary: Summary, coordinator: dict[str, str], body: JSON, key: str, wait_seconds: float
) -> JSON:
    """Draft a purchase (again while logistics has not heard of its destination or its money yet), order it and
    receive it; the received purchase."""
    last = ""

    async def drafted() -> JSON | None:
        nonlocal last
        r = await api.call("POST", "/v1/procurements", coordinator, json=body, key=key, allow=(409,))
        if r.status_code == 409:
            if _problem_type(r.json()) == "restriction-violated":
                raise DemoError(f"POST /v1/procurements ({key}) was refused: {problem_text(r)}")
            last = problem_text(r)
            return None
        return dict(r.json())

    draft = await wait_for(lambda: f"logistics to accept the purchase {key} (last: {last})", drafted, wait_seconds)
    summary.procurement_orders += 1
    ordered = await api.json("POST", f"/v1/procurements/{draft['id']}/order", coordinator, key=f"{key}-order")
    summary.procurement_ordered += int(ordered["status"] == "ordered")
    summary.procurement_fen += int(ordered["total"])
    received = await api.json("POST", f"/v1/procurements/{draft['id']}/receive", coordinator, key=f"{key}-recv")
    summary.procurement_received += int(received["status"] == "received")
    return received


def _first(scenario: Scenario, kind: str) -> SitePlan | None:
    return next((s for s in scenario.sites if s.kind == kind), None)


def _priced(need: NeedPlan, budget: int) -> list[JSON]:
    """A quarter of what the need asks for that the funds may buy, scaled down to `budget` fen."""
    lines = [(code, max(1, q // 4), FUND_PRICES[code]) for code, q in need.lines if code in FUND_PRICES]
    cost = sum(q * p for _, q, p in lines)
    scale = min(1.0, budget / cost) if cost else 0.0
    return [
        {"item_code": code, "quantity": int(q * scale), "unit_price": p} for code, q, p in lines if int(q * scale) >= 1
    ]


async def fund_purchases(
    api: Api,
    scenario: Scenario,
    need_ids: NeedIds,
    funds: Funds,
    summary: Summary,
    coordinator: dict[str, str],
    wait_seconds: float,
) -> list[str]:
    """Medical supplies for the first hospital from the medical fund and care supplies for the first nursing
    home from the elderly fund, for their needs; then the medical fund asked to pay for the nursing home, which
    its rules refuse (409 restriction-violated). The bought goods' offer ids."""
    goods: list[str] = []
    wanted = (
        ("medical", "hospital", 0, "医疗救治基金采购：医院防护和医疗物资"),
        ("elderly", "nursing_home", 1, "关爱老人基金采购：养老院护理和生活物资"),
    )
    for key, kind, n, note in wanted:
        site = _first(scenario, kind)
        if site is None:
            continue
        need = site.needs[min(n, len(site.needs) - 1)]
        fund = await api.json("GET", f"/v1/funds/{funds[key]['id']}", coordinator)
        lines = _priced(need, spendable(int(fund["available"]), PLAN_OF[key].overhead_share) // 2)
        if not lines:
            continue
        total = sum(ln["quantity"] * ln["unit_price"] for ln in lines)
        body = {
            "supplier": supplier(),
            "lines": lines,
            "funding": await funding(api, funds, coordinator, total, (key,)),
            "destination": {"need_ids": [need_ids[site.index, site.needs.index(need)]]},
            "note": note,
        }
        received = await buy(api, summary, coordinator, body, f"procurement-{key}", wait_seconds)
        if received.get("goods_offer_id"):
            goods.append(str(received["goods_offer_id"]))
    await _refused(api, scenario, need_ids, funds, summary, coordinator, wait_seconds)
    return goods


async def _refused(
    api: Api,
    scenario: Scenario,
    need_ids: NeedIds,
    funds: Funds,
    summary: Summary,
    coordinator: dict[str, str],
    wait_seconds: float,
) -> None:
    """The medical fund asked to buy a nursing home's (or, without one, a community's) supplies: refused."""
    site = _first(scenario, "nursing_home") or scenario.sites[0]
    need = site.needs[-1]
    code, _ = need.lines[0]
    body = {
        "supplier": supplier(),
        "lines": [{"item_code": code, "quantity": 1, "unit_price": FUND_PRICES.get(code, 100)}],
        "funding": [{"fund_id": funds["medical"]["id"], "amount": FUND_PRICES.get(code, 100)}],
        "destination": {"need_ids": [need_ids[site.index, len(site.needs) - 1]]},
        "note": "医疗救治基金不能用于养老院：应被拒绝",
    }
    last = ""

    async def refused() -> str | None:
        nonlocal last
        r = await api.call("POST", "/v1/procurements", coordinator, json=body, key="procurement-refused", allow=(409,))
        if r.status_code != 409:
            raise DemoError("logistics accepted a purchase that the medical fund's rules exclude")
        last = problem_text(r)
        return last if _problem_type(r.json()) == "restriction-violated" else None

    summary.refusal = await wait_for(lambda: f"the mismatched purchase's refusal (last: {last})", refused, wait_seconds)
    summary.purchases_refused += 1


async def fund_accounts(api: Api, summary: Summary, funds: Funds, coordinator: dict[str, str]) -> None:
    """Each fund's accounts as they end, and the operation's public accounts (no token) listing every fund."""
    for key, created in funds.items():
        f = await api.json("GET", f"/v1/funds/{created['id']}", coordinator)
        summary.funds.append(
            FundRow(
                name=str(f["name"]),
                rules=PLAN_OF[key].rules,
                overhead_share=float(f["overhead_share"]),
                pledged=int(f["pledged"]),
                received=int(f["received"]),
                committed=int(f["committed"]),
                spent=int(f["spent"]),
                overhead=int(f["overhead"]),
                available=int(f["available"]),
            )
        )
    public = await api.json("GET", "/v1/public/accounts", params={"operation_id": summary.operation_id})
    listed = {str(f["id"]) for f in public["funds"]}
    missing = [k for k, f in funds.items() if str(f["id"]) not in listed]
    if missing:
        summary.warnings.append(f"the public accounts do not list the funds {', '.join(missing)}")
    summary.public_accounts_url = f"{summary.base_url}/v1/public/accounts?operation_id={summary.operation_id}"
