"""The one logger and metrics object every module uses.

Nothing here logs payload bodies, secrets or signatures: callers log identifiers and outcomes only.
X-Ray tracing is Lambda's active tracing (template.yaml), not the X-Ray SDK: importing the SDK would add to every
cold start for segments Lambda already records.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "verdict-relay"
"""The ``service`` dimension of every count (and the logs' ``service``): the stack's name in AWS
(``template.yaml``), so two stacks in one account and region count, and alarm, apart."""
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "VerdictRelay"

# stderr: in Lambda both streams reach CloudWatch; on the command line stdout stays clean for JSON output.
logger = Logger(service=SERVICE, stream=sys.stderr)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
"""Every count with ``service`` as its only dimension: what the alarms in template.yaml select on."""

_by_provider: dict[str, EphemeralMetrics] = {}
"""The counts that name a provider again, one metric set (one EMF record) a provider, with the dimensions
``service`` and ``provider``: a record carries one value per dimension."""

_counting = threading.Lock()
"""Powertools' metric sets are not thread-safe (a value added while another thread writes out a full set is
counted twice or lost, and a set can pass the 100 values a record may hold), and the poller counts from a
thread per provider."""

_discarding = False
"""Set while the command line runs a command: counts go nowhere (``counts_discarded``)."""

Handler = Callable[..., Any]


def count(name: str, provider: str | None = None, value: int = 1) -> None:
    """Add ``value`` to an outcome metric (one metric per outcome).

    Every count goes to the ``service`` dimension, which the alarms select on. A count that names a provider
    is also counted under ``service`` and ``provider``, so each provider's outcomes can be read and alarmed on
    apart. ``provider`` must be one of the provider names, never a value taken from a request as it came: each
    new dimension value is a new CloudWatch metric, paid for.
    """
    if _discarding:
        return
    with _counting:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        if provider:
            provider_metrics = _by_provider.get(provider)
            if provider_metrics is None:
                provider_metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
                provider_metrics.set_default_dimensions(provider=provider)
                _by_provider[provider] = provider_metrics
            provider_metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


@contextlib.contextmanager
def counts_discarded() -> Iterator[None]:
    """Count nothing while inside: for the command line, whose stdout is its JSON. Powertools prints a metric set
    to stdout once a metric reaches 100 values, flushed or not, and outside Lambda no EMF record reaches
    CloudWatch anyway. Counting resumes on the way out (tests run commands in the process of other tests)."""
    global _discarding  # one switch for every thread of the command
    before = _discarding
    _discarding = True
    try:
        yield
    finally:
        _discarding = before


def log_metrics(*, capture_cold_start_metric: bool = False) -> Callable[[Handler], Handler]:
    """Powertools' ``log_metrics`` for a handler, flushing the per-provider metric sets with the service's."""

    def decorate(handler: Handler) -> Handler:
        flushing = metrics.log_metrics(handler, capture_cold_start_metric=capture_cold_start_metric)

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            try:
                return flushing(event, context)
            finally:
                flush_provider_metrics()

        return wrapper

    return decorate


def flush_provider_metrics() -> None:
    """Write out the per-provider metric sets that have counts (Powertools writes nothing when disabled)."""
    for provider_metrics in _by_provider.values():
        if provider_metrics.metric_set:
            provider_metrics.flush_metrics()


def clear_metrics() -> None:
    """Drop the counts not written yet, the service's and the providers' (a test starts from none)."""
    metrics.clear_metrics()
    for provider_metrics in _by_provider.values():
        provider_metrics.clear_metrics()
