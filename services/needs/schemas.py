"""Schemas of the needs service: sites, needs and their lines, imports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.catalog import Grade, ItemName, Pack, SubstituteRule
from shared.vocabulary import (
    BeneficiaryCounts,
    ClaimStatus,
    Deadline,
    ItemRequestStatus,
    NeedLineStatus,
    NeedStatus,
    Quantity,
    RegionCode,
    SiteKind,
    Timestamp,
    Urgency,
    Verdict,
    Verification,
)

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 \-]{4,30}$")]


class CatalogItem(BaseModel):
    code: str
    name: ItemName
    category: str
    unit: str = Field(description="The base unit (the same as `base_unit`, for existing clients).")
    base_unit: str
    packs: list[Pack] = Field(description="Larger units a quantity may be given in, each a number of base units.")
    grade: Grade
    substitutes: list[str] = Field(description="The codes of `substitute_rules`, for existing clients.")
    substitute_rules: list[SubstituteRule]
    check_by: str | None
    perishable: bool
    unit_value_fen: int


class ItemList(BaseModel):
    items: list[CatalogItem]


ItemCodeText = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+){1,4}$", max_length=100)]
UnitText = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=20)]


class ItemCreate(BaseModel):
    """A new catalog item; its code begins with its category (`food.grain.millet`)."""

    model_config = ConfigDict(extra="forbid")

    code: ItemCodeText
    name: ItemName
    unit: UnitText = Field(description="The base unit every quantity of the item is counted in.")
    packs: Annotated[list[Pack], Field(max_length=10)] = []
    grade: Grade = "general"
    unit_value_fen: Annotated[int, Field(ge=0, le=10**12)] = 0
    perishable: bool = False
    substitute_rules: Annotated[list[SubstituteRule], Field(max_length=20)] = []
    check_by: Annotated[str, StringConstraints(min_length=1, max_length=50)] | None = None


class SiteBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText
    kind: SiteKind
    region_code: RegionCode
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    contact_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    contact_phone: Phone | None = None


class SiteCreate(SiteBase):
    org: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None, description="Owning organisation; only coordinators may set another than their own."
    )


class SiteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText | None = None
    kind: SiteKind | None = None
    region_code: RegionCode | None = None
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    contact_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    contact_phone: Phone | None = None


class Site(SiteBase):
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: uuid.UUID
    org: str
    version: int
    created_at: datetime
    updated_at: datetime
    contact_name: str | None = Field(None, description="Shown to the owning organisation and coordinators only.")
    contact_phone: str | None = Field(None, description="Shown to the owning organisation and coordinators only.")


class NeedLineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_code: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None, description="The catalog item; or give `item_request_id` for an item the catalog lacks."
    )
    item_request_id: uuid.UUID | None = Field(
        None,
        description="An item request (POST /v1/items/requests) instead of `item_code`: the line waits as "
        "`pending_item` until a coordinator approves or maps the request.",
    )
    quantity: Quantity
    unit: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = Field(
        None, description="Defaults to the catalog unit of the item (or the unit of the item request)."
    )
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None
    deadline: Deadline = Field(
        Deadline.hard,
        description="How the need's `needed_by` binds this line: `hard`, a lot arriving later is never proposed; "
        "`soft`, it may be, its score lowered by the policy's `lateness_penalty_per_hour`.",
    )

    @model_validator(mode="after")
    def _one_item(self) -> NeedLineCreate:
        if (self.item_code is None) == (self.item_request_id is None):
            raise ValueError("give exactly one of item_code and item_request_id")
        return self


class NeedLine(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    item_code: str | None = Field(description="None while the line is `pending_item`.")
    quantity: int
    unit: str
    notes: str | None
    deadline: Deadline = Deadline.hard
    status: NeedLineStatus = NeedLineStatus.open
    item_request_id: uuid.UUID | None = None
    pending_reason: str | None = Field(
        None,
        description="Why a line still waits after its request was decided, or why it was cancelled (request refused).",
    )
    quantity_matched: int
    quantity_delivered: int
    quantity_in_transit: int = 0
    substitution_override: bool = Field(
        False, description="A coordinator allowed general-grade substitutes for this line (see override_*)."
    )
    override_by: str | None = None
    override_at: datetime | None = None
    override_reason: str | None = None
    quantity_claimed: int = Field(0, description="Covered by partners' confirmed claims: not open to matching.")


class NeedCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: uuid.UUID
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    urgency: Urgency = Urgency.normal
    needed_by: Timestamp | None = None
    beneficiaries: Annotated[int, Field(ge=0, le=100_000_000)] | None = None
    beneficiary_groups: BeneficiaryCounts = Field(
        default_factory=dict, description='Whom the need serves: people per group, e.g. {"elderly": 120}.'
    )
    operation_id: uuid.UUID | None = Field(None, description="The relief operation it belongs to (an active one).")
    lines: Annotated[list[NeedLineCreate], Field(min_length=1, max_length=200)]


class NeedUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)] | None = None
    urgency: Urgency | None = None
    needed_by: Timestamp | None = None
    beneficiaries: Annotated[int, Field(ge=0, le=100_000_000)] | None = None
    beneficiary_groups: BeneficiaryCounts | None = Field(
        None, description="Replaces the groups as a whole; null (or {}) names none."
    )
    operation_id: uuid.UUID | None = Field(
        None, description="Move the need into this (active) relief operation; null takes it out of one."
    )
    lines: Annotated[list[NeedLineCreate], Field(min_length=1, max_length=200)] | None = Field(
        None, description="Replaces every line; refused once any quantity is matched."
    )


class Need(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    site_id: uuid.UUID
    org: str
    region_code: str
    title: str
    urgency: Urgency
    needed_by: datetime | None
    beneficiaries: int | None
    beneficiary_groups: dict[str, int] = Field(description="People served per group (BeneficiaryGroup).")
    operation_id: uuid.UUID | None = Field(None, description="The relief operation it belongs to.")
    lines: list[NeedLine]
    status: NeedStatus
    verification: Verification
    verification_reason: str | None
    duplicate_of: uuid.UUID | None
    close_reason: str | None
    confirmed_at: datetime
    version: int
    created_at: datetime
    updated_at: datetime


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class CloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class SubstitutionOverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


CategoryText = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=50)]


class ItemRequestCreate(BaseModel):
    """An item the catalog lacks, asked for by anyone (a frontline unit, typically)."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText
    unit: UnitText = Field(description="The unit it is counted in (the base unit of the item once approved).")
    category: CategoryText = Field(description="The catalog category (`food`, `med`, `ppe`…).")
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ItemRequest(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    org: str
    name: str
    unit: str
    category: str
    note: str | None
    status: ItemRequestStatus
    item_code: str | None = Field(description="The catalog item it was approved as or mapped to.")
    requested_by: str
    decided_by: str | None
    decided_at: datetime | None
    refused_reason: str | None = Field(None, description="Why a coordinator refused it.")
    created_at: datetime


class ItemRequestRefuse(BaseModel):
    """Refuse a request: the need lines waiting on it are cancelled with the reason."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class ItemRequestApprove(BaseModel):
    """Approve a request: the item enters the catalog under `code` (beginning with the request's category),
    counted in the request's unit."""

    model_config = ConfigDict(extra="forbid")

    code: ItemCodeText
    name: ItemName | None = Field(None, description="Defaults to the request's name in both languages.")
    packs: Annotated[list[Pack], Field(max_length=10)] = []
    grade: Grade = "general"


class ItemRequestMap(BaseModel):
    """Map a request to an item the catalog already holds."""

    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(min_length=1, max_length=100)]


# --- claims ------------------------------------------------------------------------------------------------


class ClaimLineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_id: uuid.UUID
    quantity: Quantity


class ClaimCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[ClaimLineCreate] = Field(min_length=1, max_length=100)
    eta: Timestamp | None = Field(None, description="When the partner expects to bring the goods.")
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ClaimLine(BaseModel):
    line_id: uuid.UUID
    item_code: str
    unit: str
    quantity: int


class Claim(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    need_id: uuid.UUID
    org: str = Field(description="The partner organisation covering the lines itself.")
    region_code: str
    status: ClaimStatus
    lines: list[ClaimLine]
    eta: datetime | None
    note: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime = Field(description="A claim still pending then expires.")
    decided_by: str | None
    confirmed_at: datetime | None
    closed_at: datetime | None
    reason: str | None
    version: int


class ClaimWithdraw(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None
