"""The `reliefhub` command line."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from reliefhub import cli
from shared.auth import Role, decode_token
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.spreadsheets import handmade_xlsx, header_cells

runner = CliRunner()


def test_token_create_signs_a_usable_token(cli_env: Settings) -> None:
    result = runner.invoke(
        cli.app,
        [
            "token",
            "create",
            "--role",
            "working_group",
            "--role",
            "donor",
            "--org",
            "wg-devices",
            "--sub",
            "li",
            "--group",
            "medical_device",
        ],
    )
    assert result.exit_code == 0, result.output
    principal = decode_token(result.output.strip(), cli_env)
    assert principal.roles == {Role.working_group, Role.donor}
    assert (principal.org, principal.sub, principal.group) == ("wg-devices", "li", "medical_device")


def test_token_create_names_a_hub_coordinator_s_regions(cli_env: Settings) -> None:
    args = ["token", "create", "--role", "coordinator", "--org", "hub-zz", "--sub", "zhang"]
    result = runner.invoke(cli.app, [*args, "--region", "4101", "--region", "4102"])
    assert result.exit_code == 0, result.output
    assert decode_token(result.output.strip(), cli_env).regions == ("4101", "4102")
    assert decode_token(runner.invoke(cli.app, args).output.strip(), cli_env).regions is None
    result = runner.invoke(cli.app, [*args, "--region", "Zhengzhou"])
    assert result.exit_code != 0 and "not a region-code prefix" in result.output


def test_token_create_rejects_unknown_role(cli_env: Settings) -> None:
    result = runner.invoke(cli.app, ["token", "create", "--role", "emperor", "--org", "o", "--sub", "s"])
    assert result.exit_code != 0


def test_import_refuses_a_hostile_or_oversized_file_with_a_message(
    cli_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = tmp_path / "needs.xlsx"
    huge.write_bytes(handmade_xlsx("A1:XFD1048576", [*header_cells(["site_id"]), ("A1048576", "x")]))
    result = runner.invoke(cli.app, ["import", "needs", str(huge)])
    assert result.exit_code == 1, result.output
    assert "more than 20000 blank rows" in result.output and "Nothing was imported" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)

    many = tmp_path / "offers.csv"
    many.write_bytes(b"donor_id,item_code,quantity\n" + b"d,i,1\n" * 20_001)
    result = runner.invoke(cli.app, ["import", "offers", str(many)])
    assert result.exit_code == 1 and "more than 20000 rows" in result.output, result.output

    monkeypatch.setenv("RELIEFHUB_MAX_IMPORT_BYTES", "1000")
    result = runner.invoke(cli.app, ["import", "offers", str(many)])
    assert result.exit_code == 1 and "larger than 1000 bytes" in result.output, result.output


async def test_import_needs_file_all_or_nothing(
    cli_env: Settings, client: httpx.AsyncClient, auth: TokenFactory, tmp_path: Path
) -> None:
    coordinator = auth("coordinator")
    site = (
        await client.post(
            "/v1/sites",
            headers=coordinator,
            json={"name": "静安区某街道", "kind": "community", "region_code": "310106"},
        )
    ).json()
    good = tmp_path / "needs.csv"
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["need_ref", "site_id", "title", "item_code", "quantity", "needed_by"])
    w.writerow(["a", site["id"], "老人药品", "medicine.hypertension.amlodipine", "30", "2030-01-31"])
    w.writerow(["a", site["id"], "老人药品", "medicine.antipyretic.ibuprofen", "20", "2030-01-31"])
    w.writerow(["", site["id"], "饮用水", "water.bottled.small_550ml", "500", ""])
    good.write_text(buf.getvalue(), encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(buf.getvalue() + f"x,{site['id']},坏行,no.such.item,5,\n", encoding="utf-8")

    result = await asyncio.to_thread(runner.invoke, cli.app, ["import", "needs", str(bad)])
    assert result.exit_code == 1, result.output
    assert "no.such.item" in result.output and "nothing was imported" in result.output
    assert (await client.get("/v1/needs", headers=coordinator)).json()["items"] == []

    result = await asyncio.to_thread(runner.invoke, cli.app, ["import", "needs", str(good)])
    assert result.exit_code == 0, result.output
    assert "imported 3 of 3 rows" in result.output
    needs = (await client.get("/v1/needs", headers=coordinator)).json()["items"]
    assert sorted(len(n["lines"]) for n in needs) == [1, 2]
