"""Projection lag under the mixed load: from an event's publication to the commit of its effect in each consumer
group (`reliefhub_projection_lag_seconds{group}`, the histogram every consumer observes), while bench/load.py's
mix runs. Production shape: the API in one process (every service, no workers), each service's worker its own
`reliefhub worker` process serving its metrics; the histograms are read from those before and after the load
(once every group has caught up), and p50/p95 per group interpolated within the buckets of the difference.

    python -m bench.lag [--seconds 60] [--scale 1] [--quick]
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict

from bench.common import scrape, servers, table, write_result
from bench.load import Stats, load_args, migrated, mixed_load, stack

BUCKETS = "reliefhub_projection_lag_seconds_bucket"
GOAL_MS = 500
Histograms = dict[str, dict[float, float]]  # group → upper bound → cumulative count


async def histograms(urls: list[str]) -> Histograms:
    """The lag histogram of every consumer group, summed over the worker processes."""
    found: Histograms = defaultdict(lambda: defaultdict(float))
    for labels, value in await scrape(urls, BUCKETS):
        found[labels["group"]][float(labels["le"])] += value
    return found


def difference(after: Histograms, before: Histograms) -> Histograms:
    return {
        group: {le: n - before.get(group, {}).get(le, 0.0) for le, n in buckets.items()}
        for group, buckets in after.items()
    }


def quantile(buckets: dict[float, float], q: float) -> float:
    """The q-quantile of a cumulative histogram, linear within its bucket (as Prometheus' histogram_quantile);
    the largest finite bound when it falls in the +Inf bucket; NaN when empty."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if math.isinf(le):
                return lower
            share = (rank - below) / (buckets[le] - below) if buckets[le] > below else 1.0
            return lower + (le - lower) * share
        lower, below = le, buckets[le]
    return lower


def counts(h: Histograms) -> dict[str, float]:
    return {group: buckets.get(math.inf, 0.0) for group, buckets in h.items()}


async def caught_up(urls: list[str], seconds: float) -> Histograms:
    """The histograms once their counts have not moved for a second (every group has applied what was
    published), or after `seconds`."""
    deadline = time.monotonic() + seconds
    last = await histograms(urls)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = await histograms(urls)
        if counts(now) == counts(last):
            return now
        last = now
    return last


def main(argv: list[str] | None = None) -> str:
    args = load_args("bench.lag", argv)
    stats = Stats()
    with servers() as (db, redis):
        settings = migrated(db, redis)
        with stack(db, redis, one_process=False) as (base, urls):

            async def run() -> Histograms:
                before: Histograms = {}

                async def mark() -> None:
                    before.update(await caught_up(urls, 30))

                await mixed_load(base, settings, stats, seconds=args.seconds, scale=args.scale, on_start=mark)
                return difference(await caught_up(urls, 60), before)

            lag = asyncio.run(run())

    def ms(x: float) -> str:
        return "—" if math.isnan(x) else f"{x * 1000:.0f}"

    rows = []
    for group in sorted(lag):
        n = lag[group].get(math.inf, 0.0)
        if n <= 0:
            continue
        p95 = quantile(lag[group], 0.95)
        verdict = "met" if p95 * 1000 <= GOAL_MS else "missed"
        rows.append([group, f"{n:.0f}", ms(quantile(lag[group], 0.5)), ms(p95), f"≤ {GOAL_MS} ({verdict})"])
    errors = sum(stats.errors.values())
    text = (
        f"## Projection lag under the mixed load: {args.seconds:.0f} s at {args.scale:g}× bench/load.py's rates,"
        " each service's worker its own process\n\n"
        + (table(["consumer group", "events", "lag p50 ms", "lag p95 ms", "goal ms"], rows) if rows else "No events.")
        + f"\n\nLag: an event's publication (its `time`, set in the transaction that commits it) → the commit of its"
        " effect in the group, from `reliefhub_projection_lag_seconds{group}` on each worker's metrics; quantiles"
        " interpolated within the histogram's buckets (10, 25, 50, 100, 250, 500 ms, 1 s, …), over the events the"
        f" load caused (read once every group had caught up). Load errors: {errors}."
        + "".join(f"\n- {name}: {sample}" for name, sample in stats.samples.items())
    )
    print(text)
    print(f"\nwritten to {write_result('lag', text)}")
    return text


if __name__ == "__main__":
    main()
