"""Sends the callbacks of a throughput run from a process of its own, as HITL.sh would.

Reads a JSON list of ``[url, request_id]`` on the first line of stdin, prints ``ready``,
waits for a line ``go``, POSTs every callback with ``--in-flight`` at a time and prints
``done`` (or ``failed <reason>``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import httpx


async def post_all(pairs: list[list[str]], in_flight: int) -> None:
    gate = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(timeout=60) as client:

        async def post(url: str, request_id: str) -> None:
            async with gate:
                response = await client.post(url, json={"request_id": request_id})
                if response.status_code != 202:
                    raise RuntimeError(f"callback answered {response.status_code}")

        await asyncio.gather(*(post(url, rid) for url, rid in pairs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--in-flight", type=int, default=8)
    args = parser.parse_args()
    pairs = json.loads(sys.stdin.readline())
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    try:
        asyncio.run(post_all(pairs, args.in_flight))
    except Exception as exc:
        print(f"failed {exc}", flush=True)
        return
    print("done", flush=True)


if __name__ == "__main__":
    main()
