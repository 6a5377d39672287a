"""The README's filter policies (its Subscribing section) select what it says they select, on messages the
publisher sends: each policy on a queue of its own, subscribed to the topic."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import FakeAws
from verdict_relay.dal.publisher import VerdictPublisher
from verdict_relay.models.verdict import Finding, JobStatus, Suggestion, Verdict

README = Path(__file__).resolve().parents[2] / "README.md"


def subscribing_policies() -> list[dict[str, object]]:
    """The JSON blocks of the README's Subscribing section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Subscribing") : text.index("## Running it locally")]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n\s*```", section, flags=re.DOTALL)]


def verdict(
    provider: str, job_id: str, suggestion: Suggestion, *findings: Finding, failed: bool = False
) -> Verdict:
    return Verdict(
        provider=provider,
        job_id=job_id,
        status=JobStatus.FAILED if failed else JobStatus.SUCCEEDED,
        suggestion=suggestion,
        findings=list(findings),
    )


def finding(category: str, suggestion: Suggestion | None) -> Finding:
    return Finding(category=category, label=category, confidence=0.9, suggestion=suggestion)


VERDICTS = [
    verdict("huawei-video", "video-porn", Suggestion.BLOCK, finding("porn", Suggestion.BLOCK)),
    verdict("huawei-video", "video-ad", Suggestion.REVIEW, finding("ad", Suggestion.REVIEW)),
    verdict("alibaba-mps", "mps-porn", Suggestion.BLOCK, finding("porn", Suggestion.BLOCK)),
    verdict("huawei-video", "video-failed", Suggestion.REVIEW, failed=True),
    verdict("huawei-audio", "audio-no-own-suggestion", Suggestion.BLOCK, finding("porn", None)),
    verdict("azure-review", "azure-racy", Suggestion.REVIEW, finding("racy", Suggestion.REVIEW)),
]


def test_each_readme_filter_policy_receives_the_verdicts_it_describes(aws: FakeAws) -> None:
    sns, sqs = aws.session.client("sns"), aws.session.client("sqs")
    queues = []
    for n, policy in enumerate(subscribing_policies()):
        url = sqs.create_queue(QueueName=f"policy-{n}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(
            TopicArn=aws.resources.topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"FilterPolicy": json.dumps(policy)},
        )
        queues.append(url)
    publisher = VerdictPublisher(aws.resources.topic_arn, lambda: sns)

    for v in VERDICTS:
        publisher.publish(v)

    received = [
        sorted(json.loads(json.loads(m["Body"])["Message"])["job_id"] for m in aws.drain(url))
        for url in queues
    ]
    assert received == [
        # "block verdicts of Huawei video jobs"
        ["video-porn"],
        # "a category's verdicts and every block or review verdict without categories"
        ["audio-no-own-suggestion", "mps-porn", "video-failed", "video-porn"],
    ]
