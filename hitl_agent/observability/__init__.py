"""Human waits made visible: Prometheus metrics and OpenTelemetry spans (docs/observability.md).

::

    dispatcher.metrics.render()       # the text exposition GET /metrics serves
    REGISTRY.register(dispatcher.metrics.collector())   # or in your prometheus_client registry

The metrics need no extra (the exposition is written here); ``collector()`` needs
``prometheus_client`` and the spans ``opentelemetry-api``.
"""

from ._metrics import (
    CONTENT_TYPE,
    DEFAULT_BUCKETS,
    OUTCOMES,
    RESUME_SOURCES,
    LedgerMetrics,
    MetricsSnapshot,
    ResumeStats,
    current_resume_source,
    resume_source,
)
from ._tracing import (
    TRACE_PAYLOAD_KEY,
    TRACER_NAME,
    TracingResumer,
    capture_trace_context,
    tracing_available,
)

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "OUTCOMES",
    "RESUME_SOURCES",
    "TRACER_NAME",
    "TRACE_PAYLOAD_KEY",
    "LedgerMetrics",
    "MetricsSnapshot",
    "ResumeStats",
    "TracingResumer",
    "capture_trace_context",
    "current_resume_source",
    "resume_source",
    "tracing_available",
]
