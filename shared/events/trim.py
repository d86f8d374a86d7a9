"""Stream trimming by MINID: below the oldest entry any consumer group still needs, never by MAXLEN."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


def _parse(id_: str) -> tuple[int, int]:
    ms, _, seq = id_.partition("-")
    return int(ms), int(seq or 0)


async def safe_minid(redis: Redis, stream: str) -> str | None:
    """The lowest id still needed by some group (its oldest pending entry, else its last delivered one).
    None when the stream has no groups: nobody has said what they need, so nothing is trimmed."""
    groups: Any = await redis.xinfo_groups(stream)
    if not groups:
        return None
    bounds: list[tuple[int, int]] = []
    for g in groups:
        name = g["name"]
        oldest = None
        if int(g.get("pending") or 0) > 0:
            # Acked meanwhile (between XINFO and XPENDING): then nothing is pending and min is None.
            summary: Any = await redis.xpending(stream, name)
            oldest = summary.get("min")
        bounds.append(_parse(str(oldest or g["last-delivered-id"])))
    ms, seq = min(bounds)
    return f"{ms}-{seq}"


async def trim_stream(redis: Redis, stream: str) -> int:
    """XTRIM MINID at the safe bound; returns how many entries were removed."""
    if not await redis.exists(stream):
        return 0
    bound = await safe_minid(redis, stream)
    if bound is None or bound == "0-0":
        return 0
    removed: int = await redis.xtrim(stream, minid=bound, approximate=False)
    return removed
