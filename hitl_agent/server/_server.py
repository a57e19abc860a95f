"""LocalHITLServer: the state and behaviour behind the local API, callable from Python too.

The HTTP routes, the reviewer console and tests all go through this one object, so the API,
the console and ``hitl_agent.testing`` can never disagree about what a transition does.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import httpx2

from ..models.loops import CreateLoopParams
from ..models.workflows import WorkflowDefinition, WorkflowFile
from . import _accounts, _reviewing, _workflows
from ._accounts import Caller, KeyAccount, ReviewerAccount
from ._callbacks import CallbackDeliverer
from ._errors import ServerError
from ._limits import check_request_sizes
from ._loops import create_loop
from ._storage import Storage
from ._url_policy import CallbackPolicy, RefusedCallback
from ._util import hash_secret, new_secret
from ._workflows import DEFAULT_WORKFLOW

__all__ = ["Bootstrap", "LocalHITLServer", "render_request_html"]

log = logging.getLogger("hitl_agent.server")
T = TypeVar("T")

_OWNER_EMAIL = "developer@localhost"
_REVIEWER_EMAIL = "reviewer@localhost"
_MAX_KNOWN_KEYS = 1024


def render_request_html(text: str) -> str:
    """The request text as HTML: the console's Markdown renderer, or escaped text without it."""
    try:
        from .console import render_markdown
    except ImportError:
        # The console is optional; plain escaped text keeps the reviewer API usable without it.
        return "<p>" + html.escape(text).replace("\n", "<br>\n") + "</p>"
    return str(render_markdown(text))


@dataclass(frozen=True)
class Bootstrap:
    """What :meth:`LocalHITLServer.bootstrap` set up: a key, its loop and a reviewer."""

    api_key: str = field(repr=False)
    loop_id: str
    reviewer_token: str = field(repr=False)
    reviewer_id: str
    reviewer_email: str
    workflow_id: str | None = None
    """The default workflow (trigger → human review, Approve/Reject, 1 h, default Reject)."""


class LocalHITLServer:
    """The embedded HITL.sh-compatible server's state: accounts, loops, requests, callbacks.

    Build it through :func:`hitl_agent.server.create_app`, which puts it on ``app.state.hitl``.
    Every method is thread-safe.

    Attributes:
        clock: the time source (epoch seconds).
        rate_limit: calls per hour per API key, or None for no limit.
        claim_timeout_seconds: how long a reviewer's claim lasts.
        callback_policy: where callbacks may go (``allow_private`` opens private ranges).
    """

    def __init__(
        self,
        db: str | os.PathLike[str] = ":memory:",
        *,
        clock: Callable[[], float] | None = None,
        signing_secret: str | None = None,
        rate_limit: int | None = None,
        callback_client: httpx2.AsyncClient | httpx.AsyncClient | None = None,
        callback_base_delay: float = 1.0,
        claim_timeout_seconds: float = 300.0,
        callback_timeout: float = 10.0,
        allow_private_callbacks: bool = False,
        plain_callbacks: bool = False,
    ) -> None:
        if rate_limit is not None and rate_limit < 1:
            raise ValueError(f"rate_limit: {rate_limit} is below 1. Fix: pass None or >= 1")
        if claim_timeout_seconds <= 0:
            raise ValueError("claim_timeout_seconds: must be positive. Fix: pass e.g. 300")
        self.storage = Storage(db)
        self._callers: dict[str, Caller] = {}
        self.clock: Callable[[], float] = clock or time.time
        self.rate_limit = rate_limit
        self.claim_timeout_seconds = claim_timeout_seconds
        self.callback_policy = CallbackPolicy(allow_private=allow_private_callbacks)
        self.deliverer = CallbackDeliverer(
            self.storage,
            self.clock,
            signing_secret=signing_secret,
            client=callback_client,
            base_delay=callback_base_delay,
            timeout=callback_timeout,
            policy=self.callback_policy,
            plain_callbacks=plain_callbacks,
        )
        self._wake_loop: asyncio.AbstractEventLoop | None = None
        self._wake_event: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"LocalHITLServer(db={self.storage.path!r})"

    def run(self, operation: Callable[..., T], *args: Any) -> T:
        """Run ``operation(conn, now, *args)`` in one transaction; the routes use this."""
        with self.storage.transaction() as conn:
            return operation(conn, self.clock(), *args)

    # Accounts ---------------------------------------------------------------------------

    def bootstrap(
        self,
        api_key: str | None = None,
        reviewer_token: str | None = None,
        loop_name: str = "Local approvals",
        *,
        default_workflow: bool = False,
    ) -> Bootstrap:
        """Make sure there is an API key, a loop it owns and a reviewer in that loop.

        Idempotent across restarts on the same database: a key or token passed in is
        registered once (stored hashed); without them, the pair generated the first time is
        reused (generated credentials are kept in the database's ``meta`` table so that
        ``hitl-agent serve`` can print them again). An existing loop named ``loop_name``
        owned by the key's user is reused. With ``default_workflow`` the key's user also
        owns the default workflow (:data:`DEFAULT_WORKFLOW`), the reviewer its member.
        """
        with self.storage.transaction() as conn:
            now = self.clock()
            if api_key is None:
                api_key = _meta(conn, "bootstrap_api_key") or new_secret("hitl_local_")
                _set_meta(conn, "bootstrap_api_key", api_key)
            if reviewer_token is None:
                reviewer_token = _meta(conn, "bootstrap_reviewer_token") or new_secret("hitl_rev_")
                _set_meta(conn, "bootstrap_reviewer_token", reviewer_token)
            key = _accounts.add_api_key(conn, now, api_key, email=_OWNER_EMAIL, user_id=None)
            row = conn.execute(
                "SELECT id FROM loops WHERE creator_id = ? AND name = ? ORDER BY created_at "
                "LIMIT 1",
                (key.user_id, loop_name),
            ).fetchone()
            if row is None:
                params = CreateLoopParams(name=loop_name, description="Created by bootstrap")
                loop_id = str(create_loop(conn, now, key.user_id, params)["loop"]["id"])
            else:
                loop_id = str(row["id"])
            owner = _accounts.authenticate_reviewer(conn, reviewer_token)
            email = owner.email if owner is not None else _REVIEWER_EMAIL
            reviewer = _accounts.add_reviewer(
                conn, now, email, reviewer_token, [loop_id], name="Local Reviewer"
            )
            workflow_id = None
            if default_workflow:
                workflow_id = _workflows.register_workflow(
                    conn, now, key.user_id, DEFAULT_WORKFLOW, [reviewer.email]
                )
        return Bootstrap(api_key, loop_id, reviewer_token, reviewer.id, reviewer.email, workflow_id)

    def add_workflows(
        self,
        user_id: str,
        workflows: WorkflowFile | WorkflowDefinition | Any,
        *,
        default_reviewers: Iterable[str] = (),
    ) -> list[str]:
        """Register workflows owned by ``user_id`` (a :class:`WorkflowFile`, one
        :class:`WorkflowDefinition`, or a file's parsed JSON/YAML data); their ids.

        A Human Review node's ``reviewers`` and ``groups`` (emails) become its members; a
        node that names none gets ``default_reviewers`` (``hitl-agent serve``: the
        bootstrap reviewer). Registering an id again replaces its definition.

        Raises:
            ConfigError: the data is not a valid workflow file (the field named).
        """
        if isinstance(workflows, WorkflowDefinition):
            workflows = WorkflowFile(workflows=[workflows])
        elif not isinstance(workflows, WorkflowFile):
            workflows = WorkflowFile.parse(workflows)
        _workflows.check_workflows(workflows)
        fallback = list(default_reviewers)
        ids: list[str] = []
        with self.storage.transaction() as conn:
            now = self.clock()
            for definition in workflows.workflows:
                node = definition.review
                emails = [*node.reviewers]
                for group in node.groups:
                    emails.extend(workflows.groups[group])
                ids.append(
                    _workflows.register_workflow(
                        conn, now, user_id, definition, dict.fromkeys(emails or fallback)
                    )
                )
        return ids

    def workflows(self) -> list[dict[str, Any]]:
        """Every workflow with its execution count (the console's and the banner's list)."""
        with self.storage.read() as conn:
            return _workflows.list_workflows(conn)

    def add_api_key(
        self,
        api_key: str | None = None,
        *,
        email: str | None = None,
        user_id: str | None = None,
    ) -> KeyAccount:
        """Register an API key (generated when None); a key that exists returns its account.

        The key belongs to ``user_id`` when given, else to the user with ``email`` (created
        when missing), else to a new user of its own: by default two keys are two callers who
        cannot see each other's loops and requests.
        """
        key = api_key or new_secret("hitl_local_")
        if email is None:
            email = f"developer+{hash_secret(key)[:8]}@localhost"
        with self.storage.transaction() as conn:
            return _accounts.add_api_key(conn, self.clock(), key, email=email, user_id=user_id)

    def create_loop(
        self, user_id: str, name: str, *, icon: str = "shield-check", description: str | None = None
    ) -> str:
        """Create a loop owned by ``user_id`` (e.g. ``add_api_key(...).user_id``); its id."""
        params = CreateLoopParams(name=name, icon=icon, description=description)
        with self.storage.transaction() as conn:
            return str(create_loop(conn, self.clock(), user_id, params)["loop"]["id"])

    def add_reviewer(
        self, email: str, token: str, loop_ids: Iterable[str] = (), *, name: str | None = None
    ) -> ReviewerAccount:
        """Make ``email`` a reviewer holding ``token``, an active member of ``loop_ids``."""
        with self.storage.transaction() as conn:
            return _accounts.add_reviewer(conn, self.clock(), email, token, loop_ids, name)

    def authenticate_key(self, api_key: str) -> Caller | None:
        """The caller owning ``api_key``, or None.

        Every API call asks this. A key once found stays valid (nothing here deactivates or
        reassigns a key), so found callers are kept by the key's hash; an unknown key is
        looked up every time and never kept (junk keys cannot grow the memo).
        """
        digest = hash_secret(api_key)
        known = self._callers.get(digest)
        if known is not None:
            return known
        with self.storage.read() as conn:
            caller = _accounts.authenticate_key(conn, api_key)
        if caller is not None and len(self._callers) < _MAX_KNOWN_KEYS:
            self._callers[digest] = caller
        return caller

    def authenticate_reviewer(self, token: str) -> ReviewerAccount | None:
        """The reviewer holding ``token``, or None."""
        with self.storage.read() as conn:
            return _accounts.authenticate_reviewer(conn, token)

    # Reviewing (the console calls these directly) -----------------------------------------

    def queue(self, reviewer: ReviewerAccount, limit: int = 50) -> list[dict[str, Any]]:
        """The reviewer's open requests, critical first then oldest, with ``request_html``."""
        data = self.run(_reviewing.queue, reviewer, limit, render_request_html)
        return list(data["requests"])

    def get_for_reviewer(self, reviewer: ReviewerAccount, request_id: str) -> dict[str, Any]:
        """One request of the reviewer's loops (any status); ServerError 403/404 otherwise."""
        with self.storage.read() as conn:
            data = _reviewing.reviewer_request(conn, reviewer, request_id, render_request_html)
        return dict(data["request"])

    def claim(self, reviewer: ReviewerAccount, request_id: str) -> dict[str, Any]:
        """Claim a request for ``claim_timeout_seconds``; ServerError 409 when taken or closed."""
        data = self.run(
            _reviewing.claim, reviewer, request_id, self.claim_timeout_seconds, render_request_html
        )
        return dict(data["request"])

    def release(self, reviewer: ReviewerAccount, request_id: str) -> dict[str, Any]:
        """Give back this reviewer's claim."""
        return dict(
            self.run(_reviewing.release, reviewer, request_id, render_request_html)["request"]
        )

    def respond(self, reviewer: ReviewerAccount, request_id: str, value: Any) -> dict[str, Any]:
        """Answer a request; ServerError 400 when ``value`` does not fit its response config."""
        data = self.run(_reviewing.respond, reviewer, request_id, value, render_request_html)
        self.wake()
        return dict(data["request"])

    # Scheduler ------------------------------------------------------------------------------

    def check_create_body(self, body: Any) -> None:
        """Refuse a create body by a field's size or by its ``callback_url`` (the SSRF policy).

        Runs before the request model validates the body; ServerError names the field.
        """
        check_request_sizes(body)
        url = body.get("callback_url") if isinstance(body, dict) else None
        if isinstance(url, str):
            try:
                self.callback_policy.check_url(url)
            except RefusedCallback as err:
                raise ServerError(
                    400,
                    "Validation failed",
                    f"callback_url: refused because {err}. Fix: give a public http(s) URL "
                    "(or a loopback one for local development)",
                ) from None

    def sweep(self) -> None:
        """Time out due requests and expire stale claims (one transaction, no network)."""
        with self.storage.transaction() as conn:
            now = self.clock()
            _reviewing.time_out_due(conn, now)
            _reviewing.expire_claims(conn, now)

    async def tick(self) -> None:
        """One scheduler pass: time out due requests, expire stale claims, send due callbacks,
        and wait for the deliveries this pass started (tests; the background scheduler does
        not wait).

        Each due callback gets one attempt per tick; a failed one is retried on a later tick
        once its backoff has passed.
        """
        self.sweep()
        await self.deliverer.deliver_due()

    def wake(self) -> None:
        """Ask the background scheduler for a pass now (after a state change). Thread-safe."""
        loop, event = self._wake_loop, self._wake_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def run_scheduler(self, interval: float) -> None:
        """Tick every ``interval`` seconds, or sooner when woken, until cancelled."""
        self._wake_event = event = asyncio.Event()
        self._wake_loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    # Deliveries run as their own tasks with their own timeout: a slow
                    # receiver never holds up the next sweep or another callback.
                    self.sweep()
                    self.deliverer.start_due()
                except Exception:
                    log.exception("local HITL scheduler pass failed; retrying next interval")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), interval)
                event.clear()
        finally:
            self._wake_loop = self._wake_event = None

    def close(self) -> None:
        """Close the database. Idempotent."""
        self.storage.close()


def _meta(conn: Any, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row["value"])


def _set_meta(conn: Any, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
