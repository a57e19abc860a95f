"""Making invisible characters visible: one rule for what the gate renders and what the local
server's console and terminal reviewer show (no IO, no dependencies)."""

from __future__ import annotations

import re

__all__ = ["reveal_invisible"]

# Bidi embeddings/overrides/isolates and marks (CVE-2021-42574), zero-width and other
# default-ignorable characters, line/paragraph separators (they break lines invisibly in some
# renderers), interlinear annotation controls, and every C0/C1 control except tab and newline.
_INVISIBLE = "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c" + (
    "\u200b-\u200d\u2060-\u2064\ufeff\u180e\u00ad\u034f\u115f\u1160\u3164\uffa0"
    "\u2028\u2029"
    "\ufff9-\ufffb"
)
_WITH_CR = re.compile(f"[{_INVISIBLE}\x00-\x08\x0b-\x1f\x7f-\x9f]")
_KEEP_CR = re.compile(f"[{_INVISIBLE}\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def reveal_invisible(text: str, *, keep_cr: bool = False) -> str:
    """Replace each invisible or direction-changing character by a visible ``⟦U+XXXX⟧``.

    Args:
        text: untrusted text.
        keep_cr: leave carriage returns alone (markdown that arrives with CRLF line ends);
            otherwise a CR is revealed too, since it can hide text in some viewers.
    """
    pattern = _KEEP_CR if keep_cr else _WITH_CR
    return pattern.sub(lambda m: f"⟦U+{ord(m.group()):04X}⟧", text)
