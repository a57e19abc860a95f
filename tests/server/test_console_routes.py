"""The console's page and files: served from the package, with a strict CSP and no unsafe DOM."""

from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from hitl_agent.server.console import CONTENT_SECURITY_POLICY, console_routes
from hitl_agent.server.console._routes import STATIC_DIR


@pytest.fixture
def client() -> TestClient:
    app = Starlette(routes=[Mount("/console", routes=console_routes())])
    return TestClient(app)


def test_page_is_served_with_security_headers(client: TestClient) -> None:
    response = client.get("/console/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "static/console.js" in response.text


def test_bare_console_path_redirects_to_the_page(client: TestClient) -> None:
    response = client.get("/console", follow_redirects=False)
    assert response.status_code in (307, 308)
    assert response.headers["location"].endswith("/console/")


@pytest.mark.parametrize(
    ("path", "kind"),
    [("console.js", "javascript"), ("console.css", "text/css"), ("index.html", "text/html")],
)
def test_static_files_are_served_with_headers(client: TestClient, path: str, kind: str) -> None:
    response = client.get(f"/console/static/{path}")
    assert response.status_code == 200
    assert kind in response.headers["content-type"]
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_static_path_traversal_is_refused(client: TestClient) -> None:
    assert client.get("/console/static/../_routes.py").status_code == 404
    assert client.get("/console/static/%2e%2e/_routes.py").status_code == 404


def test_csp_forbids_inline_script_and_foreign_connections() -> None:
    directives = dict(
        part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";") if part.strip()
    )
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert directives["frame-ancestors"] == "'none'"


def test_script_sets_inner_html_only_from_request_html() -> None:
    # The one HTML sink is request_html (server-rendered, inert); everything else is
    # textContent/createElement. Guard the rule against regressions by reading the source.
    source = (STATIC_DIR / "console.js").read_text(encoding="utf-8")
    sinks = re.findall(
        r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write|eval\(", source
    )
    assert sinks == ["innerHTML"], sinks
    assert re.search(r"\.innerHTML = typeof item\.request_html === \"string\"", source)
    assert "new Function" not in source


def test_page_has_no_inline_script_or_style() -> None:
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None
    assert "<style" not in page and "style=" not in page
    assert re.search(r"\son[a-z]+=", page) is None
