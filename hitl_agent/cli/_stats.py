"""``hitl-agent stats``: how reviews end and how fast reviewers answer, by priority and loop.

Rates are over *finished* requests (completed + timeout + cancelled), so requests still open
do not dilute them; the open ones are counted on their own. Response times are those of
completed requests (``response_time_seconds``), as p50/p90/p99 with linear interpolation
between ranks (numpy's default). ``--plot FILE.png`` draws the same figures with matplotlib,
an optional extra: ``pip install 'hitl-agent[plot]'``. Without it ``--plot`` fails first, before
any API call or output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from .._extras import MissingExtraError
from ._api import api_options, api_session, fetch_requests, request_filters, stdout_console

__all__ = ["Group", "percentile", "stats", "summarize"]

PRIORITY_ORDER = ("critical", "high", "medium", "low")
QUANTILES = (50, 90, 99)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values`` (linear between closest ranks); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Group:
    """The figures of one priority or one loop."""

    name: str
    total: int = 0
    completed: int = 0
    timeout: int = 0
    cancelled: int = 0
    times: list[float] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.completed + self.timeout + self.cancelled

    @property
    def open(self) -> int:
        return self.total - self.finished

    def rate(self, count: int) -> float | None:
        """``count`` as a share of finished requests, or None before any finished."""
        return count / self.finished if self.finished else None

    def quantile(self, q: float) -> float | None:
        return percentile(self.times, q)


def summarize(requests: Iterable[Any], key: str) -> list[Group]:
    """Group ``requests`` by the attribute ``key`` (``priority`` or ``loop_id``)."""
    groups: dict[str, Group] = {}
    for request in requests:
        name = str(getattr(request, key) or "?")
        group = groups.setdefault(name, Group(name))
        group.total += 1
        if request.status == "completed":
            group.completed += 1
            if request.response_time_seconds is not None:
                group.times.append(float(request.response_time_seconds))
        elif request.status == "timeout":
            group.timeout += 1
        elif request.status == "cancelled":
            group.cancelled += 1
    if key == "priority":
        rank = {name: i for i, name in enumerate(PRIORITY_ORDER)}
        return sorted(groups.values(), key=lambda g: (rank.get(g.name, 99), g.name))
    return sorted(groups.values(), key=lambda g: (-g.total, g.name))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _table(title: str, groups: Sequence[Group], labels: dict[str, str]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for name in ("", "requests", "open", "completed", "timeout", "cancelled",
                 *(f"p{q}" for q in QUANTILES)):  # fmt: skip
        table.add_column(name, justify="left" if not name else "right")
    for g in groups:
        table.add_row(
            labels.get(g.name, g.name), str(g.total), str(g.open), _pct(g.rate(g.completed)),
            _pct(g.rate(g.timeout)), _pct(g.rate(g.cancelled)),
            *(_secs(g.quantile(q)) for q in QUANTILES),
        )  # fmt: skip
    return table


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend, or a ClickException naming the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        missing = MissingExtraError("plot", "hitl-agent stats --plot", err.name or "matplotlib")
        raise click.ClickException(str(missing)) from None
    return plt


def plot(path: Path, sections: Sequence[tuple[str, Sequence[Group], dict[str, str]]]) -> None:
    """Draw, per section, the end-state shares and the response-time percentiles."""
    plt = _pyplot()
    figure, axes = plt.subplots(len(sections), 2, figsize=(12, 4.2 * len(sections)), squeeze=False)
    colors = {"completed": "#16a34a", "timeout": "#f59e0b", "cancelled": "#dc2626"}
    for row, (title, groups, labels) in enumerate(sections):
        names = [labels.get(g.name, g.name) for g in groups]
        shares, times = axes[row][0], axes[row][1]
        bottom = [0.0] * len(groups)
        for outcome, color in colors.items():
            values = [(g.rate(getattr(g, outcome)) or 0.0) * 100 for g in groups]
            shares.bar(names, values, bottom=bottom, color=color, label=outcome)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        shares.set_title(f"How requests ended, by {title}")
        shares.set_ylabel("% of finished requests")
        shares.set_ylim(0, 100)
        shares.legend(loc="lower right")
        width = 0.8 / len(QUANTILES)
        for i, q in enumerate(QUANTILES):
            positions = [x + (i - 1) * width for x in range(len(groups))]
            values = [g.quantile(q) or 0.0 for g in groups]
            times.bar(positions, values, width=width, label=f"p{q}")
        for x, g in enumerate(groups):
            if not g.times:
                times.text(x, 0, "no answers", ha="center", va="bottom", color="#6b7280")
        times.set_xticks(range(len(groups)), names)
        times.set_title(f"Response time (completed), by {title}")
        times.set_ylabel("seconds")
        times.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


@click.command()
@request_filters
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the figures to this PNG (needs hitl-agent[plot]).",
)
@api_options
@click.pass_context
def stats(
    ctx: click.Context,
    status: str | None,
    priority: str | None,
    loop_id: str | None,
    created_before: datetime | None,
    created_after: datetime | None,
    plot_path: Path | None,
    api_key: str | None,
    base_url: str | None,
) -> None:
    """Completion, timeout and cancel rates and response times by priority and by loop."""
    if plot_path is not None:
        _pyplot()  # a missing extra fails now, not after the fetch and the tables
    filters: dict[str, Any] = {
        name: value
        for name, value in (("status", status), ("priority", priority), ("loop_id", loop_id),
                            ("created_before", created_before), ("created_after", created_after))
        if value is not None
    }  # fmt: skip
    with api_session(ctx, api_key, base_url) as client:
        found = fetch_requests(client, **filters)
        loop_names = {loop.id: loop.name or loop.id for loop in client.loops.list()}
    if not found:
        click.echo("no requests match")
        return
    sections: list[tuple[str, Sequence[Group], dict[str, str]]] = [
        ("priority", summarize(found, "priority"), {}),
        ("loop", summarize(found, "loop_id"), loop_names),
    ]
    console = stdout_console()
    for title, groups, labels in sections:
        console.print(_table(f"{len(found)} request(s) by {title}", groups, labels))
    if plot_path is not None:
        plot(plot_path, sections)
        click.echo(f"wrote {plot_path}", err=True)
