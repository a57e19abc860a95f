"""``hitl-agent check | loops | requests``: CliRunner runs against the local server."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitl_agent.cli import main

from .conftest import Cli


def test_check_shows_key_account_loops_and_quota(cli: Cli) -> None:
    cli.create()
    result = cli("check")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "valid" in out and cli.hitl.loop_id in out and "http://testserver/v1" in out
    assert "pending requests" in out and "1" in out
    # Without --rate-limit the figures depend on whether the server sends X-RateLimit-*.
    assert "quota" in out


def test_check_reports_the_quota_when_the_server_has_one() -> None:
    from hitl_agent.testing import local_hitl

    with local_hitl(rate_limit=100) as hitl:
        env = {"HITL_API_KEY": hitl.api_key, "HITL_BASE_URL": hitl.base_url}
        result = CliRunner().invoke(main, ["check"], obj={"http_client": hitl.http}, env=env)
    assert result.exit_code == 0, result.output
    assert "97 of 100 calls left" in result.output  # the check's own three calls


def test_loops_list_get_create(cli: Cli) -> None:
    created = cli("loops", "create", "--name", "Refunds", "--description", "money", "--format",
                  "json")  # fmt: skip
    assert created.exit_code == 0, created.output
    loop = json.loads(created.output)[0]
    assert loop["loop"]["name"] == "Refunds" and loop["invite_code"]
    listed = cli("loops", "list", "--format", "json")
    assert {item["id"] for item in json.loads(listed.output)} == {
        cli.hitl.loop_id,
        loop["loop"]["id"],
    }
    table = cli("loops", "list")
    assert "Refunds" in table.output and "2 loop(s)" in table.output
    shown = cli("loops", "get", cli.hitl.loop_id)
    assert shown.exit_code == 0 and "members" in shown.output and "@" in shown.output
    as_csv = cli("loops", "list", "--format", "csv")
    assert {row["name"] for row in csv.DictReader(io.StringIO(as_csv.output))} >= {"Refunds"}


def test_requests_list_filters_and_fetches_every_page(cli: Cli) -> None:
    ids = []
    for n in range(205):  # three pages of 100
        ids.append(cli.create(priority="high" if n % 2 else "low"))
        cli.clock.advance(1)
    result = cli("requests", "list", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 205
    assert result.stderr == ""  # no progress drawn into a pipe
    on_terminal = cli("requests", "export", TTY_COMPATIBLE="1")  # rich: treat as a terminal
    assert "fetching requests" in on_terminal.stderr and "205/205" in on_terminal.stderr
    high = json.loads(cli("requests", "list", "--priority", "high", "--format", "json").output)
    assert len(high) == 102 and {r["priority"] for r in high} == {"high"}
    created = [r["created_at"] for r in json.loads(result.output)]
    window = cli("requests", "list", "--created-after", min(created), "--created-before",
                 "2026-01-01T00:00:10Z", "--format", "json")  # fmt: skip
    assert [r["id"] for r in json.loads(window.output)] == ids[1:10][::-1]
    limited = cli("requests", "list", "--limit", "3")
    assert "3 request(s)" in limited.output and ids[-1] in limited.output
    cli.hitl.reviewer.respond(ids[0], True)
    done = json.loads(cli("requests", "list", "--status", "completed", "--format", "json").output)
    assert [r["id"] for r in done] == [ids[0]]
    assert cli("requests", "list", "--loop", cli.hitl.loop_id, "--limit", "1").exit_code == 0


def test_export_round_trips_through_json_and_csv(cli: Cli, tmp_path: Path) -> None:
    first = cli.create(request_text='Ship "v2", now?\nYes', context={"ticket": 7})
    second = cli.create(response_type="single_select", default_response="reject",
                        response_config={"options": ["Approve", "Reject"]})  # fmt: skip
    cli.hitl.reviewer.respond(first, True)
    cli.hitl.reviewer.respond(second, "approve")
    api = [r.model_dump(mode="json") for r in cli.hitl.client.requests.iter(sort="created_at_asc")]

    as_json = cli("requests", "export", "--output", str(tmp_path / "r.json"))
    assert as_json.exit_code == 0, as_json.output
    assert json.loads((tmp_path / "r.json").read_text()) == api

    as_csv = cli("requests", "export", "--format", "csv", "-o", str(tmp_path / "r.csv"))
    assert as_csv.exit_code == 0 and "wrote 2 request(s)" in as_csv.stderr
    with (tmp_path / "r.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == [first, second]
    assert rows[0]["request_text"] == 'Ship "v2", now?\nYes'
    assert [json.loads(row["response_data"]) for row in rows] == [True, "approve"]
    assert [json.loads(row["default_response"]) for row in rows] == [False, "reject"]
    assert [row["status"] for row in rows] == [r["status"] for r in api]
    assert [float(row["response_time_seconds"]) for row in rows] == [
        r["response_time_seconds"] for r in api
    ]
    stdout = cli("requests", "export", "--format", "csv")
    assert list(csv.DictReader(io.StringIO(stdout.stdout))) == rows


def test_get_and_update(cli: Cli) -> None:
    request_id = cli.create()
    shown = cli("requests", "get", request_id)
    assert shown.exit_code == 0 and request_id in shown.output and "Deploy?" in shown.output
    updated = cli("requests", "update", request_id, "--priority", "critical", "--text", "Now?",
                  "--timeout", "900", "--format", "json")  # fmt: skip
    assert updated.exit_code == 0, updated.output
    body = json.loads(updated.output)[0]
    assert (body["priority"], body["request_text"]) == ("critical", "Now?")
    assert cli.hitl.client.requests.get(request_id).priority == "critical"
    form = cli("requests", "update", request_id, "--response-type", "single_select", "--config",
               '{"options": ["Go", "Stop"]}', "--default", '"stop"')  # fmt: skip
    assert form.exit_code == 0, form.output
    assert cli.hitl.client.requests.get(request_id).default_response == "stop"


def test_cancel_one_shows_the_refund(cli: Cli) -> None:
    pending, claimed = cli.create(), cli.create()
    cli.hitl.reviewer.claim(claimed)
    result = cli("requests", "cancel", pending)
    assert result.exit_code == 0, result.output
    assert f"cancelled {pending} (was pending); quota refunded" in result.output
    result = cli("requests", "cancel", claimed)
    assert "quota not refunded (Request was already being processed by reviewer)" in result.output


def test_bulk_cancel_asks_first_and_yes_skips_the_question(cli: Cli) -> None:
    high = [cli.create(priority="high") for _ in range(3)]
    low = cli.create(priority="low")
    refused = cli("requests", "cancel", "--priority", "high", input="n\n")
    assert refused.exit_code == 1 and "Cancel 3 request(s)" in refused.stderr
    assert all(cli.hitl.client.requests.get(i).status == "pending" for i in high)
    accepted = cli("requests", "cancel", "--priority", "high", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert all(cli.hitl.client.requests.get(i).status == "cancelled" for i in high)
    assert "3 call(s) refunded" in accepted.stderr
    again = cli("requests", "cancel", "--priority", "high", "--yes")
    assert again.exit_code == 0 and "nothing to cancel" in again.output
    silent = cli("requests", "cancel", "--status", "pending", "--yes")
    assert silent.exit_code == 0 and low in silent.output


def test_bulk_cancel_goes_on_past_one_that_was_answered(cli: Cli) -> None:
    first, second = cli.create(), cli.create()
    cli.hitl.reviewer.respond(first, True)
    result = cli("requests", "cancel", first, second)
    assert result.exit_code == 1
    assert f"cancelled {second}" in result.output
    assert "Request cannot be cancelled in current state" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["requests", "list", "--status", "done"],
        ["requests", "list", "--created-after", "yesterday"],
        ["requests", "list", "--format", "xml"],
        ["requests", "cancel"],
        ["requests", "cancel", "abc", "--status", "pending"],
        ["requests", "cancel", "--status", "completed"],
        ["requests", "update", "0123456789abcdef01234567", "--timeout", "5"],
        ["requests", "update", "0123456789abcdef01234567", "--config", "{bad"],
        ["requests", "update", "0123456789abcdef01234567"],
        ["loops", "create"],
        ["stats", "--priority", "p0"],
    ],
)
def test_bad_flags_exit_2(cli: Cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "Error" in result.stderr


def test_a_missing_key_is_a_usage_error_naming_the_env_var(cli: Cli) -> None:
    result = CliRunner().invoke(main, ["check"], env={"HITL_API_KEY": ""})
    assert result.exit_code == 2 and "HITL_API_KEY" in result.stderr


def test_api_errors_are_one_line_naming_the_host_and_the_fix(cli: Cli) -> None:
    missing = cli("requests", "get", "0123456789abcdef01234567")
    assert missing.exit_code == 1
    (line,) = missing.stderr.strip().splitlines()
    assert "testserver answered 404 Request not found" in line and "Fix: check the id" in line
    bad_key = cli("check", HITL_API_KEY="wrong-key")
    (line,) = bad_key.stderr.strip().splitlines()
    assert bad_key.exit_code == 1 and "401" in line and "HITL_API_KEY" in line
    bad_id = cli("requests", "cancel", "nope")
    assert bad_id.exit_code == 1 and "Invalid request ID format" in bad_id.stderr
    assert "wrong-key" not in bad_key.stderr + bad_key.output


def test_a_base_url_without_v1_gets_a_hint(cli: Cli) -> None:
    result = cli("check", HITL_BASE_URL="http://testserver")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "has no /v1; use http://testserver/v1" in line


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("http://testserver/console/", "http://testserver/console has no /v1"),
        ("http://testserver/api", "http://testserver/api has no /v1"),
        ("http://testserver/v1/api/requests", "does not end in /v1"),
    ],
)
def test_a_console_or_endpoint_url_gets_a_hint_naming_the_v1_root(
    cli: Cli, base_url: str, problem: str
) -> None:
    # Pasted from the console's address bar or an endpoint's docs: the fix is the /v1 root,
    # not the pasted URL with /v1 appended.
    result = cli("check", HITL_BASE_URL=base_url)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith(f"{problem}; use http://testserver/v1"), line


def test_the_v1_root_hint_keeps_a_path_prefix() -> None:
    from hitl_agent.cli._api import api_root_hint

    assert api_root_hint("https://proxy.example/hitl/v1/") is None
    for base_url in ("https://proxy.example/hitl", "https://proxy.example/hitl/console/"):
        hint = api_root_hint(base_url)
        assert hint is not None and hint.endswith("use https://proxy.example/hitl/v1")


def test_connection_errors_name_the_host() -> None:
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    env = {"HITL_API_KEY": "k", "HITL_BASE_URL": "http://127.0.0.1:9/v1"}
    result = CliRunner().invoke(main, ["requests", "list"], env=env)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "cannot reach 127.0.0.1:9" in line and "HITL_BASE_URL" in line
