"""Approval policies: what must hold, beyond one person's yes, before a call runs.

- :class:`Quorum` (``quorum=2``): approved only when that many *distinct* reviewers approve.
- ``exclude=``: identities whose answer never counts (the person the agent acts for).
- :class:`Escalate` (``escalate=[...]``): nobody answered in time: ask the next group.
- :class:`Grants` (``grants=``): the reviewer may approve a tool in a thread, or exact
  arguments, for a while.

``quorum``, ``exclude`` and ``escalate`` are taken the same way by ``keeper.review``,
``keeper.areview``, ``keeper.review_node`` (from ``build``'s dict) and ``require_approval``::

    from hitl_agent.policies import Escalate, Quorum

    keeper.review("Deploy v2 to production?", quorum=2, exclude=["dev@example.com"],
                  escalate=[Escalate(after=600, loop_id="oncall-managers")])

See docs/policies.md for what the reviewer sees and what each policy costs.
"""

from __future__ import annotations

from ._escalation import Escalate
from ._grants import Grants
from ._quorum import Quorum

__all__ = ["Escalate", "Grants", "Quorum"]
