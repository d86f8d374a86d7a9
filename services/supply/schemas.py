"""Schemas of the supply service: donors, offers, lots, verification and reservations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.restrictions import Restrictions
from shared.tabular import ImportReport
from shared.vocabulary import (
    AVAILABLE_LOT_VERIFICATIONS,
    ItemCode,
    LotVerification,
    OfferStatus,
    Quantity,
    RegionCode,
    Timestamp,
    Verdict,
)


class DonorKind(StrEnum):
    company = "company"
    foundation = "foundation"
    individual = "individual"
    group = "group"
    government = "government"


class OfferKind(StrEnum):
    in_kind = "in_kind"
    cash = "cash"


class Condition(StrEnum):
    new = "new"
    good = "good"
    fair = "fair"


class CustomsOutcome(StrEnum):
    cleared = "cleared"
    refused = "refused"


CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
HsCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6,10}$")]


class DonorContact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(max_length=100)] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 \-]{4,30}$")] | None = None
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=200)] | None = None


class DonorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    kind: DonorKind
    contact: DonorContact | None = None
    public_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = Field(
        None, description="The name public accounts may show; without it the donor is never named publicly."
    )
    org: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None, description="Owning organisation; only coordinators may set another than their own."
    )


class Donor(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    org: str
    name: str
    kind: DonorKind
    public_name: str | None = None
    contact: DonorContact | None = Field(None, description="Shown to the donor's organisation and coordinators.")
    version: int
    created_at: datetime


class LotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_code: ItemCode
    quantity: Quantity
    unit: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    region_code: RegionCode | None = None
    available_from: Timestamp | None = None
    expires_at: Timestamp | None = None
    condition: Condition = Condition.new

    @model_validator(mode="after")
    def _dates(self) -> Self:
        if self.available_from and self.expires_at and self.expires_at <= self.available_from:
            raise ValueError("expires_at must be after available_from")
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        return self


class OfferCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    donor_id: uuid.UUID
    kind: OfferKind
    lots: Annotated[list[LotCreate], Field(max_length=200)] | None = None
    amount: Annotated[int, Field(gt=0, le=10**15, description="In the currency's minor unit (fen).")] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    restrictions: Restrictions = Restrictions()
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None
    procurement_id: uuid.UUID | None = Field(
        None, description="Goods bought by this logistics procurement order (coordinators and services only)."
    )
    origin_country: CountryCode | None = Field(
        None, description="ISO 3166-1 alpha-2; in-kind goods from outside CN await customs clearance."
    )
    operation_id: uuid.UUID | None = Field(
        None, description="The relief operation the offer belongs to (an active one); a fund's, when omitted."
    )
    fund_id: uuid.UUID | None = Field(
        None, description="Cash pledges only: the special fund the money goes into (of the pledge's currency)."
    )

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.kind == OfferKind.in_kind:
            if not self.lots:
                raise ValueError("an in-kind offer needs at least one lot")
            if self.amount is not None or self.currency is not None:
                raise ValueError("an in-kind offer has no amount or currency")
            if self.fund_id is not None:
                raise ValueError("only a cash pledge goes into a fund")
        else:
            if self.lots:
                raise ValueError("a cash offer has no lots")
            if self.amount is None or self.currency is None:
                raise ValueError("a cash offer needs amount and currency")
        return self


class OfferUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    restrictions: Restrictions | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None
    operation_id: uuid.UUID | None = Field(
        None, description="Move the offer into this (active) relief operation; null takes it out of one."
    )


class Lot(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    offer_id: uuid.UUID
    item_code: str
    quantity: int
    unit: str
    lat: float | None
    lon: float | None
    region_code: str | None
    available_from: datetime | None
    expires_at: datetime | None
    condition: Condition
    quantity_reserved: int
    quantity_shipped: int
    quantity_delivered: int
    quantity_written_off: int = Field(
        description="Units a receipt wrote off (damaged, expired, lost): never available again."
    )
    quantity_available: int = Field(description="Neither reserved nor written off, if the lot may be reserved at all.")
    check_by: str | None
    verification: LotVerification
    verification_notes: str | None
    version: int


class Offer(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    donor_id: uuid.UUID
    org: str
    kind: OfferKind
    lots: list[Lot]
    amount: int | None
    currency: str | None
    restrictions: Restrictions
    note: str | None
    status: OfferStatus
    withdraw_reason: str | None
    procurement_id: uuid.UUID | None = None
    origin_country: str | None = None
    operation_id: uuid.UUID | None = Field(None, description="The relief operation the offer belongs to.")
    fund_id: uuid.UUID | None = Field(None, description="A cash pledge's special fund.")
    amount_received: int | None = Field(
        None, description="Cash pledges: the sum of the payments received against it (fen); null for in-kind."
    )
    overpaid: bool = Field(
        False, description="More money was received than the pledge promised (recorded all the same)."
    )
    customs: dict[str, Any] | None = Field(
        None, description="The customs group's decision on goods from abroad: outcome, HS codes, consignee, exemption."
    )
    tracking_code: str | None = Field(
        None, description="The donor's public tracking code; returned once, when the offer is created."
    )
    version: int
    created_at: datetime
    updated_at: datetime


class VerificationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None


class LotVerdict(StrEnum):
    verified = "verified"
    rejected = "rejected"
    reclassified = "reclassified"


class LotVerificationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: LotVerdict
    item_code: ItemCode | None = Field(None, description="The item the lot really is; only when reclassified.")
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _item_when_reclassified(self) -> Self:
        if (self.verdict == LotVerdict.reclassified) != (self.item_code is not None):
            raise ValueError("item_code is given exactly when the verdict is reclassified")
        return self


class CustomsDecision(BaseModel):
    """The customs group's decision on an offer from abroad; clearing it names the HS code of each item, the
    public foundation the goods are consigned to and the tax-exemption reference."""

    model_config = ConfigDict(extra="forbid")

    outcome: CustomsOutcome
    hs_codes: Annotated[dict[ItemCode, HsCode], Field(max_length=200)] = {}
    consignee_foundation: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None
    ) = None
    exemption_reference: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None
    ) = None
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _cleared_names_all(self) -> Self:
        if self.outcome == CustomsOutcome.cleared and not (
            self.hs_codes and self.consignee_foundation and self.exemption_reference
        ):
            raise ValueError("clearing needs hs_codes, consignee_foundation and exemption_reference")
        return self


class WithdrawRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ReservationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: Quantity
    reference: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="The caller's id for this hold; repeating it returns the same reservation to the same caller. "
        "A UUID names a matching proposal: only the matching service reserves with one."
    )
    hold_seconds: Annotated[int, Field(gt=0, le=30 * 86400)] | None = Field(
        None, description="Release the hold automatically after this long, unless it is consumed first."
    )


class ReservationStatus(StrEnum):
    active = "active"
    released = "released"
    expired = "expired"


class Reservation(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    lot_id: uuid.UUID
    quantity: int
    reference: str
    status: ReservationStatus
    created_by: str
    created_by_org: str | None = Field(description="With created_by, who made it; null on the oldest rows.")
    created_at: datetime
    expires_at: datetime | None
    released_at: datetime | None


class PaymentCreate(BaseModel):
    """Money received against a cash pledge, as the bank or the receipt shows it."""

    model_config = ConfigDict(extra="forbid")

    amount: Annotated[int, Field(gt=0, le=10**15, description="In the pledge's currency's minor unit (fen).")]
    received_at: Timestamp = Field(description="When the money arrived (not in the future).")
    reference: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="The bank transfer's or receipt's reference; unique per pledge: recording it again records "
        "nothing new."
    )
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = Field(
        None, description="When given, must be the pledge's currency."
    )


class Payment(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    offer_id: uuid.UUID
    amount: int
    currency: str
    received_at: datetime
    reference: str
    recorded_by: str
    created_at: datetime


class OfferImportReport(ImportReport):
    tracking_codes: dict[str, str] = Field(
        default_factory=dict, description="offer id → its tracking code, shown this once to the donor."
    )


def lot_out(lot: Any, offer_status: OfferStatus) -> Lot:
    available = lot.quantity - lot.quantity_reserved - lot.quantity_written_off
    expired = lot.expires_at is not None and lot.expires_at <= datetime.now(UTC)
    if offer_status != OfferStatus.open or lot.verification not in AVAILABLE_LOT_VERIFICATIONS or expired:
        available = 0
    return Lot.model_validate(
        {
            **{k: getattr(lot, k) for k in Lot.model_fields if k != "quantity_available"},
            "quantity_available": max(available, 0),
        }
    )
