"""The gate's bookkeeping rows of old ledgers ("markers") and the SQL that moves them out.

Before slot claims and aliases had tables of their own (``hitl_gate_slots``,
``hitl_gate_aliases``), the gate kept them in the review table as rows walked straight to
``resumed``:

* a slot claim: key ``slot|<thread>|<slot>|<turn>``, ``checkpoint_ns`` the slot
  (``hitl-slot:…``), payload ``{"kind": "slot", "owner": <key>}``, request id
  ``hitl-slot|<key>`` once walked;
* an alias: the reusing run's own row, request id ``hitl-alias|<key>``, decision
  ``{"kind": "alias", "owner": <key>}``.

Every reader of review rows had to skip them. The migrations built here copy them into the
new tables and delete them, so no marker row is left in a migrated ledger and the current
gate writes none. The conditions are written once, for both SQL dialects.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ALIAS_MARKER", "SLOT_MARKER", "move_markers"]

# The request-id prefixes of the old bookkeeping rows (an alias, a slot claim); they never
# named an API request. hitl_agent.protocol keeps the same two for its public is_marker.
ALIAS_MARKER = "hitl-alias|"
SLOT_MARKER = "hitl-slot|"


def _starts(column: str, prefix: str) -> str:
    # Not LIKE: '_' is a wildcard there, and SQLite's LIKE ignores case.
    return f"substr({column}, 1, {len(prefix)}) = '{prefix}'"


def move_markers(
    table: str, slots: str, aliases: str, field: Callable[[str, str], str], ignore: str
) -> tuple[str, str, str]:
    """Three statements: copy the slot claims, copy the aliases, delete every marker row.

    Args:
        table, slots, aliases: the tables' names as the dialect spells them.
        field: ``field(column, name)``, the SQL of a JSON column's text field.
        ignore: how an INSERT skips a row already there (``OR IGNORE`` placement differs:
            pass ``"OR IGNORE"`` for SQLite, ``""`` for PostgreSQL, which then appends
            ``ON CONFLICT DO NOTHING``).
    """
    prefix = "'slot|' || thread_id || '|' || checkpoint_ns || '|'"
    slot_row = (
        f"thread_id IS NOT NULL AND checkpoint_ns IS NOT NULL AND {_starts('key', 'slot|')} "
        f"AND {_starts('checkpoint_ns', 'hitl-slot:')} "
        f"AND substr(key, 1, length({prefix})) = {prefix} "
        f"AND {field('payload', 'kind')} = 'slot'"
    )
    alias_row = f"{_starts('request_id', ALIAS_MARKER)} AND {field('decision', 'kind')} = 'alias'"
    conflict = "" if ignore else " ON CONFLICT DO NOTHING"
    copy_slots = (
        f"INSERT {ignore} INTO {slots} (thread_id, slot, turn, owner, created_at) "
        f"SELECT thread_id, checkpoint_ns, "
        f"CAST(substr(key, length({prefix}) + 1) AS INTEGER), "
        f"{field('payload', 'owner')}, created_at FROM {table} "
        f"WHERE {slot_row} AND {field('payload', 'owner')} IS NOT NULL{conflict}"
    )
    copy_aliases = (
        f"INSERT {ignore} INTO {aliases} (key, owner, created_at) "
        f"SELECT key, {field('decision', 'owner')}, created_at FROM {table} "
        f"WHERE {alias_row} AND {field('decision', 'owner')} IS NOT NULL{conflict}"
    )
    delete = (
        f"DELETE FROM {table} WHERE ({slot_row}) "
        f"OR {_starts('request_id', ALIAS_MARKER)} OR {_starts('request_id', SLOT_MARKER)}"
    )
    return copy_slots, copy_aliases, delete
