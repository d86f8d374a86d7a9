"""What the bus's gauges show: per consumer group of a stream, entries pending and entries not yet delivered
(lag).

Redis 7 reports lag in XINFO GROUPS, in O(1) from its entries-added and entries-read counters, but not always
(null for a group set to an arbitrary id, or after deletions in the middle of the stream); Redis 6.2, the
embedded one, never. Then it is counted on the server by a script, atomically and bounded: the entries after
the group's last-delivered-id, or, when there are many, the stream's length less the entries up to that id
(the few a trimmed stream keeps below it). Only when both sides exceed `LAG_COUNT_LIMIT` is the count a lower
bound, which is reported then."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from shared.metrics import CONSUMER_LAG, CONSUMER_PENDING

LAG_COUNT_LIMIT = 10_000
# Entries are copied into the script a page at a time; pages stay small, as events may be tens of kB.
_PAGE = 100

# KEYS[1] the stream; ARGV[1] the group's last-delivered-id, ARGV[2] the limit, ARGV[3] the page size.
# Returns {lag, 1} when exact, {lower bound, 0} otherwise. Exclusive ranges ("(id") need Redis 6.2.
_COUNT_LAG = """
local stream, last, limit, page = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function count(first, upto)
  local n = 0
  while n <= limit do
    local want = math.min(page, limit + 1 - n)
    local entries = redis.call('XRANGE', stream, first, upto, 'COUNT', want)
    n = n + #entries
    if #entries < want then return n end
    first = '(' .. entries[#entries][1]
  end
  return n
end
local after = count('(' .. last, '+')
if after <= limit then return {after, 1} end
local upto = count('-', last)
if upto <= limit then return {redis.call('XLEN', stream) - upto, 1} end
return {limit, 0}
"""


async def counted_lag(
    redis: Redis, stream: str, last_delivered_id: str, limit: int = LAG_COUNT_LIMIT
) -> tuple[int, bool]:
    """(entries of `stream` after `last_delivered_id`, whether that is exact rather than a lower bound)."""
    script = redis.register_script(_COUNT_LAG)
    lag, exact = await script(keys=[stream], args=[last_delivered_id, limit, _PAGE])
    return int(lag), bool(exact)


async def group_lags(redis: Redis, stream: str) -> dict[str, tuple[int, int]]:
    """Group name → (pending, lag) for every consumer group of `stream` (none when the stream is absent)."""
    if not await redis.exists(stream):
        return {}
    groups: Any = await redis.xinfo_groups(stream)
    out: dict[str, tuple[int, int]] = {}
    for g in groups:
        lag = g.get("lag")
        if lag is None:
            lag, _exact = await counted_lag(redis, stream, str(g["last-delivered-id"]))
        out[str(g["name"])] = (int(g.get("pending") or 0), int(lag))
    return out


async def export_stream_metrics(redis: Redis, stream: str) -> None:
    """Set `reliefhub_consumer_pending` and `reliefhub_consumer_lag` of every group of `stream`."""
    for group, (pending, lag) in (await group_lags(redis, stream)).items():
        CONSUMER_PENDING.labels(stream, group).set(pending)
        CONSUMER_LAG.labels(stream, group).set(lag)
