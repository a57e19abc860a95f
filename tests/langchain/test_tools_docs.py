"""docs/tools.md: every ``python`` snippet runs as written, in order, and prints what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "tools.md"


def test_python_snippets_run_as_written() -> None:
    blocks = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.S | re.M)
    assert len(blocks) >= 3
    namespace: dict[str, object] = {"__name__": "docs_tools"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    printed = out.getvalue().splitlines()
    assert printed[:3] == [
        "refunded 20 on A-1",
        "refunded 250 on A-2",
        "refunded 90 on A-3 success",
    ]
    assert printed[3].startswith("error Not run: a reviewer rejected")
    assert printed[4] == "refunded 500 on B-1"
    # LangChain conventions: ToolRuntime and the artifact through a ToolNode, one tool run in
    # astream_events, an async-only tool refused before any request.
    assert printed[5:9] == [
        "['order_id']",
        "exported C-1 for order-C-1 {'rows': ['C-1']}",
        "['on_tool_start', 'on_tool_end']",
        "tool 'notify' is async-only (a coroutine and no sync function) 0",
    ]
