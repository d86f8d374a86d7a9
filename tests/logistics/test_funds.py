"""Relief operations and special funds through the API: a fund's restrictions add to its pledges', its overhead
share is booked on what it spends, spending draws on money received (unless the fund may spend pledges), every
ledger transaction balances and a fund's figures are the sums of its postings."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import SHANGHAI
from tests.helpers.funds import create_fund, create_operation, fund_body, get_fund, pledge_into, record_payment
from tests.helpers.logistics import draft, procurement_body
from tests.helpers.needs import create_site
from tests.helpers.problems import assert_problem
from tests.helpers.supply import create_donor
from tests.helpers.waiting import eventually

NURSING_HOMES = {"site_kinds": ["nursing_home"]}


def slug(body: dict[str, Any]) -> str:
    return str(body["type"]).rsplit(":", 1)[-1]


async def site(client: httpx.AsyncClient, auth: TokenFactory, kind: str) -> dict[str, Any]:
    return await create_site(client, auth("frontline", org="org-shelter"), kind=kind, name=f"{kind} 上海", **SHANGHAI)


async def order(client: httpx.AsyncClient, auth: TokenFactory, procurement_id: str) -> httpx.Response:
    return await client.post(f"/v1/procurements/{procurement_id}/order", headers=auth("coordinator"))


async def transactions(client: httpx.AsyncClient, auth: TokenFactory, path: str) -> list[dict[str, Any]]:
    """Every transaction of a ledger listing, all pages."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}limit=100" + (f"&cursor={cursor}" if cursor else "")
        r = await client.get(url, headers=auth("coordinator"))
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items


def assert_balanced(tx: dict[str, Any]) -> None:
    money: Counter[str] = Counter()
    items: Counter[str] = Counter()
    for e in tx["entries"]:
        money[e["currency"]] += e["amount"]
        if e["item_code"] is not None:
            items[e["item_code"]] += e["quantity"]
    assert all(v == 0 for v in money.values()), tx
    assert all(v == 0 for v in items.values()), tx
    assert tx["entries"], tx


async def test_operations_are_created_listed_and_closed_with_if_match(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    coordinator = auth("coordinator")
    op = await create_operation(client, auth)
    assert op["status"] == "active" and op["region_code"] == "31"
    got = await client.get(f"/v1/operations/{op['id']}", headers=coordinator)
    assert got.status_code == 200 and got.json()["name"] == op["name"]
    listed = await client.get("/v1/operations?region_code=31", headers=coordinator)
    assert op["id"] in [o["id"] for o in listed.json()["items"]]
    url = f"/v1/operations/{op['id']}"
    assert_problem(await client.patch(url, headers=coordinator, json={"status": "closed"}), 428)
    stale = {**coordinator, "If-Match": '"7"'}
    assert_problem(await client.patch(url, headers=stale, json={"status": "closed"}), 412)
    closed = await client.patch(
        url, headers={**coordinator, "If-Match": got.headers["etag"]}, json={"status": "closed"}
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed" and closed.json()["version"] == 2
    assert_problem(await client.post("/v1/operations", headers=auth("donor"), json={"name": "x"}), 403)
    backwards = {
        "name": "x",
        "region_code": "31",
        "starts_at": "2022-04-01T00:00:00Z",
        "ends_at": "2022-03-01T00:00:00Z",
    }
    assert_problem(await client.post("/v1/operations", headers=coordinator, json=backwards), 422)


async def test_a_fund_is_patched_with_if_match_and_validates_its_share(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    coordinator = auth("coordinator")
    op = await create_operation(client, auth)
    fund = await create_fund(client, auth, operation_id=op["id"], restrictions=NURSING_HOMES, public=True)
    assert fund["restrictions"]["site_kinds"] == ["nursing_home"]
    assert (fund["pledged"], fund["received"], fund["available"]) == (0, 0, 0)
    r = await client.get(f"/v1/funds/{fund['id']}", headers=coordinator)
    patched = await client.patch(
        f"/v1/funds/{fund['id']}", headers={**coordinator, "If-Match": r.headers["etag"]}, json={"spend_pledged": True}
    )
    assert patched.status_code == 200 and patched.json()["spend_pledged"] is True
    assert_problem(
        await client.post(
            "/v1/funds", headers=coordinator, json={"name": "x", "managed_by": "hub", "overhead_share": 1.5}
        ),
        422,
    )
    unknown = {"name": "x", "managed_by": "hub", "operation_id": "00000000-0000-4000-8000-000000000000"}
    assert (
        slug(assert_problem(await client.post("/v1/funds", headers=coordinator, json=unknown), 422))
        == "unknown-operation"
    )
    listed = await client.get(f"/v1/funds?operation_id={op['id']}", headers=coordinator)
    assert [f["id"] for f in listed.json()["items"]] == [fund["id"]]


async def test_a_nursing_home_fund_pays_for_a_nursing_home_and_not_for_a_hospital(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    fund = await create_fund(client, auth, restrictions=NURSING_HOMES, overhead_share=0)
    pledge = await pledge_into(client, auth, fund["id"], 100_000)
    await record_payment(client, auth, pledge["id"], 100_000)
    hospital, home = await site(client, auth, "hospital"), await site(client, auth, "nursing_home")
    rule = "site_kinds: a hospital site is not one of nursing_home"

    # The pledge has no rules of its own: its fund's apply to it.
    refused = await draft(client, auth, procurement_body(pledge["id"], destination={"site_id": hospital["id"]}))
    problem = assert_problem(refused, 409)
    assert slug(problem) == "restriction-violated"
    assert problem["errors"] == [{"loc": ["body", "funding", 0, "offer_id"], "msg": f"fund {fund['id']}: {rule}"}]
    by_fund = procurement_body(pledge["id"], destination={"site_id": hospital["id"]})
    by_fund["funding"] = [{"fund_id": fund["id"], "amount": 50_000}]
    problem = assert_problem(await draft(client, auth, by_fund), 409)
    assert problem["errors"] == [{"loc": ["body", "funding", 0, "fund_id"], "msg": f"fund {fund['id']}: {rule}"}]

    ok = await draft(client, auth, {**by_fund, "destination": {"site_id": home["id"]}})
    assert ok.status_code == 201, ok.text
    assert ok.json()["funding"][0]["fund_id"] == fund["id"]
    assert (await order(client, auth, ok.json()["id"])).status_code == 200
    figures = await get_fund(client, auth, fund["id"])
    assert (figures["received"], figures["committed"], figures["overhead"]) == (100_000, 50_000, 0)
    assert figures["available"] == 50_000


async def test_both_the_pledge_s_and_the_fund_s_restrictions_apply(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    fund = await create_fund(client, auth, restrictions=NURSING_HOMES, spend_pledged=True)
    pledge = await pledge_into(client, auth, fund["id"], 100_000, restrictions={"region_codes": ["4201"]})
    home = await site(client, auth, "hospital")
    problem = assert_problem(
        await draft(client, auth, procurement_body(pledge["id"], destination={"site_id": home["id"]})), 409
    )
    msgs = [e["msg"] for e in problem["errors"]]
    assert len(msgs) == 2
    assert msgs[0].startswith(f"pledge {pledge['id']}: region_codes") and msgs[1].startswith(
        f"fund {fund['id']}: site_kinds"
    )


async def test_spending_draws_on_money_received_and_books_the_fund_s_overhead(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    fund = await create_fund(client, auth, overhead_share=0.05)
    pledge = await pledge_into(client, auth, fund["id"], 100_000)
    body = procurement_body(pledge["id"], quantity=10, unit_price=4_000)  # 40 000 fen, 2 000 overhead

    problem = assert_problem(await client.post("/v1/procurements", headers=auth("coordinator"), json=body), 409)
    assert slug(problem) == "pledge-insufficient"
    assert "0 CNY received and unspent; 42000 were asked for" in problem["detail"]

    await record_payment(client, auth, pledge["id"], 30_000)
    assert (
        slug(assert_problem(await client.post("/v1/procurements", headers=auth("coordinator"), json=body), 409))
        == "pledge-insufficient"
    )
    await record_payment(client, auth, pledge["id"], 20_000)
    drafted = await client.post("/v1/procurements", headers=auth("coordinator"), json=body)
    assert drafted.status_code == 201, drafted.text
    ordered = await order(client, auth, drafted.json()["id"])
    assert ordered.status_code == 200, ordered.text
    assert ordered.json()["funding"][0]["overhead"] == 2_000

    figures = await get_fund(client, auth, fund["id"])
    assert figures["pledged"] == 100_000 and figures["received"] == 50_000
    assert (figures["committed"], figures["overhead"], figures["available"]) == (40_000, 2_000, 8_000)
    # A second purchase would take more than is left of what arrived.
    again = await client.post(
        "/v1/procurements", headers=auth("coordinator"), json=procurement_body(pledge["id"], quantity=2)
    )
    assert slug(assert_problem(again, 409)) == "pledge-insufficient"

    # Cancelled, the order gives the amount and its overhead back.
    cancel = await client.post(f"/v1/procurements/{drafted.json()['id']}/cancel", headers=auth("coordinator"))
    assert cancel.status_code == 200, cancel.text
    figures = await get_fund(client, auth, fund["id"])
    assert (figures["committed"], figures["overhead"], figures["refunded"], figures["available"]) == (
        0,
        0,
        40_000,
        50_000,
    )


async def test_a_zero_overhead_fund_books_no_overhead(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    fund = await create_fund(client, auth, overhead_share=0)
    pledge = await pledge_into(client, auth, fund["id"], 60_000)
    await record_payment(client, auth, pledge["id"], 60_000)
    drafted = await client.post("/v1/procurements", headers=auth("coordinator"), json=procurement_body(pledge["id"]))
    assert drafted.status_code == 201, drafted.text
    assert (await order(client, auth, drafted.json()["id"])).status_code == 200
    spent = await transactions(client, auth, f"/v1/ledger?kind=spent&procurement_id={drafted.json()['id']}")
    assert [e["account"].split(":")[0] for e in spent[0]["entries"]] == ["committed purchases", "fund cash"]
    assert (await get_fund(client, auth, fund["id"]))["overhead"] == 0


async def test_a_fund_that_may_spend_pledges_pays_before_the_money_arrives(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    fund = await create_fund(client, auth, spend_pledged=True, overhead_share=0)
    pledge = await pledge_into(client, auth, fund["id"], 100_000)
    drafted = await client.post("/v1/procurements", headers=auth("coordinator"), json=procurement_body(pledge["id"]))
    assert drafted.status_code == 201, drafted.text
    assert (await order(client, auth, drafted.json()["id"])).status_code == 200
    figures = await get_fund(client, auth, fund["id"])
    assert (figures["received"], figures["committed"], figures["available"]) == (0, 50_000, 50_000)
    # Never beyond what was pledged.
    more = await client.post(
        "/v1/procurements", headers=auth("coordinator"), json=procurement_body(pledge["id"], quantity=11)
    )
    assert slug(assert_problem(more, 409)) == "pledge-insufficient"


async def test_every_transaction_balances_and_fund_figures_are_sums_of_postings(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    fund = await create_fund(client, auth, overhead_share=0.1)
    pledge = await pledge_into(client, auth, fund["id"], 80_000)
    await record_payment(client, auth, pledge["id"], 80_000, reference="bank-0402-001")
    drafted = await client.post(
        "/v1/procurements", headers=coordinator, json=procurement_body(pledge["id"], quantity=6)
    )
    assert drafted.status_code == 201, drafted.text
    pid = drafted.json()["id"]
    assert (await order(client, auth, pid)).status_code == 200
    received = await client.post(f"/v1/procurements/{pid}/receive", headers=coordinator)
    assert received.status_code == 200, received.text

    async def money_and_goods_booked() -> list[dict[str, Any]] | None:
        """The purchase's money moved to spent on receipt, and its goods in stock once supply registered them."""
        found = await transactions(client, auth, f"/v1/ledger?kind=goods_received&procurement_id={pid}")
        return found if len(found) >= 2 else None

    await eventually(money_and_goods_booked)
    for tx in await transactions(client, auth, "/v1/ledger"):
        assert_balanced(tx)

    paid = await transactions(client, auth, f"/v1/ledger?kind=payment_received&offer_id={pledge['id']}")
    assert [t["memo"] for t in paid] == ["bank-0402-001"]
    ledger = await transactions(client, auth, f"/v1/funds/{fund['id']}/ledger")
    sums: Counter[str] = Counter()
    for tx in ledger:
        assert_balanced(tx)
        for e in tx["entries"]:
            sums[e["account"].split(":")[0]] += e["amount"]
    figures = await get_fund(client, auth, fund["id"])
    assert figures["pledged"] == -sums["donations"] == 80_000
    assert figures["spent"] == sums["purchases"] == 30_000
    assert figures["committed"] == sums["committed purchases"] == 0
    assert figures["overhead"] == sums["overhead"] == 3_000
    assert figures["available"] == sums["fund cash"] == 80_000 - 30_000 - 3_000
    assert figures["received"] == 80_000


async def test_supply_learns_of_operations_and_funds_from_their_events(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    """A pledge may name the operation and the fund once supply has heard of them; a closed operation takes none."""
    coordinator = auth("coordinator")
    op = await create_operation(client, auth)
    fund = await create_fund(client, auth, operation_id=op["id"])
    pledge = await pledge_into(client, auth, fund["id"], 10_000)
    assert pledge["fund_id"] == fund["id"] and pledge["operation_id"] == op["id"]
    r = await client.get(f"/v1/operations/{op['id']}", headers=coordinator)
    closing = {**coordinator, "If-Match": r.headers["etag"]}
    assert (
        await client.patch(f"/v1/operations/{op['id']}", headers=closing, json={"status": "closed"})
    ).status_code == 200
    company = auth("donor", org="company-late")
    donor = await create_donor(client, company)
    body = {"donor_id": donor["id"], "kind": "cash", "amount": 5_000, "currency": "CNY", "operation_id": op["id"]}

    async def refused() -> dict[str, Any] | None:
        r = await client.post("/v1/offers", headers=company, json=body)
        return r.json() if r.status_code == 422 else None

    assert slug(await eventually(refused)) == "operation-closed"


async def test_creating_a_fund_twice_with_one_idempotency_key_makes_one(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    headers = {**auth("coordinator"), "Idempotency-Key": "fund-2022-shanghai"}
    first = await client.post("/v1/funds", headers=headers, json=fund_body(name="长者关怀基金"))
    again = await client.post("/v1/funds", headers=headers, json=fund_body(name="长者关怀基金"))
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    listed = await client.get("/v1/funds?limit=100", headers=auth("coordinator"))
    assert [f["name"] for f in listed.json()["items"]].count("长者关怀基金") == 1
