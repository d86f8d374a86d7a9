"""The scoring policy: one frozen model of its factor weights, tiers and thresholds, validated once — as the body
of `PUT /v1/policy`, when a stored version is read, and wherever the scorer is handed one — and its stored
versions (the current one, a new one written under If-Match, its API form).

A field that is malformed or out of range is a ValueError (pydantic's ValidationError): in a request body, the
kit's 422 `invalid-request`. A policy whose fields are each fine but that breaks a rule of the policy (a factor
nobody knows, tier shares that do not sum to 1, tier values that do not decrease) raises `InvalidPolicy`, which
pydantic lets through on purpose (it only collects ValueError and AssertionError), so that the same model as a
request body answers 422 `invalid-policy`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from itertools import pairwise
from types import MappingProxyType
from typing import Annotated, Any, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import events, schemas
from services.matching.errors import InvalidPolicy
from services.matching.models import PolicyVersion
from services.matching.repository import PolicyRepository
from shared.auth import Principal, require_national
from shared.errors import PreconditionFailed
from shared.etag import IfMatch, check_version
from shared.events import publish

FACTORS = ("urgency", "deadline_slack", "distance", "quantity_fit", "expiry_pressure", "substitute", "equity")

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "urgency": 30.0,
    "deadline_slack": 15.0,
    "distance": 15.0,
    "quantity_fit": 10.0,
    "expiry_pressure": 10.0,
    "substitute": 10.0,
    "equity": 20.0,
}
MAX_WEIGHT = 1000.0
MAX_TIERS = 10
MAX_LATENESS_PENALTY = 100.0
MAX_TIER_VALUE = 100_000


class Tier(NamedTuple):
    """A share of a need line's remaining demand, and the value per unit allocated within it."""

    share: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
    value: Annotated[int, Field(gt=0, le=MAX_TIER_VALUE)]


DEFAULT_TIERS: tuple[Tier, ...] = (Tier(0.25, 400), Tier(0.25, 150), Tier(0.5, 40))

# The request body's form of a tier, as GET /v1/policy answers it (a [share, value] pair is accepted too).
_TIER_SCHEMA = {
    "type": "object",
    "properties": {
        "share": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "Share of a need line's remaining demand.",
        },
        "value": {
            "type": "integer",
            "exclusiveMinimum": 0,
            "maximum": MAX_TIER_VALUE,
            "description": "Value per unit allocated within this tier.",
        },
    },
    "required": ["share", "value"],
    "additionalProperties": False,
}


def _in_words(what: str, *, number: bool = True) -> WrapValidator:
    """A field's errors said once, in the policy's words: "<field> must be <what>, got <value>"."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        said = {"field": str(info.field_name), "what": what, "value": repr(value)}
        if number and isinstance(value, bool):  # True is no number here
            raise PydanticCustomError("invalid_policy_field", "{field} must be {what}, got {value}", said)
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("invalid_policy_field", "{field} must be {what}, got {value}", said) from None

    return WrapValidator(check)


def _weights_in_words(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if not isinstance(value, Mapping):
        raise PydanticCustomError("invalid_policy_field", "weights must be an object of factor name to weight")
    for name, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
            raise PydanticCustomError(
                "invalid_policy_field",
                "weight of {name} must be a finite number, got {weight}",
                {"name": repr(name), "weight": repr(weight)},
            )
    try:
        return handler(value)
    except ValidationError as exc:
        name = exc.errors()[0]["loc"][0]
        raise PydanticCustomError(
            "invalid_policy_field",
            "weight of {name} must not be negative nor above {most}, got {weight}",
            {"name": repr(name), "most": f"{MAX_WEIGHT:g}", "weight": repr(value[name])},
        ) from None


def _tiers_in_words(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc, kind = error["loc"], error["type"]
        if not loc:
            if kind == "too_short":
                raise PydanticCustomError("invalid_policy_field", "tiers must not be empty") from None
            raise PydanticCustomError(
                "invalid_policy_field",
                "tiers must be a list of at most {most} [share, value] pairs",
                {"most": MAX_TIERS},
            ) from None
        tier = value[loc[0]]
        if len(loc) == 1 or kind in (
            "missing_argument",
            "unexpected_keyword_argument",
            "unexpected_positional_argument",
        ):
            what = "each tier must be [share, value], got {tier}"
        elif loc[1] in (0, "share"):
            what = "tier shares must be positive, at most 1, got {tier}"
        else:
            what = "tier values must be positive integer values per unit, at most {most}, got {tier}"
        raise PydanticCustomError("invalid_policy_field", what, {"tier": repr(tier), "most": MAX_TIER_VALUE}) from None


Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT)]
TierItem = Annotated[Tier, WithJsonSchema(_TIER_SCHEMA)]


class Policy(BaseModel):
    """Factor weights and allocation thresholds; immutable, one object per stored version. Factors left out keep
    their default weight, so a policy may name only what it changes. Tiers of decreasing value spread scarce
    supply across needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(1, ge=1, description="Given by the service: the body's is ignored.")
    weights: Annotated[
        Mapping[str, Weight],
        WrapValidator(_weights_in_words),
        PlainSerializer(dict, return_type=dict[str, float]),
    ] = Field(
        default_factory=lambda: MappingProxyType(dict(DEFAULT_WEIGHTS)),
        description=f"Weight per factor (0 to {MAX_WEIGHT:g}) of {', '.join(FACTORS)}; one left out keeps its default.",
    )
    tiers: Annotated[
        tuple[TierItem, ...], Field(min_length=1, max_length=MAX_TIERS), WrapValidator(_tiers_in_words)
    ] = Field(default_factory=lambda: DEFAULT_TIERS)
    require_verified_need: Annotated[StrictBool, _in_words("a boolean", number=False)] = False
    speed_kmh: Annotated[
        float, Field(gt=0, le=2000, allow_inf_nan=False), _in_words("a positive number up to 2000")
    ] = 40.0
    default_distance_km: Annotated[float, Field(ge=0, le=5000), _in_words("a non-negative number up to 5000")] = 50.0
    max_distance_km: Annotated[float, Field(gt=0, le=20000), _in_words("a positive number up to 20000")] = 1500.0
    max_candidates_per_line: Annotated[int, Field(ge=1, le=1000), _in_words("an integer from 1 to 1000")] = 100
    auto_accept_score: Annotated[
        Annotated[float, Field(ge=0, allow_inf_nan=False)] | None, _in_words("null or a non-negative number")
    ] = None
    proposal_ttl_seconds: Annotated[
        int, Field(ge=60, le=30 * 86400), _in_words("an integer from 60 to 2592000 (30 days)")
    ] = 6 * 3600
    lateness_penalty_per_hour: Annotated[
        float, Field(ge=0, le=MAX_LATENESS_PENALTY, allow_inf_nan=False), _in_words("a number from 0 to 100")
    ] = Field(
        0.5,
        description="Points taken off the score of a pair for each hour its lot arrives after the `needed_by` of "
        "a need line whose deadline is `soft` (the score never goes below 0); hard lines never get a late lot.",
    )
    replace_gain_threshold: Annotated[
        float, Field(ge=0, le=10, allow_inf_nan=False), _in_words("a number from 0 to 10")
    ] = Field(
        0.05,
        description="A periodic or manual run replaces open proposals only when a from-scratch allocation's "
        "objective exceeds that of keeping them by more than this fraction (0.05: 5%).",
    )

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise PydanticCustomError(
                    "invalid_policy_field", "unknown policy field(s): {names}", {"names": ", ".join(map(str, unknown))}
                )
        return data

    @field_validator("weights", mode="after")
    @classmethod
    def _known_factors(cls, weights: Mapping[str, float]) -> Mapping[str, float]:
        unknown = sorted(set(weights) - set(FACTORS))
        if unknown:
            raise InvalidPolicy(f"unknown factor(s) in weights: {', '.join(unknown)} (known: {', '.join(FACTORS)})")
        return MappingProxyType({f: float(weights.get(f, DEFAULT_WEIGHTS[f])) for f in FACTORS})

    @model_validator(mode="after")
    def _tiers_spread_supply(self) -> Policy:
        total = sum(share for share, _ in self.tiers)
        if abs(total - 1.0) > 1e-9:
            raise InvalidPolicy(f"tier shares must sum to 1, got {total!r}")
        values = [value for _, value in self.tiers]
        if any(b >= a for a, b in pairwise(values)):
            raise InvalidPolicy(f"tier values must be strictly decreasing, got {values}")
        return self

    def __hash__(self) -> int:
        return hash(json.dumps(self.model_dump(mode="json"), sort_keys=True))


def stored(row: PolicyVersion) -> Policy:
    """A stored version; its row's version wins over any "version" in its body."""
    return Policy.model_validate({**row.body, "version": row.version})


async def current_policy(session: AsyncSession) -> tuple[Policy, PolicyVersion | None]:
    row = await PolicyRepository(session).latest()
    if row is None:
        return Policy(), None
    return stored(row), row


def policy_out(policy: Policy, row: PolicyVersion | None) -> schemas.PolicyRecord:
    return schemas.PolicyRecord.model_validate(
        {
            **policy.model_dump(),
            "tiers": [tier._asdict() for tier in policy.tiers],
            "created_at": row.created_at if row else None,
            "created_by": row.created_by if row else None,
        }
    )


async def put_policy(
    session: AsyncSession, principal: Principal, body: Policy, expected: IfMatch
) -> tuple[Policy, PolicyVersion]:
    require_national(principal, what="The scoring policy")
    current, _ = await current_policy(session)
    check_version(expected, current.version)
    policy = body.model_copy(update={"version": current.version + 1})
    row = await PolicyRepository(session).insert_version(policy.version, policy.model_dump(mode="json"), principal.sub)
    if row is None:
        raise PreconditionFailed("Another policy version was written meanwhile; GET it and retry.")
    await publish(
        session, events.POLICY_UPDATED, events.PolicyData(version=row.version, body=row.body), subject=str(row.version)
    )
    return policy, row
