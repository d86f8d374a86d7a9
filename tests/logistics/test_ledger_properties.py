"""Property: whatever sequence of pledges (into a fund or not), payments, purchases (ordered, received or
cancelled), withdrawn pledges and deliveries the API is asked for, the books stay sound. After every step, read
through the API: every ledger transaction balances per currency and per item; no fund and no pledge holds less
than nothing (cash where spending draws on money received, cash and what is still owed where a fund may spend
pledges); what is committed, spent and taken as overhead never exceeds what was received (or, for a fund that
may spend pledges, what was pledged; a pledge outside any fund spends only what it received); each fen spent
names the one pledge it came from, and each unit delivered the one gift it belongs to, never beyond what that
gift held."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.funds import create_fund, get_fund, pledge_into, record_payment
from tests.helpers.logistics import advance, full_receipt, procurement_body
from tests.helpers.needs import create_need, create_site
from tests.helpers.waiting import eventually

# Each example drives the services through HTTP with their workers running: few, short and unshrunk.
PROPERTY = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
UNIT_PRICE = 1_000  # fen per unit of rice bought

MONEY_KINDS = ("pledges receivable", "fund cash", "pledge cash", "committed purchases", "purchases", "overhead")

Step = tuple[Any, ...]
# Funds (may it spend pledges, its overhead share) and pledges (which fund, or none: index 3; fen) to begin with.
funds_ = st.lists(st.tuples(st.booleans(), st.sampled_from([0, 0.05, 0.1])), min_size=1, max_size=2)
pledges_ = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6).map(lambda k: k * 5_000)), min_size=2, max_size=3)
index = st.integers(0, 5)
# Then what happens to them, money and purchases more often than the rest.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), index, st.sampled_from([0.3, 0.5, 1.0])),
        st.tuples(st.just("pay"), index, st.sampled_from([0.5, 1.0])),
        st.tuples(st.just("buy"), st.lists(index, min_size=1, max_size=2), st.integers(1, 25), st.booleans()),
        st.tuples(st.just("buy"), st.lists(index, min_size=1, max_size=2), st.integers(1, 10), st.just(True)),
        st.tuples(st.just("order"), index),
        st.tuples(st.just("receive"), index),
        st.tuples(st.just("cancel"), index),
        st.tuples(st.just("pledge"), st.integers(0, 3), st.integers(1, 6).map(lambda k: k * 5_000)),
        st.tuples(st.just("withdraw"), index),
        st.tuples(st.just("deliver"), index),
    ),
    min_size=5,
    max_size=9,
)


@dataclass
class Model:
    """What the test asked for, to name the things its steps act on."""

    funds: list[dict[str, Any]] = field(default_factory=list)
    pledges: list[dict[str, Any]] = field(default_factory=list)  # the offer, with "paid" and "withdrawn" added
    procurements: list[dict[str, Any]] = field(default_factory=list)
    site: dict[str, Any] | None = None

    def pick(self, things: list[dict[str, Any]], i: int) -> dict[str, Any] | None:
        return things[i % len(things)] if things else None


async def ledger(client: httpx.AsyncClient, coordinator: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        url = f"/v1/ledger?limit=100{query}" + (f"&cursor={cursor}" if cursor else "")
        r = await client.get(url, headers=coordinator)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items


def not_a_server_error(r: httpx.Response) -> httpx.Response:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return r


async def step_pledge(client: httpx.AsyncClient, auth: TokenFactory, m: Model, i: int, amount: int) -> None:
    fund = m.pick(m.funds, i) if i < 3 else None  # one draw in four: a pledge outside any fund
    offer = await pledge_into(client, auth, fund["id"] if fund else None, amount)
    m.pledges.append({**offer, "paid": 0, "withdrawn": False})


async def step_pay(client: httpx.AsyncClient, auth: TokenFactory, m: Model, i: int, share: float) -> None:
    pledge = m.pick([p for p in m.pledges if not p["withdrawn"] and p["paid"] < p["amount"]], i)
    if pledge is None:
        return
    amount = max(1, int((pledge["amount"] - pledge["paid"]) * share))
    await record_payment(client, auth, pledge["id"], amount)
    pledge["paid"] += amount


async def step_buy(client: httpx.AsyncClient, auth: TokenFactory, m: Model, picks: list[int], quantity: int) -> None:
    """Draft a purchase paid by one pledge or split between two; a 409 when they cannot pay is fine."""
    sources = list({p["id"]: p for p in (m.pick(m.pledges, i) for i in picks) if p}.values())
    if not sources:
        return
    total = quantity * UNIT_PRICE
    body = procurement_body(sources[0]["id"], quantity=quantity, unit_price=UNIT_PRICE)
    shares = [total // len(sources) + (total % len(sources) if n == 0 else 0) for n in range(len(sources))]
    body["funding"] = [{"offer_id": p["id"], "amount": a} for p, a in zip(sources, shares, strict=True)]
    r = not_a_server_error(await client.post("/v1/procurements", headers=auth("coordinator"), json=body))
    if r.status_code == 201:
        m.procurements.append({**r.json(), "delivered": False})
    else:
        assert r.status_code in (409, 422), r.text


async def step_act(client: httpx.AsyncClient, auth: TokenFactory, m: Model, action: str, i: int) -> None:
    """Order, receive or cancel a purchase: done (200) or refused as the order's state or money allows (409)."""
    p = m.pick(m.procurements, i)
    if p is None:
        return
    r = not_a_server_error(await client.post(f"/v1/procurements/{p['id']}/{action}", headers=auth("coordinator")))
    allowed = {"order": ("draft",), "receive": ("ordered",), "cancel": ("draft", "ordered")}[action]
    if p["status"] in allowed and action != "order":
        assert r.status_code == 200, r.text
    if r.status_code == 200:
        p.update(r.json())
    else:
        assert r.status_code == 409, r.text


async def step_withdraw(client: httpx.AsyncClient, auth: TokenFactory, m: Model, i: int) -> None:
    pledge = m.pick([p for p in m.pledges if not p["withdrawn"]], i)
    if pledge is None:
        return
    r = await client.post(f"/v1/offers/{pledge['id']}/withdraw", headers=auth("donor", org=pledge["org"]), json={})
    assert r.status_code == 200, r.text
    pledge["withdrawn"] = True
    coordinator = auth("coordinator")

    async def booked() -> bool | None:
        return bool(await ledger(client, coordinator, f"&kind=pledge_withdrawn&offer_id={pledge['id']}")) or None

    await eventually(booked)


async def step_deliver(client: httpx.AsyncClient, auth: TokenFactory, m: Model, i: int) -> None:
    """A site asks for what a received purchase bought; every proposal is accepted, shipped and received whole."""
    p = m.pick([p for p in m.procurements if p["status"] == "received" and not p["delivered"]], i)
    if p is None:
        return
    p["delivered"] = True
    coordinator, recipient = auth("coordinator"), auth("frontline", org="org-shelter")
    carrier = auth("logistics", org="org-carrier")
    if m.site is None:
        m.site = await create_site(client, recipient, name="川沙安置点", kind="shelter", region_code="310115")
    quantity = p["lines"][0]["quantity"]
    need = await create_need(client, recipient, m.site["id"], {"item_code": RICE, "quantity": quantity})

    async def proposed() -> list[dict[str, Any]] | None:
        r = await client.get(f"/v1/proposals?need_id={need['id']}&status=proposed", headers=coordinator)
        return list(r.json()["items"]) or None

    for proposal in await eventually(proposed):
        accepted = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator)
        assert accepted.status_code == 200, accepted.text

    async def planned() -> list[dict[str, Any]] | None:
        return (
            list((await client.get(f"/v1/shipments?need_id={need['id']}", headers=recipient)).json()["items"]) or None
        )

    for shipment in await eventually(planned):
        await advance(client, carrier, shipment["id"], "picked_up", "delivered")
        s = (await client.get(f"/v1/shipments/{shipment['id']}", headers=recipient)).json()
        receipt = full_receipt(s, str(s["handover_pin"]))
        r = await client.post(f"/v1/shipments/{shipment['id']}/receipt", headers=recipient, json=receipt)
        assert r.status_code == 200, r.text
        booked = await ledger(client, coordinator, f"&kind=in_kind_delivered&shipment_id={shipment['id']}")
        assert sum(tx["quantity"] for tx in booked) == sum(line["quantity"] for line in s["lines"]), booked


async def run(client: httpx.AsyncClient, auth: TokenFactory, m: Model, step: Step) -> None:
    match step:
        case ("pledge", i, amount):
            await step_pledge(client, auth, m, i, amount)
        case ("pay", i, share):
            await step_pay(client, auth, m, i, share)
        case ("buy", picks, quantity, place):
            await step_buy(client, auth, m, picks, quantity)
            if place and m.procurements and m.procurements[-1]["status"] == "draft":
                await step_act(client, auth, m, "order", len(m.procurements) - 1)
        case ("order" | "receive" | "cancel" as action, i):
            await step_act(client, auth, m, action, i)
        case ("withdraw", i):
            await step_withdraw(client, auth, m, i)
        case ("deliver", i):
            await step_deliver(client, auth, m, i)


def kind_of(account: str) -> str:
    return account.split(":", 1)[0]


def assert_balanced(txs: list[dict[str, Any]]) -> None:
    for tx in txs:
        money: Counter[str] = Counter()
        units: Counter[str] = Counter()
        for e in tx["entries"]:
            money[e["currency"]] += e["amount"]
            if e["item_code"] is not None:
                units[e["item_code"]] += e["quantity"]
        assert tx["entries"] and not +money and not -money and not +units and not -units, tx


def assert_funds_sound(fund: dict[str, Any]) -> None:
    used = fund["committed"] + fund["spent"] + fund["overhead"]
    assert fund["available"] >= 0, fund
    for figure in ("pledged", "received", "committed", "spent", "overhead", "refunded"):
        assert fund[figure] >= 0, (figure, fund)
    if fund["spend_pledged"]:
        assert used <= fund["pledged"] + max(0, fund["received"] - fund["pledged"]), fund
    else:
        assert fund["spent"] + fund["overhead"] <= used <= fund["received"], fund
        assert fund["available"] == fund["received"] - used, fund


def pledge_books(txs: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Per pledge: the sums of its transactions' postings by kind of account."""
    books: dict[str, Counter[str]] = defaultdict(Counter)
    for tx in txs:
        if tx["offer_id"] is None:
            continue
        for e in tx["entries"]:
            if kind_of(e["account"]) in MONEY_KINDS:
                books[tx["offer_id"]][kind_of(e["account"])] += e["amount"]
    return books


def assert_pledge_sound(pledge: dict[str, Any], books: Counter[str], fund: dict[str, Any] | None) -> None:
    owed, cash = books["pledges receivable"], books["fund cash"] + books["pledge cash"]
    used = books["committed purchases"] + books["purchases"] + books["overhead"]
    assert owed >= 0, (pledge["id"], pledge["paid"], pledge["withdrawn"], books)
    assert books["committed purchases"] >= 0 and books["purchases"] >= 0 and books["overhead"] >= 0, books
    assert used <= pledge["amount"] + max(0, pledge["paid"] - pledge["amount"]), (pledge["id"], books)
    if fund is None or not fund["spend_pledged"]:  # outside any fund too: only money received is spent
        assert cash >= 0 and used <= pledge["paid"], (pledge["id"], books)
    else:  # spent as pledged: never beyond what it holds and still owes
        assert cash + owed >= 0, (pledge["id"], books)


def assert_traceable(txs: list[dict[str, Any]], m: Model) -> None:
    """Each fen spent names one pledge of the test; each unit delivered one gift, within what it held."""
    bought = {p["id"]: p for p in m.procurements}
    paid: Counter[str] = Counter()  # per purchase: spent less refunded
    for tx in txs:
        p = bought.get(tx["procurement_id"])
        if p is None or tx["kind"] not in ("spent", "refunded"):
            continue
        assert tx["offer_id"] in {f["offer_id"] for f in p["funding"]}, tx
        paid[p["id"]] += tx["amount"] if tx["kind"] == "spent" else -tx["amount"]
    for p in bought.values():
        assert paid[p["id"]] == (p["total"] if p["status"] in ("ordered", "received") else 0), p
    offered: Counter[str] = Counter()
    delivered: Counter[str] = Counter()
    for tx in txs:
        if tx["kind"] == "goods_received" and tx["memo"] == "in stock":
            offered[tx["offer_id"]] += sum(e["quantity"] for e in tx["entries"] if (e["quantity"] or 0) > 0)
        if tx["kind"] in ("in_kind_delivered", "written_off"):
            assert tx["offer_id"] is not None and tx["quantity"] > 0, tx
            delivered[tx["offer_id"]] += tx["quantity"]
    for offer_id, units in delivered.items():
        assert units <= offered[offer_id], (offer_id, units, offered[offer_id])


async def assert_books_sound(client: httpx.AsyncClient, auth: TokenFactory, m: Model) -> None:
    coordinator = auth("coordinator")
    txs = await ledger(client, coordinator)
    assert_balanced(txs)
    funds = {f["id"]: await get_fund(client, auth, f["id"]) for f in m.funds}
    for fund in funds.values():
        assert_funds_sound(fund)
    books = pledge_books(txs)
    for pledge in m.pledges:
        assert_pledge_sound(pledge, books[pledge["id"]], funds.get(pledge.get("fund_id") or ""))
    assert_traceable(txs, m)


# Every kind of step at least once: paid, bought, received and delivered; split between a pledge of a fund that may
# spend pledges and one outside any fund (half paid: it spends only what it received), then cancelled; a withdrawn
# pledge.
EVERY_STEP = {
    "funds": [(False, 0.05), (True, 0)],
    "pledges": [(0, 30_000), (1, 20_000), (3, 10_000)],
    "plan": [
        ("pay", 0, 1.0),
        ("pay", 1, 0.5),
        ("buy", [0], 10, True),
        ("receive", 0),
        ("deliver", 0),
        ("buy", [1, 2], 5, True),
        ("cancel", 1),
        ("withdraw", 1),
    ],
}


@PROPERTY
@given(funds=funds_, pledges=pledges_, plan=steps)
@example(**EVERY_STEP)
async def test_the_books_stay_sound_whatever_is_pledged_paid_bought_cancelled_and_delivered(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    workers: None,
    funds: list[tuple[bool, float]],
    pledges: list[tuple[int, int]],
    plan: list[Step],
) -> None:
    m = Model()
    for spend_pledged, share in funds:
        m.funds.append(await create_fund(client, auth, spend_pledged=spend_pledged, overhead_share=share))
    for i, amount in pledges:
        await step_pledge(client, auth, m, i, amount)
    for step in plan:
        await run(client, auth, m, step)
        await assert_books_sound(client, auth, m)


# --- what the property found, pinned --------------------------------------------------------------------------


async def test_a_withdrawn_pledge_writes_off_only_what_it_still_owes(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    """Withdrawn after 3 000 of its 10 000 arrived, a pledge no longer owes 7 000; what arrived stays in the fund.
    (The whole promise less what purchases took used to be written off, leaving it owing -3 000.)"""
    m = Model()
    m.funds.append(await create_fund(client, auth, overhead_share=0))
    await step_pledge(client, auth, m, 0, 10_000)
    await record_payment(client, auth, m.pledges[0]["id"], 3_000)
    m.pledges[0]["paid"] = 3_000
    await step_withdraw(client, auth, m, 0)
    withdrawn = await ledger(client, auth("coordinator"), f"&kind=pledge_withdrawn&offer_id={m.pledges[0]['id']}")
    assert [tx["amount"] for tx in withdrawn] == [-7_000]
    fund = await get_fund(client, auth, m.funds[0]["id"])
    assert (fund["pledged"], fund["received"], fund["available"]) == (3_000, 3_000, 3_000)
    await assert_books_sound(client, auth, m)


async def test_a_pledge_in_a_fund_that_spends_pledges_never_pays_beyond_its_promise_with_overhead(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    """With a 10 % overhead, a 10 000 pledge that paid 9 000 (and 900 overhead) has 100 left, not 1 000 — even when
    the fund's other pledges hold plenty. (Only what purchases took, without the overhead, used to count.)"""
    m = Model()
    m.funds.append(await create_fund(client, auth, spend_pledged=True, overhead_share=0.1))
    await step_pledge(client, auth, m, 0, 10_000)
    await step_pledge(client, auth, m, 0, 50_000)
    await step_buy(client, auth, m, [0], 9)
    await step_act(client, auth, m, "order", 0)
    assert m.procurements[0]["status"] == "ordered"
    body = procurement_body(m.pledges[0]["id"], quantity=9, unit_price=100)  # 900 and 90 overhead
    r = await client.post("/v1/procurements", headers=auth("coordinator"), json=body)
    problem = r.json()
    assert r.status_code == 409 and problem["type"].endswith("pledge-insufficient"), r.text
    assert problem["available"] == 100 and problem["offer_id"] == m.pledges[0]["id"]
    await assert_books_sound(client, auth, m)
