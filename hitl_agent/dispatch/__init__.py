"""Turning human answers into resumes: webhook receiver, budgeted poller, one resolver.

::

    dispatcher = keeper.dispatcher(GraphResumer(graph))
    dispatcher.asgi_app        # POST {callback path}/{token}
    dispatcher.poll_once()     # one sweep: ceil(N/100) list calls + one GET per changed request
"""

from ._budget import CallBudget
from ._dispatcher import CompositeResumer, Dispatcher
from ._poller import Poller
from ._receiver import MAX_BODY_BYTES, WebhookReceiver, extract_request_id
from ._resolver import Resolver, Resumer

__all__ = [
    "MAX_BODY_BYTES",
    "CallBudget",
    "CompositeResumer",
    "Dispatcher",
    "Poller",
    "Resolver",
    "Resumer",
    "WebhookReceiver",
    "extract_request_id",
]
