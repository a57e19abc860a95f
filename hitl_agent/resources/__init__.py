"""The API's resources, each with a sync and an async class."""

from .loops import AsyncLoops, Loops
from .requests import AsyncRequests, Requests
from .uploads import AsyncUploads, Uploads
from .workflows import AsyncWorkflows, Workflows

__all__ = [
    "AsyncLoops",
    "AsyncRequests",
    "AsyncUploads",
    "AsyncWorkflows",
    "Loops",
    "Requests",
    "Uploads",
    "Workflows",
]
