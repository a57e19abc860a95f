"""Typed, frozen settings that Gatekeeper and Dispatcher take in groups.

::

    keeper = Gatekeeper(
        client=client, loop_id=loop_id, ledger="sqlite:///hitl.db",
        defaults=ReviewDefaults(priority="high", timeout_seconds=600),
        callbacks=CallbackConfig(url="https://my.app/hitl"),
        polling=PollConfig(interval=5.0),
    )

Each setting also has a flat keyword spelling (``priority=``, ``callback_url=``,
``poll_interval=``, ...), accepted as before; one setting given both ways is a
:class:`~hitl_agent.ConfigError` naming the keyword. The defaults are the flat keywords'
defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ._exceptions import ConfigError

if TYPE_CHECKING:
    from .dispatch import CallBudget

__all__ = [
    "UNSET",
    "CallbackConfig",
    "PollConfig",
    "ReviewDefaults",
    "from_keywords",
    "unset_if_none",
]

DEFAULT_PRIORITY: Final = "medium"
DEFAULT_TIMEOUT_SECONDS: Final = 3600
DEFAULT_DEADLINE_GRACE: Final = 300.0
DEFAULT_OUTAGE_BOUND: Final = 86_400.0


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""A keyword that was not passed (where None is a value: ``timeout_seconds=None``)."""


@dataclass(frozen=True)
class ReviewDefaults:
    """What every review of a keeper starts from; each ``review()`` may override any of it.

    Attributes:
        priority: ``low``, ``medium``, ``high`` or ``critical``.
        timeout_seconds: how long the reviewer has (None: no timeout; HITL.sh then needs
            ``processing_type="deferred"``).
        approve_on_timeout: opt-in: a timeout whose default approves, approves. Off by
            default (fail closed).
        approve_values: ``single_select`` option values that approve (None: approve,
            approved, yes, allow).
    """

    priority: str = DEFAULT_PRIORITY
    timeout_seconds: int | None = DEFAULT_TIMEOUT_SECONDS
    approve_on_timeout: bool = False
    approve_values: Iterable[str] | None = None

    def __post_init__(self) -> None:
        values = self.approve_values
        if values is not None and not isinstance(values, str | tuple):
            object.__setattr__(self, "approve_values", tuple(values))  # frozen: hashable


@dataclass(frozen=True)
class CallbackConfig:
    """Where HITL.sh calls back, and how callback tokens are made.

    Attributes:
        url: the public base URL of the dispatcher's receiver; each request gets
            ``{url}/{token}``. None: no callbacks, polling only.
        secret: the HMAC secret for callback tokens (32 bytes or more); default
            ``HITL_CALLBACK_SECRET``, else one kept in the ledger. Only a keeper uses it
            (a dispatcher checks tokens against the ledger). Never shown in the repr.
        path: the path the receiver answers under; default the path of ``url``, else
            ``/hitl``. One that disagrees with ``url`` is a ConfigError.
        signing_secret: HITL.sh's webhook signing secret: when set, the receiver refuses
            (401) every callback without a valid ``X-HITL-Signature-256`` /
            ``X-HITL-Signature`` and a fresh body ``timestamp``. Never shown in the repr.
        trust_signed_bodies: with a ``signing_secret``, take the decision from a verified,
            complete body without the truth GET (off: every callback is only a doorbell;
            see docs/durable-reviews.md for what is trusted).
    """

    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    path: str | None = None
    signing_secret: str | None = field(default=None, repr=False)
    trust_signed_bodies: bool = False


@dataclass(frozen=True)
class PollConfig:
    """How a dispatcher sweeps for answers.

    Attributes:
        interval: the shortest gap between sweeps in seconds (None: 1 s); the schedule
            itself comes from the open rows and the budget.
        budget: the hourly call budget (None: a new one, 90 calls per sliding hour). Pass
            one :class:`~hitl_agent.dispatch.CallBudget` to everything that shares a key.
        deadline_grace: seconds past a request's deadline before its row may be decided
            fail-closed (on HITL.sh's word that there is no decision).
        fail_closed_after_outage: seconds past ``deadline + grace`` after which a row that
            no answer at all could be had for (the API out of reach, 5xx, the quota spent)
            is decided fail-closed anyway (24 h); None: keep waiting for as long as it
            takes. An approval given in time that is found later is logged at ERROR.
    """

    interval: float | None = None
    budget: CallBudget | None = None
    deadline_grace: float = DEFAULT_DEADLINE_GRACE
    fail_closed_after_outage: float | None = DEFAULT_OUTAGE_BOUND


C = TypeVar("C", ReviewDefaults, CallbackConfig, PollConfig)


def from_keywords(
    config: type[C], given: C | None, argument: str, flat: Mapping[str, tuple[str, Any]]
) -> C:
    """``given``, or a ``config`` built from the flat keywords that were passed.

    Args:
        config: the settings class.
        given: what was passed as ``argument`` (None: not passed).
        argument: the grouped keyword's name (``defaults``, ``callbacks``, ``polling``).
        flat: each flat keyword -> (its field of ``config``, the value passed or UNSET).

    Raises:
        ConfigError: ``given`` and a flat keyword of its group were both passed (naming
            the keyword), or ``given`` is not a ``config``.
    """
    spelled = {keyword: pair for keyword, pair in flat.items() if pair[1] is not UNSET}
    if given is None:
        return config(**dict(spelled.values()))
    if not isinstance(given, config):
        raise ConfigError(
            argument,
            f"expected a {config.__name__}, got {type(given).__name__}",
            f"pass {argument}={config.__name__}(...)",
        )
    if spelled:
        keyword, (name, _) = next(iter(spelled.items()))
        raise ConfigError(
            keyword,
            f"given twice: as {keyword}= and in {argument}={config.__name__}(...)",
            f"pass it once, e.g. {argument}={config.__name__}({name}=...)",
        )
    return given


def unset_if_none(value: Any) -> Any:
    """A flat keyword whose default is None: UNSET when it was not passed."""
    return UNSET if value is None else value
