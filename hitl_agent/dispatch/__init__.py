"""Turning human answers into resumes: webhook receiver, budgeted poller, one resolver.

::

    dispatcher = keeper.dispatcher(GraphResumer(graph))
    dispatcher.asgi_app        # POST {callback path}/{token}
    dispatcher.poll_once()     # one sweep: doorbells' GETs first, then the cheapest listing,
                               # answers read from its pages (no GET per change)
    dispatcher.next_interval() # when to sweep again: derived from the open rows and budget
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
