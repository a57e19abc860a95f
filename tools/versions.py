"""Print the versions of the packages the suite is most sensitive to.

Usage: `python tools/versions.py LABEL`.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys

PACKAGES = (
    "httpx2",
    "httpx",
    "starlette",
    "langsmith",
    "langchain-core",
    "langchain",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "langgraph-sdk",
    "pydantic",
    "psycopg",
    "uvicorn",
)


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "installed"
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    print(f"versions ({label}): " + ", ".join(found))


if __name__ == "__main__":
    main()
