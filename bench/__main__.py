"""`make bench`: run every benchmark in turn."""

from __future__ import annotations

import sys

from bench import (
    allocation,
    continuous,
    cost,
    demo,
    exports,
    goals,
    imports,
    incremental,
    intake,
    lag,
    load,
    projection,
    replicas,
    stability,
    time_to_proposal,
    webhooks,
)


def main() -> int:
    intake.main(sys.argv[1:])
    allocation.main([])
    stability.main([])
    imports.main([])
    exports.main([])
    time_to_proposal.main([])
    continuous.main([])
    incremental.main([])
    webhooks.main([])
    projection.main([])
    replicas.main([])
    load.main([])
    lag.main([])
    cost.main([])
    demo.main([])
    goals.main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
