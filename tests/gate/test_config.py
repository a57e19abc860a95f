"""Grouped settings: ReviewDefaults, CallbackConfig and PollConfig, and their flat spellings.

Both spellings build the same keeper and dispatcher; one setting given both ways is a
ConfigError naming the flat keyword; the defaults are the ones the flat keywords had; and
``review()`` takes ``spec()``'s keywords explicitly, so mypy checks its callers.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitl_agent import (
    CallbackConfig,
    ConfigError,
    Gatekeeper,
    HITLClient,
    PollConfig,
    ReviewDefaults,
)
from hitl_agent.dispatch import CallBudget, Dispatcher, Poller, Resolver
from hitl_agent.gate import ReviewSpec
from hitl_agent.ledger import SqliteLedger

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 43
URL = "https://agent.example/hooks/hitl"


@pytest.fixture
def client() -> Iterator[HITLClient]:
    with HITLClient(api_key="k" * 20, base_url="http://127.0.0.1:9/v1") as made:
        yield made


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    made = SqliteLedger(str(tmp_path / "hitl.db"))
    yield made
    made.close()


def _keeper(client: HITLClient, ledger: SqliteLedger, **settings: Any) -> Gatekeeper:
    return Gatekeeper(client=client, loop_id="loop", ledger=ledger, **settings)


def _settings(keeper: Gatekeeper) -> dict[str, Any]:
    """Everything the settings decide, as a keeper and its dispatchers hold them."""
    dispatcher = keeper.dispatcher()
    return {
        "priority": keeper.priority,
        "timeout_seconds": keeper.timeout_seconds,
        "approve_on_timeout": keeper.approve_on_timeout,
        "approve_values": keeper.approve_values,
        "callback_url": keeper.callback_url,
        "poll_interval": keeper.poll_interval,
        "budget": keeper.budget,
        "defaults": keeper.defaults,
        "callbacks": keeper.callbacks,
        "polling": keeper.polling,
        "spec": keeper.spec("Refund $250?"),
        "target": (keeper._target.callback_url, keeper._target.callback_secret),
        "blocking": (
            keeper._blocking.poller.poll_interval,
            keeper._blocking.poller.deadline_grace,
            keeper._blocking.budget,
        ),
        "dispatcher": (
            dispatcher.receiver.path,
            dispatcher.poller.poll_interval,
            dispatcher.poller.deadline_grace,
            dispatcher.poller.webhooks,
            dispatcher.budget,
        ),
    }


# -- defaults ------------------------------------------------------------------------------


def test_the_defaults_are_the_ones_the_flat_keywords_had() -> None:
    spec = ReviewSpec.build("x")
    assert ReviewDefaults() == ReviewDefaults(
        priority=spec.priority,
        timeout_seconds=spec.timeout_seconds,
        approve_on_timeout=spec.approve_on_timeout,
        approve_values=None,
    )
    assert (ReviewDefaults().priority, ReviewDefaults().timeout_seconds) == ("medium", 3600)
    assert CallbackConfig() == CallbackConfig(url=None, secret=None, path=None)
    assert PollConfig() == PollConfig(interval=None, budget=None, deadline_grace=300.0)
    poller = inspect.signature(Poller).parameters
    assert PollConfig().deadline_grace == poller["deadline_grace"].default


def test_a_keeper_without_settings_is_todays(client: HITLClient, ledger: SqliteLedger) -> None:
    keeper = _keeper(client, ledger)
    assert (keeper.priority, keeper.timeout_seconds) == ("medium", 3600)
    assert (keeper.approve_on_timeout, keeper.approve_values) == (False, None)
    assert (keeper.callback_url, keeper.poll_interval) == (None, None)
    assert keeper.spec("Refund?") == ReviewSpec.build("Refund?")
    dispatcher = keeper.dispatcher()
    assert dispatcher.receiver.path == "/hitl"
    assert (dispatcher.poller.poll_interval, dispatcher.poller.deadline_grace) == (None, 300.0)
    assert dispatcher.budget is keeper.budget and keeper._blocking.budget is keeper.budget
    assert keeper.defaults == ReviewDefaults()
    assert keeper.polling == PollConfig(budget=keeper.budget)


# -- both spellings --------------------------------------------------------------------------


def test_grouped_and_flat_spellings_build_the_same_keeper(
    client: HITLClient, ledger: SqliteLedger
) -> None:
    budget = CallBudget(limit=50)
    flat = _keeper(
        client,
        ledger,
        priority="high",
        timeout_seconds=600,
        approve_on_timeout=True,
        approve_values=["ship"],
        callback_url=URL + "/",
        callback_secret=SECRET,
        budget=budget,
        poll_interval=7.5,
    )
    grouped = _keeper(
        client,
        ledger,
        defaults=ReviewDefaults(
            priority="high", timeout_seconds=600, approve_on_timeout=True, approve_values=["ship"]
        ),
        callbacks=CallbackConfig(url=URL + "/", secret=SECRET),
        polling=PollConfig(interval=7.5, budget=budget),
    )
    assert _settings(flat) == _settings(grouped)
    assert grouped.callbacks == CallbackConfig(url=URL, secret=SECRET)
    assert grouped.defaults.approve_values == ("ship",)
    assert grouped.spec("Ship it?").timeout_seconds == 600
    # None is a value here (no timeout), not "not given"
    for keeper in (
        _keeper(client, ledger, timeout_seconds=None),
        _keeper(client, ledger, defaults=ReviewDefaults(timeout_seconds=None)),
    ):
        assert keeper.timeout_seconds is None
        assert keeper.spec("Later?", processing_type="deferred").timeout_seconds is None


def test_the_grouped_spelling_also_reaches_the_dispatchers(
    client: HITLClient, ledger: SqliteLedger
) -> None:
    keeper = _keeper(
        client,
        ledger,
        callbacks=CallbackConfig(url=URL, secret=SECRET, path="/hooks/hitl"),
        polling=PollConfig(interval=2.0, deadline_grace=30.0),
    )
    dispatcher = keeper.dispatcher()
    assert dispatcher.receiver.path == "/hooks/hitl"
    assert (dispatcher.poller.poll_interval, dispatcher.poller.deadline_grace) == (2.0, 30.0)
    assert keeper._blocking.poller.deadline_grace == 30.0
    # a dispatcher's own keywords still override the keeper's
    other = keeper.dispatcher(poll_interval=3.0, deadline_grace=60.0)
    assert (other.poller.poll_interval, other.poller.deadline_grace) == (3.0, 60.0)


def test_grouped_and_flat_spellings_build_the_same_dispatcher(
    client: HITLClient, ledger: SqliteLedger
) -> None:
    budget = CallBudget(limit=40)
    common: dict[str, Any] = {
        "ledger": ledger,
        "client": client,
        "resumer": _NoResumer(),
        "loop_id": "loop",
    }
    flat = Dispatcher(
        **common,
        callback_url=URL,
        callback_path="/hooks/hitl",
        budget=budget,
        poll_interval=4.0,
        deadline_grace=10.0,
    )
    grouped = Dispatcher(
        **common,
        callbacks=CallbackConfig(url=URL, path="/hooks/hitl"),
        polling=PollConfig(interval=4.0, budget=budget, deadline_grace=10.0),
    )
    for made in (flat, grouped):
        assert made.receiver.path == "/hooks/hitl"
        assert (made.poller.poll_interval, made.poller.deadline_grace) == (4.0, 10.0)
        assert made.budget is budget and made.poll_interval == 4.0
    assert flat.polling == grouped.polling == PollConfig(4.0, budget, 10.0)
    assert flat.callbacks == grouped.callbacks == CallbackConfig(url=URL, path="/hooks/hitl")
    plain = Dispatcher(**common)
    assert (plain.receiver.path, plain.poller.deadline_grace) == ("/hitl", 300.0)


class _NoResumer:
    def resume(self, record: Any, decisions: Any) -> bool:
        return False

    async def aresume(self, record: Any, decisions: Any) -> bool:
        return False

    def finished(self, record: Any) -> bool:
        return False

    async def afinished(self, record: Any) -> bool:
        return False


# -- conflicts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flat", "group"),
    [
        ({"priority": "high"}, {"defaults": ReviewDefaults()}),
        ({"timeout_seconds": None}, {"defaults": ReviewDefaults()}),
        ({"approve_on_timeout": False}, {"defaults": ReviewDefaults()}),
        ({"approve_values": ["ok"]}, {"defaults": ReviewDefaults()}),
        ({"callback_url": URL}, {"callbacks": CallbackConfig(url=URL)}),
        ({"callback_secret": SECRET}, {"callbacks": CallbackConfig()}),
        ({"budget": CallBudget()}, {"polling": PollConfig()}),
        ({"poll_interval": 2.0}, {"polling": PollConfig(interval=2.0)}),
    ],
)
def test_one_setting_given_both_ways_is_a_config_error(
    client: HITLClient, ledger: SqliteLedger, flat: dict[str, Any], group: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError) as raised:
        _keeper(client, ledger, **flat, **group)
    (keyword,) = flat
    (argument,) = group
    assert raised.value.field == keyword
    assert f"as {keyword}= and in {argument}=" in raised.value.problem


@pytest.mark.parametrize(
    ("flat", "group"),
    [
        ({"callback_url": URL}, {"callbacks": CallbackConfig()}),
        ({"callback_path": "/x"}, {"callbacks": CallbackConfig()}),
        ({"budget": CallBudget()}, {"polling": PollConfig()}),
        ({"poll_interval": 1.0}, {"polling": PollConfig()}),
        ({"deadline_grace": 1.0}, {"polling": PollConfig()}),
    ],
)
def test_a_dispatcher_setting_given_both_ways_is_a_config_error(
    client: HITLClient, ledger: SqliteLedger, flat: dict[str, Any], group: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match="given twice") as raised:
        Dispatcher(ledger=ledger, client=client, resumer=_NoResumer(), loop_id="l", **flat, **group)
    assert raised.value.field == next(iter(flat))


def test_a_group_of_the_wrong_type_is_a_config_error(
    client: HITLClient, ledger: SqliteLedger
) -> None:
    with pytest.raises(ConfigError, match="expected a PollConfig") as raised:
        _keeper(client, ledger, polling={"interval": 2.0})
    assert raised.value.field == "polling"


def test_the_secret_stays_out_of_the_repr() -> None:
    config = CallbackConfig(url=URL, secret=SECRET)
    assert SECRET not in repr(config) and URL in repr(config)


def test_settings_are_frozen_and_hashable() -> None:
    defaults = ReviewDefaults(approve_values=["ship", "go"])
    with pytest.raises(AttributeError):
        defaults.priority = "low"  # type: ignore[misc]
    assert hash(defaults) == hash(ReviewDefaults(approve_values=("ship", "go")))


# -- one name for the poll interval ------------------------------------------------------------


def test_the_poller_takes_poll_interval_and_its_old_name(ledger: SqliteLedger) -> None:
    resolver = Resolver(
        ledger=ledger,
        client=None,  # type: ignore[arg-type]  # a poller that never sweeps
        resumer=_NoResumer(),
        budget=CallBudget(),
        owner="test",
    )
    assert Poller(resolver, poll_interval=2.0).poll_interval == 2.0
    old = Poller(resolver, interval=3.0)
    assert old.poll_interval == old.interval == 3.0
    with pytest.raises(ConfigError, match="given twice"):
        Poller(resolver, poll_interval=2.0, interval=3.0)
    for signature in (Gatekeeper, Gatekeeper.dispatcher, Dispatcher, Poller):
        assert "poll_interval" in inspect.signature(signature).parameters


# -- review() is typed -------------------------------------------------------------------------


def test_review_takes_the_keywords_spec_takes() -> None:
    spec = list(inspect.signature(Gatekeeper.spec).parameters.values())[2:]
    for method in (Gatekeeper.review, Gatekeeper.areview):
        parameters = inspect.signature(method).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        for expected in spec:
            got = parameters[expected.name]
            assert (got.kind, got.default, got.annotation) == (
                expected.kind,
                expected.default,
                expected.annotation,
            ), expected.name


def test_mypy_catches_a_typo_in_a_review_keyword(tmp_path: Path) -> None:
    # The lowest-LangGraph run (make test-langgraph-lowest) installs no mypy; `make test`
    # and the canary do, and run this.
    pytest.importorskip("mypy")
    snippet = tmp_path / "caller.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from typing import assert_type

            from hitl_agent import Decision, Gatekeeper


            async def ask(keeper: Gatekeeper) -> None:
                keeper.review("Refund?", priorty="high")
                keeper.review("Refund?", timeout_seconds="60")
                assert_type(keeper.review("Refund?", priority="high"), Decision)
                assert_type(await keeper.areview("Refund?", summary="refund"), Decision)
                await keeper.areview("Refund?", respnse_type="text")
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(snippet)],
        capture_output=True,
        text=True,
        cwd=ROOT,  # the project's mypy config and warm cache
        timeout=300,
    )
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 3, out.stdout + out.stderr
    assert 'Unexpected keyword argument "priorty" for "review"' in errors[0]
    assert '"timeout_seconds" to "review"' in errors[1]
    assert 'Unexpected keyword argument "respnse_type" for "areview"' in errors[2]
