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


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (Suggestion.BLOCK, Suggestion.BLOCK),
        (Suggestion.REVIEW, Suggestion.REVIEW),
        (Suggestion.PASS, Suggestion.REVIEW),
    ],
)
def test_a_failed_job_is_never_milder_than_the_providers_own_suggestion(
    given: Suggestion, expected: Suggestion
) -> None:
    final = VerdictPolicy().finalize(verdict(JobStatus.FAILED, given))

    assert (final.suggestion, final.decided_by) == (expected, "policy")


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


def test_a_review_with_failed_items_stays_the_providers_own_decision() -> None:
    item_error = VerdictError(code="AIS.0103", message="image too large", item="https://x/1.jpg")
    # Given a provider that already said review for a batch with a failed image
    given = verdict(JobStatus.SUCCEEDED, Suggestion.REVIEW, item_errors=[item_error], decided_by="provider")

    # When the policy finalizes it
    final = VerdictPolicy().finalize(given)

    # Then nothing was raised: the verdict is the provider's, as published
    assert (final.suggestion, final.decided_by) == (Suggestion.REVIEW, "provider")


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
    # not even one a provider's progress report gave a suggestion already
    for status in (JobStatus.PENDING, JobStatus.RUNNING):
        assert VerdictPolicy().should_publish(verdict(status, Suggestion.BLOCK)) is False


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING])
def test_an_unfinished_job_is_stored_as_the_provider_reported_it(status: JobStatus) -> None:
    from verdict_relay.models.verdict import Finding

    # Given a job still running, with no suggestion yet and a part found so far (an Alibaba timeline's first page)
    so_far = [Finding(category="porn", label="normal", suggestion=Suggestion.PASS, item="title")]
    running = verdict(status, findings=so_far, decided_by="provider")

    # When the policy finalizes it
    final = VerdictPolicy().finalize(running)

    # Then GET /jobs shows no suggestion the provider did not give: the unmoderated one is for a job that ended
    assert final == running
    assert final.suggestion is None


def test_a_job_is_at_least_as_strict_as_its_strictest_finding() -> None:
    from verdict_relay.models.verdict import Finding

    # Alibaba's own sample: the job says pass while its title and a video frame say block
    parts = [
        Finding(category="terrorism", label="bloody", suggestion=Suggestion.BLOCK, item="title"),
        Finding(category="porn", label="normal", suggestion=Suggestion.PASS, item="video"),
    ]
    job = verdict(JobStatus.SUCCEEDED, Suggestion.PASS, findings=parts, decided_by="provider")

    final = VerdictPolicy().finalize(job)

    assert (final.suggestion, final.decided_by) == (Suggestion.BLOCK, "policy")
    assert VerdictPolicy().should_publish(final)


def test_a_human_reviewers_decision_is_not_overruled_by_a_finding() -> None:
    from verdict_relay.models.verdict import Finding

    tagged = [Finding(category="reviewer_tag", label="a", suggestion=Suggestion.BLOCK)]
    decided = verdict(JobStatus.SUCCEEDED, Suggestion.PASS, findings=tagged, decided_by="reviewer")

    assert VerdictPolicy().finalize(decided) == decided


def test_the_alibaba_sample_whose_parts_say_block_is_a_block_verdict() -> None:
    from tests.helpers import load_payload
    from verdict_relay.providers.registry import get_adapter

    (provider_verdict,) = get_adapter("alibaba-mps").parse(load_payload("alibaba-mps", "job-list"))
    assert provider_verdict.suggestion is Suggestion.PASS  # what the job itself says

    assert VerdictPolicy().finalize(provider_verdict).suggestion is Suggestion.BLOCK


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.EXPIRED])
def test_an_unfinished_job_that_still_found_a_block_is_a_block_verdict(status: JobStatus) -> None:
    from verdict_relay.models.verdict import Finding

    # A failed Alibaba job keeps the results of the parts it finished: its title said block.
    found = [Finding(category="terrorism", label="bloody", suggestion=Suggestion.BLOCK, item="title")]

    final = VerdictPolicy().finalize(verdict(status, findings=found))

    assert (final.suggestion, final.decided_by) == (Suggestion.BLOCK, "policy")
    assert final.error is not None
    # A milder finding does not lower the unmoderated suggestion.
    mild = [Finding(category="porn", label="normal", suggestion=Suggestion.PASS, item="video")]
    assert VerdictPolicy().finalize(verdict(status, findings=mild)).suggestion is Suggestion.REVIEW
