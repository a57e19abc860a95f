"""The ``hitl-agent`` commands in docs/cli.md run as written, against the local server.

bash reads each command (quotes, ``$``, line continuations: what a user's shell does to it),
then the argument list it produced runs through click's CliRunner against ``local_hitl()``.
Placeholders in capitals (``REQUEST_ID``) are replaced with real ids first.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from markdown_it import MarkdownIt

from .conftest import Cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def commands(path: Path, prefix: str) -> list[str]:
    """The lines of ``bash`` fences that start with ``prefix``, continuations joined."""
    found: list[str] = []
    for token in MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8")):
        if token.type != "fence" or token.info.strip() != "bash":
            continue
        for line in token.content.replace("\\\n", " ").splitlines():
            if line.startswith(prefix):
                found.append(line)
    return found


def shell_words(command: str) -> list[str]:
    """The argv bash makes of ``command`` (after ``hitl-agent``), expansions included."""
    program, _, rest = command.partition(" ")
    assert program == "hitl-agent", command
    script = f"printf '%s\\0' {rest}"
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    return done.stdout.decode().split("\0")[:-1]


def test_the_requests_update_examples_run_as_written(cli: Cli) -> None:
    request_id = cli.create()
    updates = commands(DOC, "hitl-agent requests update")
    assert len(updates) == 2, updates

    for command in updates:
        args = shell_words(command.replace("REQUEST_ID", request_id))
        result = cli(*args)
        assert result.exit_code == 0, f"{command}\n{result.output}"

    updated = cli.hitl.client.requests.get(request_id)
    assert updated.priority == "critical"
    assert updated.request_text == "Refund $120 now?"  # as typed: the shell left the $ alone
    assert updated.response_type == "single_select"
    assert updated.default_response == "reject"
