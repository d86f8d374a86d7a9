"""`reliefhub demo` at a small scale on the in-process gateway: every step happens and the counts agree."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from reliefhub import cli
from reliefhub.demo import DISTRICTS, build_scenario, fund_table, run_demo, summary_table
from shared.catalog import get_catalog
from shared.settings import Settings


def test_the_scenario_is_deterministic_and_uses_real_codes() -> None:
    a, b = build_scenario(seed=7, sites=40), build_scenario(seed=7, sites=40)
    assert [(s.name, s.lat, s.needs[0].lines) for s in a.sites] == [(s.name, s.lat, s.needs[0].lines) for s in b.sites]
    assert [(s.name, s.lat) for s in build_scenario(seed=8, sites=40).sites] != [(s.name, s.lat) for s in a.sites]
    assert len({d.code for d in DISTRICTS}) == 16 and all(d.code.startswith("31") for d in DISTRICTS)
    assert {s.district.code for s in a.sites} == {d.code for d in DISTRICTS}  # every district has a site
    catalog = get_catalog()
    assert all(code in catalog for code in a.item_codes)
    assert a.purchase.total <= sum(p for d in a.donors for p in d.pledges)
    # Every pledge goes into a special fund, and the staples purchase stays within what its funds hold.
    assert set(a.pledge_fund) == {(d.index, n) for d in a.donors for n in range(len(d.pledges))}
    assert "general" in set(a.pledge_fund.values()) <= {"general", "staples", "medical", "elderly"}
    assert a.purchase.total <= a.fund_pledged("general", "staples")


async def test_demo_runs_every_step_with_consistent_counts(
    client: httpx.AsyncClient, workers: None, migrated: Settings
) -> None:
    s = await run_demo(client, migrated, sites=12, seed=2022, concurrency=16, wait_seconds=90, settle_seconds=0.5)

    assert s.warnings == []
    assert (s.sites, s.donors) == (12, 10)
    assert s.needs >= 12 and s.need_lines > s.needs
    assert s.inkind_offers > 0 and s.lots >= s.inkind_offers and s.lots_verified > 0
    assert s.pledges >= 3 and s.pledged_fen > 0
    # Partners approved by the hub; the working groups' tasks done: device checks (closed by the verdicts),
    # the gift from abroad's customs clearance and translation.
    assert s.organizations == s.organizations_approved == 10 and s.customs_cleared_lots == 1
    # Approved partners declared what they can do.
    assert (s.capacities, s.capacity_units_per_day) == (3, 38)
    # A partner claimed a need line, the hub confirmed, the partner brought it and the site received it.
    assert (s.claims, s.claims_fulfilled) == (1, 1) and 0 < s.claimed_quantity <= 50
    assert s.tasks_by_kind["customs_clearance"] == s.tasks_by_kind["translation"] == 1
    assert s.tasks_by_kind.get("device_check", 0) >= 1 and s.tasks_done == sum(s.tasks_by_kind.values())
    # The staples purchase and one each for a hospital and a nursing home, from funds whose rules allow them;
    # the medical fund asked to pay for the nursing home is refused.
    assert (s.procurement_orders, s.procurement_ordered, s.procurement_received) == (3, 3, 3)
    assert s.purchases_refused == 1 and "site_kinds" in s.refusal
    # Four public funds of one operation: money pledged into them and (all but one pledge) received.
    assert [f.name for f in s.funds] == [
        "上海抗疫综合专项基金",
        "民生保供专项基金",
        "医疗救治专项基金",
        "关爱老人专项基金",
    ]
    assert sum(f.pledged for f in s.funds) == s.pledged_fen and s.payments == s.pledges - 1
    assert sum(f.received for f in s.funds) == s.received_fen < s.pledged_fen
    assert sum(f.spent for f in s.funds) == s.procurement_fen and all(f.committed == 0 for f in s.funds)
    by_name = {f.name: f for f in s.funds}
    elderly, medical = by_name["关爱老人专项基金"], by_name["医疗救治专项基金"]
    assert elderly.spent > 0 and elderly.overhead == 0 and elderly.available == elderly.received - elderly.spent
    assert medical.spent > 0 and abs(medical.overhead - medical.spent * 0.03) <= 0.5
    general = by_name["上海抗疫综合专项基金"]
    assert general.spent > 0 and general.overhead > 0  # it pays the rest of the staples purchase
    assert s.public_accounts_url == f"http://reliefhub.test/v1/public/accounts?operation_id={s.operation_id}"
    assert fund_table(s).row_count == 4
    assert s.proposals_accepted > 0 and s.quantity_accepted > 0
    # Every shipment went the whole way: moved, received with its PIN, and given feedback.
    assert s.shipments > 0
    assert s.picked_up == s.in_transit == s.delivered == s.shipments
    assert s.received + s.received_with_problem == s.shipments == s.feedback
    assert 1 <= s.short_receipts == s.received_with_problem
    assert 0 < s.quantity_received < s.quantity_accepted  # the short ones
    # The impact report counts exactly what the demo did.
    assert s.money_raised_fen == s.pledged_fen and s.money_spent_fen == s.procurement_fen > 0
    assert s.goods_value_delivered_fen > 0 and s.beneficiaries == s.beneficiaries_reported > 0
    assert 0 < s.sites_supported <= s.sites and 0 < s.fill_rate <= 1
    assert s.tracking_url.startswith("http://reliefhub.test/v1/track/") and s.tracking_steps >= 5
    assert summary_table(s).row_count == len(s.rows())


def test_demo_command_says_when_no_server_answers(cli_env: Settings) -> None:
    result = CliRunner().invoke(cli.app, ["demo", "--base-url", "http://127.0.0.1:9", "--sites", "3"])
    assert result.exit_code == 1
    assert "no ReliefHub server answers at http://127.0.0.1:9" in result.output
