"""Worker processes for the cross-process races (importable, so ``spawn`` can start them)."""

from __future__ import annotations

import time
from typing import Any

LEASE = 30.0


def race_worker(spec: Any, index: int, barrier: Any, inbox: Any, outbox: Any) -> None:
    """Open the ledger in this process, then per command: meet the others, race, report.

    A command is ``(kind, request_id, now, jitter)`` with kind ``claim`` or ``decide``;
    ``None`` stops the worker. Results are ``(index, True/False)`` or ``(index, "error…")``.
    """
    ledger = spec.open(max_size=1)
    try:
        while (cmd := inbox.get()) is not None:
            kind, request_id, now, jitter = cmd
            try:
                barrier.wait(timeout=60)
                if jitter:
                    time.sleep(jitter)
                if kind == "decide":
                    ok: Any = ledger.record_decision(request_id, {"by": index}, now=now)
                else:
                    ok = ledger.claim(request_id, f"w{index}", now=now, lease_seconds=LEASE)
            except Exception as exc:  # reported to the parent, which fails the test
                ok = f"error: {exc!r}"
            outbox.put((index, ok))
    finally:
        ledger.close()


def first_start_worker(ledger_url: str, barrier: Any, outbox: Any) -> None:
    """Start a keeper on a (possibly fresh) ledger at the same moment as the others, with
    ``callback_url`` and no secret; report the callback token it derives for one key."""
    from hitl_agent import HITLClient
    from hitl_agent._tokens import derive_token
    from hitl_agent.gate import Gatekeeper

    try:
        with HITLClient("k", base_url="http://mock.invalid/v1") as client:
            barrier.wait(timeout=60)
            with Gatekeeper(
                client=client,
                loop_id="loop",
                ledger=ledger_url,
                callback_url="https://my.app/hitl",
            ) as keeper:
                secret = keeper._target.callback_secret
                assert secret is not None
                outbox.put(derive_token(secret, "the-key"))
    except Exception as exc:  # reported to the parent, which fails the test
        outbox.put(f"error: {exc!r}")
