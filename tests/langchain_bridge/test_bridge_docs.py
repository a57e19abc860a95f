"""docs/bridge.md's complete example does what it says (tests/test_docs.py runs every block
of every doc; this one also checks what the example prints)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "bridge.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


def test_the_complete_example_approves_and_the_agent_finishes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (example,) = [block for block in BLOCKS if "local_hitl" in block]
    exec(compile(example, f"{DOC.name}[example]", "exec"), {"__name__": "__doc_block__"})
    out = capsys.readouterr().out
    assert "Done." in out
    assert "execute" in out
