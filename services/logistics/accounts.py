"""The accounts of the double-entry ledger and the figures read off them.

Every ledger transaction (`ledger_entry`) carries balanced postings between named accounts — `<kind>:<id>` of
the pledge, fund, purchase, lot or shipment the money or goods belong to — summing to zero per currency and
per item. Debits are positive. The kinds:

- `pledges receivable:<offer>` — what a cash pledge promised and has not paid yet;
- `donations:<offer>` — the gift's side (a pledge, or goods given in kind);
- `fund cash:<fund>` — money received into a fund; `pledge cash:<offer>` for a pledge outside any fund;
- `committed purchases:<procurement>` — money of a placed order not yet received;
- `purchases:<procurement>` — money of an order whose goods arrived (spent);
- `overhead:<fund>` — the fund's overhead share of what it spent;
- `goods in stock:<lot>`, `goods delivered:<shipment>`, `goods written off:<shipment>`,
  `goods purchased:<procurement>` — goods at catalog value, with their item and quantity.

A fund's figures (and a pledge's) are sums of these postings, never stored counters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics.funds_repository import AccountRepository, FundRepository

RECEIVABLE = "pledges receivable"
DONATIONS = "donations"
FUND_CASH = "fund cash"
PLEDGE_CASH = "pledge cash"
COMMITTED = "committed purchases"
PURCHASES = "purchases"
OVERHEAD = "overhead"
STOCK = "goods in stock"
DELIVERED = "goods delivered"
WRITTEN_OFF = "goods written off"
PURCHASED = "goods purchased"
CASH = (FUND_CASH, PLEDGE_CASH)


def account(kind: str, owner: object) -> str:
    return f"{kind}:{owner}"


def cash_account(offer_id: uuid.UUID | None, fund_id: uuid.UUID | None) -> str:
    """Where a pledge's money sits once received: its fund's cash, else its own."""
    return account(FUND_CASH, fund_id) if fund_id is not None else account(PLEDGE_CASH, offer_id)


def posting(
    name: str,
    amount: int,
    currency: str,
    *,
    offer_id: uuid.UUID | None = None,
    fund_id: uuid.UUID | None = None,
    item_code: str | None = None,
    quantity: int | None = None,
) -> dict[str, Any]:
    return {
        "account": name,
        "amount": amount,
        "currency": currency,
        "item_code": item_code,
        "quantity": quantity,
        "offer_id": offer_id,
        "fund_id": fund_id,
    }


def transfer(debit: str, credit: str, amount: int, currency: str, **tags: Any) -> list[dict[str, Any]]:
    """`amount` from `credit` to `debit`: two postings that sum to zero (and to zero per item when `tags` name
    an item_code and quantity)."""
    quantity = tags.pop("quantity", None)
    return [
        posting(debit, amount, currency, quantity=quantity, **tags),
        posting(credit, -amount, currency, quantity=-quantity if quantity is not None else None, **tags),
    ]


@dataclass(frozen=True)
class FundFigures:
    """A fund's (or a pledge's) money, in fen of its currency, as sums of its ledger postings.

    `pledged` (net of withdrawn pledges), `received` (payments in), `committed` (placed orders whose goods have not
    arrived), `spent` (orders whose goods arrived), `overhead` (its overhead share of those), `refunded` (cancelled
    orders given back), `available` (what it may still spend: the cash it holds, and what pledges still owe when
    it may spend pledged money)."""

    pledged: int = 0
    received: int = 0
    committed: int = 0
    spent: int = 0
    overhead: int = 0
    refunded: int = 0
    available: int = 0

    @property
    def balance(self) -> int:
        """The cash held: received, less what is committed, spent and taken as overhead."""
        return self.received - self.committed - self.spent - self.overhead


def figures_of(sums: dict[tuple[str, str], int], *, spend_pledged: bool = False) -> FundFigures:
    """Figures from the sums of postings by (account kind, transaction kind)."""

    def total(account_kinds: tuple[str, ...], entry_kind: str | None = None) -> int:
        return sum(v for (a, k), v in sums.items() if a in account_kinds and (entry_kind is None or k == entry_kind))

    cash = total(CASH)
    receivable = total((RECEIVABLE,))
    return FundFigures(
        pledged=-total((DONATIONS,)),
        received=total(CASH, "payment_received"),
        committed=total((COMMITTED,)),
        spent=total((PURCHASES,)),
        overhead=total((OVERHEAD,)),
        refunded=-total((COMMITTED,), "refunded"),
        available=cash + (receivable if spend_pledged else 0),
    )


async def fund_figures(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, FundFigures]:
    """Each known fund's figures (funds not found are left out); a fund with no postings has all zeros."""
    funds = await FundRepository(session).many(ids)
    sums = await AccountRepository(session).by_fund(list(funds))
    return {f: figures_of(sums.get(f, {}), spend_pledged=fund.spend_pledged) for f, fund in funds.items()}


async def pledge_figures(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, FundFigures]:
    """Each pledge's figures from its own postings (what it received, committed, spent…); `available` is the cash
    it holds."""
    sums = await AccountRepository(session).by_offer(ids)
    return {o: figures_of(s) for o, s in sums.items()}
