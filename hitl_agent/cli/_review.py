"""``hitl-agent review``: answer the local server's queue from a terminal (headless machines).

Lists the queue, lets the reviewer pick a request, claims it, shows its text (the markdown
read as the console shows it, as plain text: the gate's escapes resolved, invisible and bidi
characters made visible) and its context, prompts for an answer in the
request's response type — validated locally against its ``response_config`` — and sends it.
The server's error, if any, is printed and the reviewer may try again::

    hitl-agent review --base-url http://127.0.0.1:8765/v1 --token "$HITL_LOCAL_REVIEWER_TOKEN"

``--base-url`` defaults to ``HITL_BASE_URL`` as in every other command (what ``hitl-agent serve``
tells you to export), else ``http://127.0.0.1:8765/v1``. A URL that is not the ``/v1`` root
(the server's bare address, the console's page) gets the same hint as ``hitl-agent check``.

Tests and embedders can pass a ready ``httpx2.Client`` (or ``httpx.Client``) as the click
context object (``CliRunner().invoke(review, args, obj=ReviewerSeam(http_client=...))``); it is
used instead of a new client, e.g. a Starlette ``TestClient`` bound to the app.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import click
import httpx2

from hitl_agent._exceptions import ConfigError
from hitl_agent._http import HTTP_ERRORS, AnyClient
from hitl_agent._plain import markdown_to_plain
from hitl_agent.models.response_types import (
    BooleanConfig,
    EditableTextConfig,
    MultiSelectConfig,
    NumberConfig,
    RatingConfig,
    ResponseConfig,
    SingleSelectConfig,
    TextConfig,
    check_value,
    parse_response_config,
)
from hitl_agent.server.console import reveal_invisible, timeout_note

from ._api import api_root_hint

__all__ = ["ReviewerAPI", "ReviewerAPIError", "ReviewerSeam", "review"]

_PRIORITY_MARK = {"critical": "!!!", "high": "!! ", "medium": "!  ", "low": "   "}
# hitl_agent's correlation data in ``context``: routing for the library, not for reviewers.
_INTERNAL_CONTEXT_KEY = "hitl_agent"


@dataclasses.dataclass
class ReviewerSeam:
    """The test seam: a client (httpx2 or httpx) to use instead of one built from ``--base-url``."""

    http_client: AnyClient


class ReviewerAPIError(click.ClickException):
    """A reviewer API call failed; ``status`` is the HTTP status (0 when unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ReviewerAPI:
    """The few reviewer endpoints of the local server, over a sync httpx2 (or httpx) client.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8765/v1``.
        token: The reviewer token (sent as a bearer; never printed).
        http_client: An optional client to use (its transport is kept; only auth is added).
    """

    def __init__(self, base_url: str, token: str, http_client: AnyClient | None = None) -> None:
        self._base = base_url.rstrip("/") + "/reviewer/"
        self._root_hint = api_root_hint(base_url)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._client: AnyClient = http_client or httpx2.Client(timeout=30.0)
        self._owns_client = http_client is None

    def __repr__(self) -> str:
        return f"ReviewerAPI(base_url={self._base!r})"

    def close(self) -> None:
        """Close the client if this object created it."""
        if self._owns_client:
            self._client.close()

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            response = self._client.request(
                method, self._base + path, headers=self._headers, json=body
            )
        except HTTP_ERRORS as err:
            # The message names the URL, never the token.
            raise ReviewerAPIError(
                0, f"cannot reach {self._base}: {type(err).__name__}; is `hitl-agent serve` up?"
            ) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        msg = payload.get("msg") if isinstance(payload, dict) else None
        if response.status_code == 401:
            raise ReviewerAPIError(
                401,
                f"the server rejected the reviewer token (401: {msg or 'unauthorized'}); "
                "pass the token printed by `hitl-agent serve` with --token",
            )
        if response.is_error or not isinstance(payload, dict) or payload.get("error") is True:
            message = f"{msg or response.reason_phrase} ({response.status_code})"
            if self._root_hint is not None:  # the server's address or the console, not /v1
                message += f". Fix: {self._root_hint}"
            raise ReviewerAPIError(response.status_code, message)
        data = payload.get("data")
        return data if isinstance(data, dict) else {}

    def queue(self) -> list[dict[str, Any]]:
        """Open requests in the reviewer's loops, most urgent first."""
        items = self._call("GET", "queue").get("requests")
        return [item for item in items or [] if isinstance(item, dict)]

    def claim(self, request_id: str) -> None:
        """Claim a request so no other reviewer answers it meanwhile."""
        self._call("POST", f"requests/{request_id}/claim")

    def release(self, request_id: str) -> None:
        """Give a claim back."""
        self._call("POST", f"requests/{request_id}/release")

    def respond(self, request_id: str, value: Any) -> None:
        """Send the answer; a 400 carries the server's reason."""
        self._call("POST", f"requests/{request_id}/respond", {"response_data": value})


# ---- display ------------------------------------------------------------------------------


def _plain(text: Any) -> str:
    # Terminals obey escape sequences and bidi controls: show them, never let them act.
    return reveal_invisible(str(text))


def _left(timeout_at: Any) -> str:
    if not isinstance(timeout_at, str):
        return "no timeout"
    try:
        at = datetime.fromisoformat(timeout_at.replace("Z", "+00:00"))
    except ValueError:
        return f"times out at {_plain(timeout_at)}"
    seconds = int((at - datetime.now(UTC)).total_seconds())
    if seconds <= 0:
        return "timed out"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m left" if hours else f"{rest // 60}m{rest % 60:02d}s left"


def _summary(index: int, item: dict[str, Any]) -> str:
    lines = markdown_to_plain(str(item.get("request_text", ""))).strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > 60:
        first = first[:59] + "…"
    priority = str(item.get("priority", "?"))
    mark = _PRIORITY_MARK.get(priority, "   ")
    claimed = " (claimed by you)" if item.get("status") == "claimed" else ""
    return (
        f"{index:>3}. {mark} {priority:<8} {item.get('response_type', '?'):<13} "
        f"{_left(item.get('timeout_at'))}{claimed}  {first}"
    )


def _show(item: dict[str, Any]) -> None:
    click.echo("")
    click.echo(f"Request {_plain(item.get('id'))} · priority {_plain(item.get('priority'))}")
    click.echo(f"{_left(item.get('timeout_at'))}")
    click.echo("---- request text (written by the agent) ----")
    click.echo(markdown_to_plain(str(item.get("request_text", ""))))
    click.echo("---- end of request text ----")
    if item.get("image_url"):
        # Shown as text: a terminal cannot show it, and fetching it is the reviewer's choice.
        click.echo(f"Image URL: {_plain(item['image_url'])}")
    context = item.get("context")
    if isinstance(context, dict):
        context = {k: v for k, v in context.items() if k != _INTERNAL_CONTEXT_KEY} or None
    if context is not None:
        click.echo("Context:")
        click.echo(_plain(json.dumps(context, indent=2, ensure_ascii=False)))
    # What a timeout does, as the server words it (the console shows the same line): a gate's
    # request tells the agent nobody answered, whatever its stored default.
    note = item.get("timeout_note")
    click.echo(_plain(note if isinstance(note, str) and note else timeout_note(item)))


# ---- prompts, one per response type -------------------------------------------------------


def _number(text: str) -> float | int:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _pick_option(config: SingleSelectConfig | MultiSelectConfig, raw: str) -> str:
    raw = raw.strip()
    if raw.isdigit() and 1 <= int(raw) <= len(config.options):
        return config.options[int(raw) - 1].value
    for option in config.options:
        if raw in (option.value, option.label):
            return option.value
    raise ValueError(f"{raw!r} is not one of the options")


def _ask(config: ResponseConfig) -> Any:
    """Prompt once for an answer shaped for ``config``; ValueError if it does not parse."""
    if isinstance(config, EditableTextConfig):
        click.echo("Draft:")
        click.echo(_plain(config.draft_text))
        return click.prompt(
            "Revised text (Enter keeps the draft)", default=config.draft_text, show_default=False
        )
    if isinstance(config, TextConfig):
        hint = f"{config.min_length}-{config.max_length} characters"
        return click.prompt(f"Answer ({hint})", default="", show_default=False)
    if isinstance(config, SingleSelectConfig | MultiSelectConfig):
        for number, option in enumerate(config.options, 1):
            about = f" — {_plain(option.description)}" if option.description else ""
            click.echo(f"  {number}) {_plain(option.label)}  [{_plain(option.value)}]{about}")
        if isinstance(config, SingleSelectConfig):
            return _pick_option(config, click.prompt("Choose one (number or value)"))
        raw = click.prompt(
            f"Choose {config.min_selections} to {config.limit} (comma-separated numbers or values)"
        )
        return [_pick_option(config, part) for part in raw.split(",") if part.strip()]
    if isinstance(config, RatingConfig):
        labels = ", ".join(f"{k}={_plain(v)}" for k, v in (config.labels or {}).items())
        scale = f"{config.scale_min:g}..{config.scale_max:g} step {config.scale_step:g}"
        return _number(click.prompt(f"Rating {scale}" + (f" ({labels})" if labels else "")))
    if isinstance(config, NumberConfig):
        bounds = f"{config.min_value:g}..{config.max_value:g}, {config.decimal_places} decimals"
        value = _number(click.prompt(f"Number ({bounds})"))
        if round(value, config.decimal_places) != value:
            raise ValueError(f"use at most {config.decimal_places} decimal places")
        return value
    if isinstance(config, BooleanConfig):
        yes, no = config.true_label or "True", config.false_label or "False"
        raw = click.prompt(f"{_plain(yes)} or {_plain(no)}? [y/n]").strip().lower()
        if raw in ("y", "yes", "true", "1", yes.lower()):
            return True
        if raw in ("n", "no", "false", "0", no.lower()):
            return False
        raise ValueError(f"answer y ({yes}) or n ({no})")
    raise ValueError(f"unsupported config {type(config).__name__}")  # pragma: no cover


def _answer(item: dict[str, Any]) -> Any:
    """Prompt until the answer is valid for the request's config (checked locally)."""
    # A config the server sent may carry keys this library does not know yet: read, not refused.
    config = parse_response_config(
        str(item.get("response_type")), item.get("response_config"), strict=False
    )
    while True:
        try:
            value = _ask(config)
            check_value(config, value, field="answer")
        except (ValueError, ConfigError) as err:
            click.echo(f"Not valid: {err}. Try again.", err=True)
            continue
        return value


# ---- the command --------------------------------------------------------------------------


def _choose(items: list[dict[str, Any]]) -> dict[str, Any] | str:
    click.echo(f"\n{len(items)} open request(s), most urgent first:")
    for index, item in enumerate(items, 1):
        click.echo(_summary(index, item))
    choices = [str(n) for n in range(1, len(items) + 1)] + ["r", "q"]
    picked = click.prompt(
        "Pick a request (number, r to refresh, q to quit)",
        type=click.Choice(choices),
        default="1",
        show_choices=False,
    )
    if picked in ("q", "r"):
        return picked
    return items[int(picked) - 1]


def _review_one(api: ReviewerAPI, item: dict[str, Any]) -> bool:
    """Claim, show, answer. True when an answer was accepted."""
    request_id = str(item["id"])
    try:
        api.claim(request_id)
    except ReviewerAPIError as err:
        if err.status == 401:
            raise
        click.echo(f"Could not claim it: {err.message}", err=True)
        return False
    _show(item)
    answered = False
    try:
        try:
            parse_response_config(
                str(item.get("response_type")), item.get("response_config"), strict=False
            )
        except ConfigError as err:
            click.echo(f"This request cannot be answered here: {err}", err=True)
            return False
        while not answered:
            value = _answer(item)
            try:
                api.respond(request_id, value)
            except ReviewerAPIError as err:
                if err.status in (0, 401, 403, 404, 409):
                    click.echo(f"The server refused the answer: {err.message}", err=True)
                    return False
                click.echo(f"The server refused the answer: {err.message}. Try again.", err=True)
                continue
            answered = True
            click.echo(f"Answer sent: {_plain(json.dumps(value, ensure_ascii=False))}")
        return True
    finally:
        if not answered:
            # Aborted (Ctrl-C, end of input) or refused: give the claim back for others.
            with contextlib.suppress(ReviewerAPIError):
                api.release(request_id)


@click.command()
@click.option(
    "--base-url",
    envvar="HITL_BASE_URL",
    default="http://127.0.0.1:8765/v1",
    show_default=True,
    help="The local server's API root, ending in /v1 [env HITL_BASE_URL].",
)
@click.option(
    "--token",
    envvar="HITL_LOCAL_REVIEWER_TOKEN",
    required=True,
    help="Reviewer token printed by `hitl-agent serve` [env HITL_LOCAL_REVIEWER_TOKEN].",
)
@click.option("--once", is_flag=True, help="Answer one request, then exit.")
@click.option(
    "--watch",
    is_flag=True,
    help="On an empty queue, wait for new requests instead of exiting (Ctrl-C stops).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5),
    default=5.0,
    show_default=True,
    help="Seconds between queue checks with --watch.",
)
@click.pass_context
def review(
    ctx: click.Context, base_url: str, token: str, once: bool, watch: bool, interval: float
) -> None:
    """Review the local server's queue in the terminal."""
    seam = ctx.find_object(ReviewerSeam)
    api = ReviewerAPI(base_url, token, seam.http_client if seam else None)
    try:
        _loop(api, once, interval if watch else None)
    except KeyboardInterrupt:
        click.echo("\nStopped.")
    finally:
        api.close()


def _loop(api: ReviewerAPI, once: bool, watch_interval: float | None) -> None:
    waiting = False
    while True:
        items = api.queue()
        if not items:
            if watch_interval is None:
                click.echo("Nothing to review.")
                return
            if not waiting:
                click.echo("Nothing to review; waiting for new requests (Ctrl-C to stop).")
                waiting = True
            time.sleep(watch_interval)
            continue
        waiting = False
        picked = _choose(items)
        if picked == "q":
            return
        if isinstance(picked, dict) and _review_one(api, picked) and once:
            return
