"""Words every service shares with its clients: region codes, site kinds, quantities, verdicts, and the statuses
more than one service reads (a need's, an offer's, a lot's check, a reservation's)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints
from pydantic_core import PydanticCustomError

# A 6-digit administrative division code (province 2, city 2, county 2 digits), e.g. 310101 Huangpu, Shanghai.
RegionCode = Annotated[str, StringConstraints(pattern=r"^[1-8]\d{5}$")]
# A prefix of one: 31 (Shanghai), 3101 (its districts), 310101 (one county-level district).
RegionPrefix = Annotated[str, StringConstraints(pattern=r"^\d{2,6}$")]
ItemCode = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Quantity = Annotated[int, Field(gt=0, le=1_000_000_000)]

# Every instant a request carries lies in this span once turned to UTC. PostgreSQL stores far more, but an offset
# can push a valid-looking time out of what Python and asyncpg can convert (0001-01-01T00:00:00+01:00 is year 0 in
# UTC, 9999-12-31T23:59:59-23:59 year 10000), and the services add days and hours to deadlines and expiry dates.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _within_span(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise PydanticCustomError(
            "datetime_out_of_range",
            "Datetime must lie between {earliest} and {latest}",
            {"earliest": f"{EARLIEST:%Y-%m-%dT%H:%M:%SZ}", "latest": f"{LATEST:%Y-%m-%dT%H:%M:%SZ}"},
        )
    return value


# A date and time with its offset (RFC 3339), within EARLIEST..LATEST: what every request's timestamp is.
Timestamp = Annotated[AwareDatetime, AfterValidator(_within_span)]


class ShipmentStatus(StrEnum):
    """A shipment's status, in logistics' rows and events and in the needs and supply projections of them."""

    planned = "planned"
    picked_up = "picked_up"
    in_transit = "in_transit"
    delivered = "delivered"
    received = "received"
    received_with_problem = "received_with_problem"
    not_received = "not_received"
    cancelled = "cancelled"


# Picked up, moving or handed over and not yet confirmed by the site: the goods are on their way.
ON_THE_WAY_SHIPMENT_STATUSES = frozenset(
    {ShipmentStatus.picked_up, ShipmentStatus.in_transit, ShipmentStatus.delivered}
)


class CapacityStatus(StrEnum):
    """A partner's declared capacity: offered (matchable within its window) or withdrawn by the partner."""

    active = "active"
    withdrawn = "withdrawn"


class AssignmentStatus(StrEnum):
    """An accepted service proposal given to the partner whose capacity it was: assigned, confirmed by the
    partner, done when the partner reports what it delivered."""

    assigned = "assigned"
    confirmed = "confirmed"
    done = "done"


# The catalog's category of services (psychological support, interpreting, drivers…): what capacities declare.
SERVICE_CATEGORY = "service"


class SiteKind(StrEnum):
    hospital = "hospital"
    community = "community"
    shelter = "shelter"
    school = "school"
    nursing_home = "nursing_home"
    ngo = "ngo"
    government = "government"
    other = "other"


class BeneficiaryGroup(StrEnum):
    """Whom a need serves, whom a delivery served (counted per group), and whom a gift may be restricted to."""

    medical_staff = "medical_staff"  # 医护人员
    community_residents = "community_residents"  # 社区居民
    elderly = "elderly"  # 老人
    children = "children"  # 儿童
    students = "students"  # 高校学生
    migrant_workers = "migrant_workers"  # 外来务工人员
    patients = "patients"  # 患者
    people_with_disabilities = "people_with_disabilities"  # 残障人士
    other = "other"


# People per beneficiary group, as needs (whom they serve) and feedback (whom a delivery served) give them.
BeneficiaryCounts = dict[BeneficiaryGroup, Annotated[int, Field(ge=0, le=100_000_000)]]


class Verdict(StrEnum):
    verified = "verified"
    rejected = "rejected"


# --- statuses more than one service speaks of: in the owner's rows, in its events, in the others' projections ---


class Urgency(StrEnum):
    critical = "critical"
    high = "high"
    normal = "normal"
    low = "low"


class Deadline(StrEnum):
    """How a need line's `needed_by` binds: a lot arriving later is never proposed (hard), or is, with a
    lateness penalty on its score (soft)."""

    hard = "hard"
    soft = "soft"


class ClaimStatus(StrEnum):
    """A partner's claim on need lines it covers itself: pending until a coordinator confirms it."""

    pending = "pending"
    confirmed = "confirmed"
    withdrawn = "withdrawn"
    expired = "expired"
    fulfilled = "fulfilled"


class NeedStatus(StrEnum):
    open = "open"
    matched = "matched"
    in_transit = "in_transit"
    fulfilled = "fulfilled"
    closed = "closed"
    expired = "expired"
    cancelled = "cancelled"


class NeedLineStatus(StrEnum):
    """A need line is `open` (matched against its item), `pending_item` while it waits for an item request, or
    `cancelled` when that request was refused (kept, with the reason, for the record; never matched)."""

    open = "open"
    pending_item = "pending_item"
    cancelled = "cancelled"


class ItemRequestStatus(StrEnum):
    """A request to add an item to the catalog: waiting, approved as a new item, mapped to an existing one, or
    refused."""

    pending = "pending"
    approved = "approved"
    mapped = "mapped"
    refused = "refused"


# A need still asking for supply: editable, matched against, rolled up from shipments.
ACTIVE_NEED_STATUSES = (NeedStatus.open, NeedStatus.matched, NeedStatus.in_transit)


class Verification(StrEnum):
    """A need's verification by a coordinator."""

    unverified = "unverified"
    verified = "verified"
    rejected = "rejected"


class OfferStatus(StrEnum):
    open = "open"
    withdrawn = "withdrawn"
    closed = "closed"


class LotVerification(StrEnum):
    """A lot's check by the working group its item names (not required for most items)."""

    not_required = "not_required"
    pending = "pending"
    verified = "verified"
    rejected = "rejected"
    reclassified = "reclassified"  # the group moved it to another item (e.g. not for medical use)
    awaiting_customs = "awaiting_customs"  # goods from abroad, until the customs group clears them


# A lot whose check allows reserving it.
AVAILABLE_LOT_VERIFICATIONS = (LotVerification.not_required, LotVerification.verified, LotVerification.reclassified)


class ReservationStatus(StrEnum):
    active = "active"
    released = "released"
    expired = "expired"


class OperationStatus(StrEnum):
    active = "active"
    closed = "closed"
