"""Schemas of relief operations, special funds and the double-entry ledger's transactions."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.logistics.models import LedgerKind
from shared.restrictions import Restrictions
from shared.vocabulary import OperationStatus, RegionPrefix, Timestamp

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Org = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Share = Annotated[Decimal, Field(ge=0, le=1, max_digits=5, decimal_places=4, description="0 to 1, e.g. 0.05.")]


def _ordered(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at < starts_at:
        raise ValueError("ends_at comes before starts_at")


class OperationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    region_code: RegionPrefix = Field(description="The operation's scope: a region code prefix.")
    starts_at: Timestamp
    ends_at: Timestamp | None = None

    @model_validator(mode="after")
    def _dates(self) -> Self:
        _ordered(self.starts_at, self.ends_at)
        return self


class OperationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    region_code: RegionPrefix | None = None
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    status: OperationStatus | None = Field(None, description="`closed` ends it: it takes no new needs or offers.")


class Operation(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    region_code: str
    starts_at: datetime
    ends_at: datetime | None
    status: OperationStatus
    version: int
    created_at: datetime
    updated_at: datetime


class FundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    operation_id: uuid.UUID | None = None
    managed_by: Org = Field(description="The organisation that manages the fund.")
    currency: Currency = "CNY"
    restrictions: Restrictions = Restrictions()
    overhead_share: Share = Decimal(0)
    spend_pledged: bool = Field(False, description="May spend what pledges promised before the money arrives.")
    public: bool = Field(False, description="Shown in the public accounts.")


class FundUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    operation_id: uuid.UUID | None = None
    managed_by: Org | None = None
    restrictions: Restrictions | None = None
    overhead_share: Share | None = None
    spend_pledged: bool | None = None
    public: bool | None = None


class Fund(BaseModel):
    """A special fund with its figures in fen, each a sum of its ledger postings."""

    id: uuid.UUID
    name: str
    operation_id: uuid.UUID | None
    managed_by: str
    currency: str
    restrictions: Restrictions
    overhead_share: float
    spend_pledged: bool
    public: bool
    pledged: int = Field(description="Pledged into the fund, net of withdrawn pledges.")
    received: int = Field(description="Money received against its pledges.")
    committed: int = Field(description="Of placed orders whose goods have not arrived.")
    spent: int = Field(description="Of orders whose goods arrived.")
    overhead: int = Field(description="Its overhead share of what it paid.")
    refunded: int = Field(description="Of cancelled orders, given back to it.")
    available: int = Field(description="What it may still spend.")
    version: int
    created_at: datetime
    updated_at: datetime


class Posting(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    account: str = Field(description="`<kind>:<id>` of the pledge, fund, purchase, lot or shipment.")
    amount: int = Field(description="Fen; debit positive, credit negative.")
    currency: str
    item_code: str | None
    quantity: int | None = Field(description="Units of the item, debit positive.")


class LedgerTransaction(BaseModel):
    """A ledger transaction with its balanced postings (they sum to zero per currency and per item)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    kind: LedgerKind
    amount: int
    currency: str
    offer_id: uuid.UUID | None
    procurement_id: uuid.UUID | None
    shipment_id: uuid.UUID | None
    region_code: str | None
    item_code: str | None
    quantity: int | None
    memo: str | None
    created_at: datetime
    entries: list[Posting]
