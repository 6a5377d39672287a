"""The verdict policy: unmoderated content never passes silently; which verdicts are published."""

from __future__ import annotations

import pytest

from verdict_relay.logic.policy import VerdictPolicy
from verdict_relay.models.verdict import JobStatus, Suggestion, Verdict, VerdictError


def verdict(status: JobStatus, suggestion: Suggestion | None = None, **extra: object) -> Verdict:
    return Verdict(provider="huawei-video", job_id="j1", status=status, suggestion=suggestion, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.EXPIRED])
def test_failed_and_expired_jobs_get_the_unmoderated_suggestion(status: JobStatus) -> None:
    final = VerdictPolicy().finalize(verdict(status))

    assert final.suggestion is Suggestion.REVIEW
    assert final.decided_by == "policy"
    assert final.error is not None


def test_unmoderated_suggestion_is_configurable() -> None:
    final = VerdictPolicy(unmoderated=Suggestion.BLOCK).finalize(verdict(JobStatus.EXPIRED))

    assert final.suggestion is Suggestion.BLOCK


def test_provider_error_of_a_failed_job_is_kept() -> None:
    error = VerdictError(code="AIS.0502", message="download failed")

    final = VerdictPolicy().finalize(verdict(JobStatus.FAILED, error=error))

    assert final.error == error


def test_a_pass_with_failed_items_is_raised_to_review() -> None:
    item_error = VerdictError(code="AIS.0103", message="image too large", item="https://x/1.jpg")

    final = VerdictPolicy().finalize(verdict(JobStatus.SUCCEEDED, Suggestion.PASS, item_errors=[item_error]))

    assert final.suggestion is Suggestion.REVIEW
    assert final.decided_by == "policy"


def test_a_block_with_failed_items_stays_block() -> None:
    item_error = VerdictError(code="AIS.0103", message="image too large", item="https://x/1.jpg")

    final = VerdictPolicy().finalize(verdict(JobStatus.SUCCEEDED, Suggestion.BLOCK, item_errors=[item_error]))

    assert final.suggestion is Suggestion.BLOCK


def test_a_finished_job_without_any_suggestion_does_not_pass() -> None:
    assert VerdictPolicy().finalize(verdict(JobStatus.SUCCEEDED)).suggestion is Suggestion.REVIEW


def test_provider_suggestion_of_a_clean_job_is_left_alone() -> None:
    original = verdict(JobStatus.SUCCEEDED, Suggestion.PASS, decided_by="provider")

    assert VerdictPolicy().finalize(original) == original


@pytest.mark.parametrize(
    ("suggestion", "publish_pass", "expected"),
    [
        (Suggestion.BLOCK, False, True),
        (Suggestion.REVIEW, False, True),
        (Suggestion.PASS, False, False),
        (Suggestion.PASS, True, True),
    ],
)
def test_block_and_review_are_published_pass_only_when_configured(
    suggestion: Suggestion, publish_pass: bool, expected: bool
) -> None:
    policy = VerdictPolicy(publish_pass=publish_pass)

    assert policy.should_publish(verdict(JobStatus.SUCCEEDED, suggestion)) is expected


def test_unfinished_jobs_are_never_published() -> None:
    assert VerdictPolicy(publish_pass=True).should_publish(verdict(JobStatus.RUNNING)) is False
