"""The public accounts (公示), read without a token: per public fund what was raised, received, spent, taken as
overhead and is left; goods offered, delivered and received by item category and by province, city and county;
the sites supported; the people served per beneficiary group; and the donors that chose a public name. Only
sums: never a contact, phone number, PIN, street address or the name of a donor that did not opt in."""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import account_schemas as out
from services.logistics.accounts import fund_figures
from services.logistics.accounts_repository import PublicAccountsRepository
from services.logistics.models import Fund
from services.logistics.schemas import LEVEL_DIGITS, Localized
from shared.catalog import get_catalog
from shared.db import utcnow

# The catalog's item categories in words (a category outside these is shown by its code).
CATEGORIES: dict[str, tuple[str, str]] = {
    "food": ("食品", "Food"),
    "water": ("饮用水", "Water"),
    "medicine": ("药品", "Medicine"),
    "medical_consumable": ("医用耗材", "Medical consumables"),
    "medical_device": ("医疗器械", "Medical devices"),
    "ppe": ("防护用品", "Protective equipment"),
    "hygiene": ("卫生用品", "Hygiene"),
    "infant": ("母婴用品", "Infant care"),
    "clothing": ("衣物", "Clothing"),
    "shelter": ("安置用品", "Shelter"),
    "energy": ("能源", "Energy"),
    "service": ("服务", "Services"),
    "other": ("其他", "Other"),
}


def category_name(category: str) -> Localized:
    zh, en = CATEGORIES.get(category, (category, category))
    return Localized(zh=zh, en=en)


def _category(item_code: str) -> str:
    item = get_catalog().get(item_code)
    return item.category if item else "other"


class _Tally:
    def __init__(self) -> None:
        self.by_category: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        self.by_region: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])

    def add(self, item_code: str, region: str | None, figures: tuple[int, int, int]) -> None:
        for into in (self.by_category[_category(item_code)], *self._regions(region)):
            for i, n in enumerate(figures):
                into[i] += n

    def _regions(self, region: str | None) -> list[list[int]]:
        if not region:
            return []
        return [self.by_region[(level, region[:digits])] for level, digits in LEVEL_DIGITS.items()]

    def goods(self) -> out.Goods:
        def figures(f: list[int]) -> dict[str, int]:
            return {"offered": f[0], "delivered": f[1], "received": f[2]}

        return out.Goods(
            by_category=[
                out.GoodsByCategory(category=c, name=category_name(c), **figures(f))
                for c, f in sorted(self.by_category.items())
            ],
            by_region=[
                out.GoodsByRegion(level=level, region_code=code, **figures(f))
                for (level, code), f in sorted(self.by_region.items(), key=lambda kv: (len(kv[0][1]), kv[0][1]))
            ],
        )


async def _goods(repo: PublicAccountsRepository, operation_id: uuid.UUID | None) -> out.Goods:
    tally = _Tally()
    for item, region, units in await repo.goods_offered(operation_id):
        tally.add(item, region, (units, 0, 0))
    for item, region, delivered, received in await repo.goods_at_sites(operation_id):
        tally.add(item, region, (0, delivered, received))
    return tally.goods()


async def fund_accounts(session: AsyncSession, funds: list[Fund]) -> list[out.FundAccount]:
    """Each fund's figures, sums of its postings: `spent` counts placed orders (committed) with those whose goods
    arrived, so that what was received is spent, taken as overhead, or the balance."""
    figures = await fund_figures(session, [f.id for f in funds])
    return [
        out.FundAccount(
            id=f.id,
            name=f.name,
            raised=fig.pledged,
            received=fig.received,
            spent=fig.spent + fig.committed,
            overhead=fig.overhead,
            balance=fig.balance,
            currency=f.currency,
        )
        for f in funds
        if (fig := figures.get(f.id)) is not None
    ]


async def public_accounts(session: AsyncSession, operation_id: uuid.UUID | None) -> out.PublicAccounts:
    repo = PublicAccountsRepository(session)
    return out.PublicAccounts(
        operation_id=operation_id,
        generated_at=utcnow(),
        funds=await fund_accounts(session, await repo.public_funds(operation_id)),
        goods=await _goods(repo, operation_id),
        sites_supported=await repo.sites_supported(operation_id),
        people_served=await repo.people_served(operation_id),
        donors=[out.PublicDonor(name=n, gifts=g) for n, g in await repo.named_donors(operation_id)],
    )
