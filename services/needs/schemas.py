"""Schemas of the needs service: sites, needs and their lines, imports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.catalog import Grade, ItemName, Pack, SubstituteRule
from shared.vocabulary import (
    BeneficiaryCounts,
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

    item_code: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    quantity: Quantity
    unit: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = Field(
        None, description="Defaults to the catalog unit of the item."
    )
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None


class NeedLine(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    item_code: str
    quantity: int
    unit: str
    notes: str | None
    quantity_matched: int
    quantity_delivered: int
    quantity_in_transit: int = 0


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
    lines: Annotated[list[NeedLineCreate], Field(min_length=1, max_length=200)]


class NeedUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)] | None = None
    urgency: Urgency | None = None
    needed_by: Timestamp | None = None
    beneficiaries: Annotated[int, Field(ge=0, le=100_000_000)] | None = None
    beneficiary_groups: BeneficiaryCounts | None = Field(None, description="Replaces the groups as a whole.")
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
