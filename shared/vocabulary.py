"""Words every service shares with its clients: region codes, site kinds, quantities, verdicts."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

# A 6-digit administrative division code (province 2, city 2, county 2 digits), e.g. 310101 Huangpu, Shanghai.
RegionCode = Annotated[str, StringConstraints(pattern=r"^[1-8]\d{5}$")]
# A prefix of one: 31 (Shanghai), 3101 (its districts), 310101 (one county-level district).
RegionPrefix = Annotated[str, StringConstraints(pattern=r"^\d{2,6}$")]
ItemCode = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Quantity = Annotated[int, Field(gt=0, le=1_000_000_000)]


class SiteKind(StrEnum):
    hospital = "hospital"
    community = "community"
    shelter = "shelter"
    school = "school"
    nursing_home = "nursing_home"
    ngo = "ngo"
    government = "government"
    other = "other"


class Verdict(StrEnum):
    verified = "verified"
    rejected = "rejected"
