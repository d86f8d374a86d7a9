"""Schemas of the partners service: organisations, their decisions, working groups' tasks and outcomes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field, model_validator

from services.partners.models import OrgKind, OrgStatus, TaskKind, TaskStatus
from shared.vocabulary import AssignmentStatus, BeneficiaryGroup, CapacityStatus, ItemCode, RegionPrefix, Timestamp

# What tokens carry as `org`: letters, digits and a few separators, so it is safe in a URL path.
OrgSlug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._~:@-]{0,99}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
IssueArea = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Note = Annotated[str, StringConstraints(max_length=4000)]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class HubLevel(StrEnum):
    national = "national"
    province = "province"
    city = "city"
    county = "county"


class OrganizationContact(BaseModel):
    """How the registry reaches the organisation: shown to it and to coordinators, never to others."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(max_length=100)] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 \-]{4,30}$")] | None = None
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=200)] | None = None
    address: Annotated[str, StringConstraints(max_length=500)] | None = None


class OrganizationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: OrgSlug | None = Field(
        None, description="The slug tokens carry as `org`; by default your token's. Only coordinators register others."
    )
    name: Name
    kind: OrgKind
    parent_id: OrgSlug | None = Field(None, description="The hub this organisation belongs to.")
    region_codes: Annotated[list[RegionPrefix], Field(max_length=200)] = Field(
        [], description="Region-code prefixes it serves; none: national."
    )
    issue_areas: Annotated[list[IssueArea], Field(max_length=50)] = []
    public_name: Name | None = Field(None, description="The name shown publicly (else none is).")
    contact: OrganizationContact | None = None


class OrganizationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    parent_id: OrgSlug | None = None
    region_codes: Annotated[list[RegionPrefix], Field(max_length=200)] | None = None
    issue_areas: Annotated[list[IssueArea], Field(max_length=50)] | None = None
    public_name: Name | None = None
    contact: OrganizationContact | None = None


class Organization(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: OrgKind
    parent_id: str | None
    region_codes: list[str]
    issue_areas: list[str]
    public_name: str | None
    contact: OrganizationContact | None = Field(None, description="Shown to the organisation and coordinators.")
    status: OrgStatus
    status_reason: str | None
    decided_by_org: str | None
    decided_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    delivered: ServiceRecord | None = Field(
        None, description="What its reported assignments delivered (on `GET /v1/organizations/{id}`)."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def level(self) -> HubLevel:
        """How far it reaches: its widest region prefix (2 digits a province, 4 a city, 6 a county)."""
        if not self.region_codes:
            return HubLevel.national
        widest = min(len(code) for code in self.region_codes)
        return HubLevel.province if widest <= 2 else HubLevel.city if widest <= 4 else HubLevel.county


class OrganizationDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Note | None = None


class TaskSubject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["offer", "need", "procurement", "document"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class TaskCreate(BaseModel):
    """A task opened by hand (the services open device checks, customs clearances, translations of offers
    from abroad and quotes for drafted procurements by themselves)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[TaskKind.translation, TaskKind.procurement_quote]
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    subject: TaskSubject
    group: GroupName | None = Field(None, description="The working group; by default the one for this kind.")
    region_code: RegionPrefix | None = None
    details: dict[str, Any] = Field({}, description="What the group needs to know: text, links, languages.")
    due_at: Timestamp | None = Field(None, description="By default the kind's usual time from now.")


class Task(BaseModel):
    id: uuid.UUID
    kind: TaskKind
    group: str
    status: TaskStatus
    title: str
    subject: TaskSubject
    details: dict[str, Any]
    region_code: str | None
    due_at: datetime
    overdue: bool = Field(description="Past its due time while still open or claimed.")
    claimed_by: str | None
    claimed_by_org: str | None
    claimed_at: datetime | None
    completed_by: str | None
    completed_by_org: str | None
    completed_at: datetime | None
    outcome: str | None
    notes: str | None
    data: dict[str, Any] | None = Field(description="What the outcome recorded (HS codes, translation, quotes…).")
    version: int
    created_at: datetime
    updated_at: datetime


class TaskCompletion(BaseModel):
    """`outcome` by kind: device_check verified | rejected; customs_clearance cleared | refused (cleared needs
    `data` {hs_codes: {item_code: code}, consignee_foundation, exemption_reference}); translation translated |
    declined (translated needs `data` {language, text}); procurement_quote quoted | declined (quoted needs
    `data` {quotes: [{supplier, amount, currency, valid_until}]})."""

    model_config = ConfigDict(extra="forbid")

    outcome: Annotated[str, StringConstraints(min_length=1, max_length=30)]
    notes: Note | None = None
    data: dict[str, Any] = {}


# --- what each kind's outcome records -------------------------------------------------------------------------

HsCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6,10}$")]


class CustomsClearanceData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hs_codes: Annotated[dict[ItemCode, HsCode], Field(min_length=1, max_length=200)] = Field(
        description="The HS code declared for each item code of the offer's lots."
    )
    consignee_foundation: Name = Field(description="The public foundation the goods are consigned to.")
    exemption_reference: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class TranslationData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "zh"
    text: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class Quote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    supplier: Name
    amount: Annotated[int, Field(gt=0, le=10**15, description="In the currency's minor unit (fen).")]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "CNY"
    valid_until: Timestamp | None = None
    note: Note | None = None


class ProcurementQuoteData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quotes: Annotated[list[Quote], Field(min_length=1, max_length=50)]


class NoData(BaseModel):
    model_config = ConfigDict(extra="forbid")


# kind → outcome → the model of its data
OUTCOMES: dict[TaskKind, dict[str, type[BaseModel]]] = {
    TaskKind.device_check: {"verified": NoData, "rejected": NoData},
    TaskKind.customs_clearance: {"cleared": CustomsClearanceData, "refused": NoData},
    TaskKind.translation: {"translated": TranslationData, "declined": NoData},
    TaskKind.procurement_quote: {"quoted": ProcurementQuoteData, "declined": NoData},
}


# --- capacities ------------------------------------------------------------------------------------------------

MAX_WINDOW_DAYS = 366
UnitsPerDay = Annotated[int, Field(gt=0, le=1_000_000, description="Units of the service it can give each day.")]
# A calendar day a capacity's window may start or end on (ISO 8601 date).
Day = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2999, 12, 31))]
Regions = Annotated[list[RegionPrefix], Field(max_length=200)]


def check_window(starts_on: date | None, ends_on: date | None) -> None:
    if starts_on is not None and ends_on is not None:
        if ends_on < starts_on:
            raise ValueError("ends_on comes before starts_on")
        if (ends_on - starts_on).days >= MAX_WINDOW_DAYS:
            raise ValueError(f"a window spans at most {MAX_WINDOW_DAYS} days")


class CapacityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org: OrgSlug | None = Field(None, description="The organisation declaring it; by default your token's.")
    service_code: ItemCode = Field(description="A `service.*` item of the catalog.")
    units_per_day: UnitsPerDay
    starts_on: Day
    ends_on: Day = Field(description="The last day it is offered (inclusive).")
    region_codes: Regions = Field([], description="Region-code prefixes it covers; none: national.")
    note: Note | None = None

    @model_validator(mode="after")
    def _window(self) -> CapacityCreate:
        check_window(self.starts_on, self.ends_on)
        return self


class CapacityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units_per_day: UnitsPerDay | None = None
    starts_on: Day | None = None
    ends_on: Day | None = None
    region_codes: Regions | None = None
    note: Note | None = None


class CapacityWithdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Note | None = None


class Capacity(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    org: str
    service_code: str
    units_per_day: int
    starts_on: date
    ends_on: date
    region_codes: list[str]
    note: str | None
    status: CapacityStatus
    withdrawn_reason: str | None
    withdrawn_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class ServiceRecord(BaseModel):
    assignments_done: int
    units_delivered: int
    people_served: int


class Assignment(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    proposal_id: uuid.UUID
    org: str = Field(description="The partner doing the work (whose capacity was accepted).")
    capacity_id: uuid.UUID
    service_code: str
    need_id: uuid.UUID
    need_line_id: uuid.UUID
    site_id: uuid.UUID | None
    region_code: str
    quantity: int = Field(description="Units accepted (line unit).")
    status: AssignmentStatus
    units_delivered: int | None
    people_served: int | None
    served_by_group: dict[str, int] | None
    note: str | None
    confirmed_at: datetime | None
    reported_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class AssignmentReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units_delivered: int = Field(ge=0, le=10_000_000)
    people_served: int = Field(ge=0, le=10_000_000)
    served_by_group: dict[BeneficiaryGroup, Annotated[int, Field(ge=0, le=10_000_000)]] = Field(default_factory=dict)
    note: Note | None = None
