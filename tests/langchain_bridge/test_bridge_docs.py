"""Every Python block of docs/bridge.md runs as written (offline)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "bridge.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


def test_the_doc_has_runnable_blocks() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_block_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    block = BLOCKS[index]
    if "import" not in block:
        # The two-line adoption: run it after the complete example's setup.
        full = next(b for b in BLOCKS if "local_hitl" in b)
        setup = full.split("    bridge = keeper.bridge(agent)")[0]
        body = "\n".join("    " + line for line in block.strip().splitlines())
        block = f"{setup}{body}\n    keeper.close()\n"
    exec(compile(block, f"{DOC.name}[{index}]", "exec"), {"__name__": "__doc_block__"})
    if "print(" in BLOCKS[index]:
        out = capsys.readouterr().out
        assert "Done." in out
        assert "execute" in out
