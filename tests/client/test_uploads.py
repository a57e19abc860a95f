"""``client.uploads`` (issue 22 W7), sync and async, over both HTTP stacks, against the local
server through its ASGI app: an image and a document are hosted, served back byte for byte with
their checked type, and usable as a request's ``image_url`` / ``file_url``; what HITL.sh
refuses (other types, a script dressed as a PNG, files over the limit) is refused before
sending, and by the server when a raw client sends it anyway."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from hitl_agent import ConfigError
from hitl_agent.models import UPLOAD_LIMITS, UploadedFile
from hitl_agent.testing import LocalHITL, local_hitl

from .conftest import Harness

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"x" * 128


@pytest.fixture
def hitl() -> Iterator[LocalHITL]:
    with local_hitl() as running:
        yield running


def _forward(hitl: LocalHITL) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Authorization": request.headers["authorization"]}
        if "content-type" in request.headers:
            headers["Content-Type"] = request.headers["content-type"]
        answer = hitl.http.request(
            request.method, request.url.path, headers=headers, content=request.read() or None
        )
        return httpx.Response(
            answer.status_code, headers=dict(answer.headers), content=answer.content
        )

    return handler


async def test_an_image_is_hosted_and_shown_in_a_request(
    make: Callable[..., Harness], hitl: LocalHITL, tmp_path: Path
) -> None:
    harness = make(_forward(hitl), api_key=hitl.api_key, base_url="http://testserver/v1")
    path = tmp_path / "photo.png"
    path.write_bytes(PNG)
    uploaded = await harness.call("uploads.image", path)
    assert isinstance(uploaded, UploadedFile) and uploaded.url.endswith("/photo.png")
    assert harness.recorder.last.url.path == "/v1/upload/image"
    served = hitl.http.get(uploaded.url)  # no key: the URL is the capability, as on a CDN
    assert served.content == PNG and served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]
    created = hitl.client.requests.create(
        hitl.loop_id, request_text="Does this photo pass?", type="image",
        image_url=uploaded.url, response_type="boolean", response_config={},
        default_response=False, timeout_seconds=600,
    )  # fmt: skip
    assert hitl.reviewer.get(created.request_id)["image_url"] == uploaded.url


async def test_a_document_carries_its_type_name_and_size(
    make: Callable[..., Harness], hitl: LocalHITL
) -> None:
    harness = make(_forward(hitl), api_key=hitl.api_key, base_url="http://testserver/v1")
    uploaded = await harness.call("uploads.document", io.BytesIO(PDF), filename="deal.pdf")
    assert (uploaded.file_type, uploaded.file_name, uploaded.size_bytes) == (
        "application/pdf", "deal.pdf", len(PDF),
    )  # fmt: skip
    served = hitl.http.get(uploaded.url)
    assert served.content == PDF and served.headers["content-disposition"].startswith("attachment")


async def test_what_hitl_sh_refuses_is_refused_before_sending(
    make: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = make(httpx.Response(500))
    with pytest.raises(ConfigError, match=r"file: evil\.png is not an image"):
        await harness.call("uploads.image", b"<script>alert(1)</script>", filename="evil.png")
    with pytest.raises(ConfigError, match=r"file: run\.exe is not a document"):
        await harness.call("uploads.document", b"MZ...", filename="run.exe")
    with pytest.raises(ConfigError, match="filename"):
        await harness.call("uploads.image", PNG)
    monkeypatch.setitem(UPLOAD_LIMITS, "image", 16)
    with pytest.raises(ConfigError, match="over the 0 MB image limit"):
        await harness.call("uploads.image", PNG, filename="big.png")
    assert harness.recorder.seen == []


def test_the_server_refuses_a_disguised_file(hitl: LocalHITL) -> None:
    auth = {"Authorization": f"Bearer {hitl.api_key}"}
    files = {"file": ("x.png", b"<svg onload=alert(1)>", "image/png")}
    answer = hitl.http.post("/v1/upload/image", files=files, headers=auth)
    assert answer.status_code == 400 and "not an image" in answer.json()["data"]
    missing = hitl.http.post("/v1/upload/image", files={"other": ("a", b"b")}, headers=auth)
    assert missing.status_code == 400 and "file" in missing.json()["data"]
    assert hitl.http.post("/v1/upload/image", files=files).status_code == 401
    assert hitl.http.get("/uploads/nope/x.png").status_code == 404


def test_the_sync_and_async_resources_are_twins() -> None:
    import inspect

    from hitl_agent.resources import AsyncUploads, Uploads

    for name in ("image", "document"):
        sync_sig = inspect.signature(getattr(Uploads, name))
        async_sig = inspect.signature(getattr(AsyncUploads, name))
        assert [(p.name, p.kind, p.default) for p in sync_sig.parameters.values()] == [
            (p.name, p.kind, p.default) for p in async_sig.parameters.values()
        ]
        assert inspect.iscoroutinefunction(getattr(AsyncUploads, name))
