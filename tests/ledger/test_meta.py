"""Shared settings (``ensure_meta``) and the callback secret generated into them.

With ``callback_url`` and no secret, a keeper generates one and keeps it in the ledger; every
replica on a shared ledger derives the same tokens, also when they all start for the first
time at once (threads and processes, SQLite and PostgreSQL). A given secret shorter than 32
bytes is refused, and no secret ever reaches a repr or a log line.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pg_support import PG_URL, require_postgres

from hitl_agent import ConfigError, HITLClient
from hitl_agent._tokens import derive_token
from hitl_agent.gate import Gatekeeper
from hitl_agent.ledger import Ledger

from ._workers import first_start_worker
from .conftest import BACKENDS, drop_schema

PROCESSES = 3
THREADS = 8


def test_ensure_meta_first_value_wins(ledger: Ledger) -> None:
    assert ledger.get_meta("a") is None
    assert ledger.ensure_meta("a", "one") == "one"
    assert ledger.ensure_meta("a", "two") == "one"
    assert ledger.get_meta("a") == "one"
    assert ledger.ensure_meta("b", "x" * 10_000) == "x" * 10_000


def test_ensure_meta_threads_agree(ledger: Ledger) -> None:
    barrier = threading.Barrier(THREADS)

    def racer(index: int) -> str:
        barrier.wait(timeout=30)
        return ledger.ensure_meta("race", f"value-{index}")

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(racer, range(THREADS)))
    assert len(set(results)) == 1 and results[0].startswith("value-")
    assert ledger.get_meta("race") == results[0]


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ledger URL nobody has set up yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    require_postgres()
    schema = f"hitl_meta_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{PG_URL}?schema={schema}"
    finally:
        drop_schema(schema)


def test_concurrent_first_starts_derive_the_same_tokens(fresh_url: str) -> None:
    """N processes start keepers on a fresh ledger at once: one secret, one token."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    outbox = ctx.Queue()
    procs = [
        ctx.Process(target=first_start_worker, args=(fresh_url, barrier, outbox), daemon=True)
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    try:
        tokens = [outbox.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
    assert not [t for t in tokens if t.startswith("error")], tokens
    assert len(set(tokens)) == 1, tokens
    # A later replica (and a restart) reads the same secret.
    with (
        HITLClient("k", base_url="http://mock.invalid/v1") as client,
        Gatekeeper(
            client=client, loop_id="l", ledger=fresh_url, callback_url="https://my.app/hitl"
        ) as late,
    ):
        assert late._target.callback_secret is not None
        assert derive_token(late._target.callback_secret, "the-key") == tokens[0]


def test_generated_secret_is_strong_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("HITL_CALLBACK_SECRET", raising=False)
    url = f"sqlite:///{tmp_path}/l.db"
    with (
        caplog.at_level(logging.DEBUG),
        HITLClient("k", base_url="http://mock.invalid/v1") as client,
        Gatekeeper(client=client, loop_id="l", ledger=url, callback_url="https://a.b/") as keeper,
    ):
        secret = keeper._target.callback_secret
        assert secret is not None and len(secret.encode()) >= 32
        assert keeper.ledger.get_meta("callback_secret") == secret
        shown = [repr(keeper), repr(keeper._target), repr(keeper.ledger), caplog.text]
        assert not [s for s in shown if secret in s]
        # Polling only (no callback_url): nothing is generated.
    with (
        HITLClient("k", base_url="http://mock.invalid/v1") as client,
        Gatekeeper(client=client, loop_id="l", ledger=f"sqlite:///{tmp_path}/p.db") as polling,
    ):
        assert polling._target.callback_secret is None
        assert polling.ledger.get_meta("callback_secret") is None


def test_a_given_secret_wins_and_short_ones_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/l.db"
    with HITLClient("k", base_url="http://mock.invalid/v1") as client:
        given = "g" * 32
        with Gatekeeper(
            client=client,
            loop_id="l",
            ledger=url,
            callback_url="https://a.b",
            callback_secret=given,
        ) as keeper:
            assert keeper._target.callback_secret == given
            assert keeper.ledger.get_meta("callback_secret") is None  # not stored
        for field, kwargs, env in [
            ("callback_secret", {"callback_secret": "s" * 31}, None),
            ("callback_secret", {"callback_secret": "é" * 15}, None),  # 30 bytes
            ("HITL_CALLBACK_SECRET", {}, "e" * 16),
        ]:
            if env is None:
                monkeypatch.delenv("HITL_CALLBACK_SECRET", raising=False)
            else:
                monkeypatch.setenv("HITL_CALLBACK_SECRET", env)
            with pytest.raises(ConfigError, match=f"{field}.*at least 32 bytes") as raised:
                Gatekeeper(
                    client=client, loop_id="l", ledger=url, callback_url="https://a.b", **kwargs
                )
            secret = kwargs.get("callback_secret") or env
            assert secret is not None and secret not in str(raised.value)
        monkeypatch.setenv("HITL_CALLBACK_SECRET", "v" * 40)
        with Gatekeeper(client=client, loop_id="l", ledger=url, callback_url="https://a.b") as k:
            assert k._target.callback_secret == "v" * 40


def test_a_ledger_without_shared_settings_needs_an_explicit_secret(tmp_path: Path) -> None:
    from hitl_agent.ledger import SqliteLedger

    class Plain(SqliteLedger):
        ensure_meta = Ledger.ensure_meta  # a custom backend that keeps no settings

    with Plain(tmp_path / "plain.db") as plain, HITLClient("k", base_url="http://x/v1") as client:
        plain.setup()
        with pytest.raises(ConfigError, match=r"callback_secret.*cannot keep a generated one"):
            Gatekeeper(client=client, loop_id="l", ledger=plain, callback_url="https://a.b")
        keeper = Gatekeeper(
            client=client,
            loop_id="l",
            ledger=plain,
            callback_url="https://a.b",
            callback_secret="z" * 32,
        )
        assert keeper._target.callback_secret == "z" * 32
