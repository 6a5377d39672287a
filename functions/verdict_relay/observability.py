"""The one logger and metrics object every module uses.

Nothing here logs payload bodies, secrets or signatures: callers log identifiers and outcomes only.
X-Ray tracing is Lambda's active tracing (template.yaml), not the X-Ray SDK: importing the SDK would add to every
cold start for segments Lambda already records.
"""

from __future__ import annotations

import sys

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "verdict-relay"
NAMESPACE = "VerdictRelay"

# stderr: in Lambda both streams reach CloudWatch; on the command line stdout stays clean for JSON output.
logger = Logger(service=SERVICE, stream=sys.stderr)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def count(name: str, provider: str | None = None, value: int = 1) -> None:
    """Add ``value`` to an outcome metric (one metric per outcome).

    Its only dimension is ``service``, which the alarms in template.yaml select on. The provider, where known,
    is EMF metadata, not a dimension: it is in the log record, not in CloudWatch's metric, and as one record
    carries the invocation's metrics together it names the provider counted last (docs/architecture.md).
    """
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if provider:
        metrics.add_metadata(key="provider", value=provider)
