"""open_ledger(url): which URL opens which backend, and the errors for the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hitl_agent.ledger import Ledger, SqliteLedger, open_ledger

from .conftest import PG_URL, drop_schema, require_postgres


def _check_ready(ledger: Ledger) -> None:
    # open_ledger ran setup(): the table exists and works.
    _, inserted = ledger.record_intent("k", now=1.0)
    assert inserted


def test_sqlite_relative_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///rel.db is relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    with open_ledger("sqlite:///sub.db") as ledger:
        assert isinstance(ledger, SqliteLedger)
        assert ledger.path == "sub.db"
        _check_ready(ledger)
    assert (tmp_path / "sub.db").exists()


def test_sqlite_absolute_url(tmp_path: Path) -> None:
    """sqlite:////abs/path.db is absolute (four slashes)."""
    path = tmp_path / "abs.db"
    with open_ledger(f"sqlite:///{path}") as ledger:
        assert isinstance(ledger, SqliteLedger)
        assert ledger.path == str(path)
        _check_ready(ledger)
    assert path.exists()


def test_sqlite_url_with_escapes(tmp_path: Path) -> None:
    """Percent-escapes in the path are decoded."""
    with open_ledger(f"sqlite:///{tmp_path}/with%20space.db") as ledger:
        _check_ready(ledger)
    assert (tmp_path / "with space.db").exists()


def test_bare_path_is_sqlite(tmp_path: Path) -> None:
    """A path without a scheme is a SQLite file."""
    with open_ledger(str(tmp_path / "bare.db")) as ledger:
        assert isinstance(ledger, SqliteLedger)
        _check_ready(ledger)


def test_open_ledger_rows_survive_reopening(tmp_path: Path) -> None:
    """The same URL twice sees the same rows (setup is idempotent)."""
    url = f"sqlite:///{tmp_path}/again.db"
    with open_ledger(url) as ledger:
        ledger.record_intent("k", now=1.0)
    with open_ledger(url) as ledger:
        assert ledger.get("k") is not None


@pytest.mark.parametrize(
    "url",
    ["mysql://host/db", "redis://localhost", "file:///x.db", "sqlite+aiosqlite:///x.db"],
)
def test_unknown_scheme_names_the_accepted_forms(url: str) -> None:
    """An unknown scheme is a ValueError listing what would work."""
    with pytest.raises(ValueError, match="unknown ledger URL scheme") as info:
        open_ledger(url)
    for form in ("sqlite:///", "sqlite:////", "postgresql://", "postgres://", "bare file path"):
        assert form in str(info.value)


@pytest.mark.parametrize(
    "url", ["sqlite://host/x.db", "sqlite://", "sqlite:///", "sqlite:///x.db?mode=ro"]
)
def test_malformed_sqlite_url(url: str) -> None:
    """A host, an empty path or a query in a SQLite URL is refused, not guessed at."""
    with pytest.raises(ValueError, match="malformed SQLite ledger URL"):
        open_ledger(url)


@pytest.mark.parametrize("url", ["", "sqlite:///:memory:", ":memory:"])
def test_unusable_targets(url: str) -> None:
    """An empty URL or an in-memory database is refused with the reason."""
    with pytest.raises(ValueError, match=r"non-empty|in-memory"):
        open_ledger(url)


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_urls(scheme: str) -> None:
    """Both PostgreSQL schemes open a PostgresLedger; ?schema= isolates its tables."""
    require_postgres()
    from hitl_agent.ledger import PostgresLedger

    schema = f"hitl_test_url_{scheme}"
    url = PG_URL.replace("postgresql://", f"{scheme}://", 1) + f"?schema={schema}"
    try:
        with open_ledger(url) as ledger:
            assert isinstance(ledger, PostgresLedger)
            assert ledger.schema == schema
            _check_ready(ledger)
    finally:
        drop_schema(schema)


def test_postgres_ledger_import_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg, PostgresLedger says which extra to install."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    monkeypatch.delitem(sys.modules, "hitl_agent.ledger.postgres", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'hitl-agent\[postgres\]'"):
        from hitl_agent.ledger import PostgresLedger  # noqa: F401
    with pytest.raises(ImportError, match=r"hitl-agent\[postgres\]"):
        open_ledger("postgresql://localhost/db")


def test_sqlite_path_never_imports_psycopg(tmp_path: Path) -> None:
    """The SQLite path works without the postgres extra installed."""
    code = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg_pool'] = None\n"
        "from hitl_agent.ledger import open_ledger\n"
        f"with open_ledger({str(tmp_path / 'x.db')!r}) as l: l.record_intent('k', now=1.0)\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (out.returncode, out.stdout.strip()) == (0, "ok"), out.stderr


def test_ledger_module_has_no_other_attributes() -> None:
    """Unknown attributes raise AttributeError (the lazy loader is not a catch-all)."""
    import hitl_agent.ledger as module

    with pytest.raises(AttributeError, match="Nope"):
        module.Nope  # noqa: B018
