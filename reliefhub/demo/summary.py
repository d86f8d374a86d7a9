"""What a demo run did, step by step, and what the impact report says about it."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table


@dataclass
class FundRow:
    """A special fund's accounts (fen) as the demo ends."""

    name: str
    rules: str
    overhead_share: float
    pledged: int
    received: int
    committed: int
    spent: int
    overhead: int
    available: int


@dataclass
class Summary:
    """What the demo did, step by step, and what the impact report says about it."""

    base_url: str = ""
    seed: int = 0
    sites: int = 0
    needs: int = 0
    need_lines: int = 0
    quantity_needed: int = 0
    donors: int = 0
    inkind_offers: int = 0
    lots: int = 0
    lots_verified: int = 0
    lots_rejected: int = 0
    pledges: int = 0
    pledged_fen: int = 0
    payments: int = 0
    received_fen: int = 0
    operation_id: str = ""
    funds: list[FundRow] = field(default_factory=list)
    purchases_refused: int = 0
    refusal: str = ""
    public_accounts_url: str = ""
    procurement_orders: int = 0
    procurement_ordered: int = 0
    procurement_received: int = 0
    procurement_fen: int = 0
    allocation_runs: int = 0
    proposals_accepted: int = 0
    proposals_auto_accepted: int = 0
    proposals_conflicts: int = 0
    accept_retries: int = 0
    quantity_accepted: int = 0
    shipments: int = 0
    picked_up: int = 0
    in_transit: int = 0
    delivered: int = 0
    received: int = 0
    received_with_problem: int = 0
    short_receipts: int = 0
    quantity_received: int = 0
    feedback: int = 0
    beneficiaries_reported: int = 0
    money_raised_fen: int = 0
    money_spent_fen: int = 0
    goods_value_offered_fen: int = 0
    goods_value_delivered_fen: int = 0
    sites_supported: int = 0
    beneficiaries: int = 0
    fill_rate: float = 0.0
    time_to_match_p50_seconds: float | None = None
    tracking_code: str = ""
    tracking_url: str = ""
    tracking_steps: int = 0
    organizations: int = 0
    organizations_approved: int = 0
    capacities: int = 0
    claims: int = 0
    claims_fulfilled: int = 0
    claimed_quantity: int = 0
    capacity_units_per_day: int = 0
    assignments_done: int = 0
    service_units_delivered: int = 0
    customs_cleared_lots: int = 0
    tasks_done: int = 0
    tasks_by_kind: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def superseded_share(self) -> float:
        """Proposals gone (superseded, lot taken) when a coordinator came to accept them, per accepted one."""
        return self.proposals_conflicts / self.proposals_accepted if self.proposals_accepted else 0.0

    def rows(self) -> list[tuple[str, str, str]]:
        return [
            ("recipient sites", f"{self.sites}", "16 districts of Shanghai; one organisation each"),
            ("needs posted", f"{self.needs}", f"{self.need_lines} lines, {self.quantity_needed:,} units asked for"),
            ("donors", f"{self.donors}", "companies, foundations, individuals, volunteer groups"),
            ("in-kind offers", f"{self.inkind_offers}", f"{self.lots} lots"),
            ("lots checked by working groups", f"{self.lots_verified + self.lots_rejected}",
             f"{self.lots_verified} verified, {self.lots_rejected} rejected"),
            ("partner organisations", f"{self.organizations}",
             f"{self.organizations_approved} approved by the hub: NGOs, community groups, volunteers, carriers, "
             "foundations, companies, working groups"),
            ("capacities declared", f"{self.capacities}",
             f"{self.capacity_units_per_day} service units a day: psychological support, drivers, customs brokerage"),
            ("claims by partners", f"{self.claims}",
             f"{self.claims_fulfilled} confirmed and received with the PIN; {self.claimed_quantity} units brought "
             "by the partner itself"),
            ("service assignments done", f"{self.assignments_done}",
             f"{self.service_units_delivered} support sessions at a nursing home, confirmed and reported"),
            ("working-group tasks done", f"{self.tasks_done}",
             ", ".join(f"{n} {kind}" for kind, n in self.tasks_by_kind.items())
             + f"; {self.customs_cleared_lots} lot(s) from abroad cleared through customs"),
            ("special funds", f"{len(self.funds)}", "of one relief operation; accounts below"),
            ("cash pledges", f"{self.pledges}", f"{yuan(self.pledged_fen)}, each into a special fund"),
            ("payments received", f"{self.payments}",
             f"{yuan(self.received_fen)} arrived; {self.pledges - self.payments} pledge(s) not paid yet"),
            ("procurement orders", f"{self.procurement_orders}",
             f"{self.procurement_ordered} ordered, {self.procurement_received} received, "
             f"{yuan(self.procurement_fen)}; paid from funds whose rules allow the destination"),
            ("purchases refused", f"{self.purchases_refused}",
             "409 restriction-violated: the medical fund asked to pay for a nursing home"),
            ("allocation runs (manual)", f"{self.allocation_runs}", "plus the continuous runs matching makes itself"),
            ("proposals accepted", f"{self.proposals_accepted}",
             f"{self.quantity_accepted:,} units; {self.proposals_auto_accepted} by policy, "
             f"{self.proposals_conflicts} superseded meanwhile"
             + (f", {self.accept_retries} retried after a 500" if self.accept_retries else "")),
            ("superseded vs accepted", f"{self.proposals_conflicts} / {self.proposals_accepted}",
             f"{self.superseded_share:.1%} of the accepted (aim: under 2%); open proposals stay until decided"),
            ("shipments planned", f"{self.shipments}", "by logistics, from the accepted proposals"),
            ("picked up → in transit → delivered", f"{self.delivered}",
             f"{self.picked_up} picked up, {self.in_transit} through district sub-centers"),
            ("receipts with PIN", f"{self.received + self.received_with_problem}",
             f"{self.received} complete, {self.received_with_problem} with a problem; "
             f"{self.quantity_received:,} units"),
            ("short receipts", f"{self.short_receipts}", "each with a discrepancy reason"),
            ("feedback", f"{self.feedback}", f"{self.beneficiaries_reported:,} beneficiaries reported"),
            ("money raised", yuan(self.money_raised_fen), "impact report"),
            ("money spent", yuan(self.money_spent_fen), "on the purchases"),
            ("goods value delivered", yuan(self.goods_value_delivered_fen),
             f"catalog value, purchased goods included; {yuan(self.goods_value_offered_fen)} given in kind"),
            ("sites supported", f"{self.sites_supported}", "confirmed at least one receipt"),
            ("beneficiaries", f"{self.beneficiaries:,}", "as the sites reported"),
            ("fill rate", f"{self.fill_rate:.1%}",
             "delivered / asked for" + (
                 f"; time to match p50 {duration(self.time_to_match_p50_seconds)}"
                 if self.time_to_match_p50_seconds is not None else "")),
            ("requests", f"{self.requests:,}", f"in {self.seconds:.1f} s"),
        ]  # fmt: skip


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


def summary_table(summary: Summary) -> Table:
    table = Table(title=f"ReliefHub demo — Shanghai 2022 (seed {summary.seed})", title_justify="left")
    table.add_column("step")
    table.add_column("count", justify="right")
    table.add_column("detail")
    for step, count, detail in summary.rows():
        table.add_row(step, count, detail)
    return table


def fund_table(summary: Summary) -> Table:
    """Each special fund's accounts: pledged, received, committed (goods not yet arrived), spent, overhead and
    what it may still spend."""
    table = Table(title="Special funds (专项基金) — accounts", title_justify="left")
    for name in ("fund", "for", "overhead share"):
        table.add_column(name)
    for name in ("pledged", "received", "committed", "spent", "overhead", "available"):
        table.add_column(name, justify="right")
    for f in summary.funds:
        table.add_row(
            f.name,
            f.rules,
            f"{f.overhead_share:.0%}",
            *(yuan(n) for n in (f.pledged, f.received, f.committed, f.spent, f.overhead, f.available)),
        )
    return table
