"""The API's resources, each with a sync and an async class."""

from .loops import AsyncLoops, Loops
from .requests import AsyncRequests, Requests

__all__ = ["AsyncLoops", "AsyncRequests", "Loops", "Requests"]
