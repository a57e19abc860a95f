"""The API stays correct while the background scheduler runs and several threads call it."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from .conftest import MakeEnv


def test_threads_and_the_background_scheduler_lose_and_duplicate_nothing(
    make_env: MakeEnv,
) -> None:
    env = make_env(scheduler_interval=0.005)

    def create_and_answer(index: int) -> str:
        request_id = env.create(callback_url=f"https://receiver.test/{index}")
        if index % 2:
            answer = env.rev(
                "POST", f"/requests/{request_id}/respond", json={"response_data": "approve"}
            )
            assert answer.status_code == 200
        else:
            assert env.api("DELETE", f"/api/requests/{request_id}").status_code == 200
        return request_id

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(create_and_answer, range(60)))
    deadline = time.monotonic() + 10
    while len(env.receiver.calls) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    delivered = [json.loads(call.content)["request_id"] for call in env.receiver.calls]
    assert sorted(delivered) == sorted(ids)  # every one exactly once
    statuses = {env.get(request_id)["status"] for request_id in ids}
    assert statuses == {"completed", "cancelled"}
    page = env.api("GET", "/api/requests", params={"limit": 100}).json()["data"]
    assert page["total"] == 60
