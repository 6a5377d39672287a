"""Azure Content Moderator Review API adapter: payloads to verdicts, the verdict policy, callback auth."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from tests.helpers import load_payload, load_payload_bytes
from verdict_relay.config import AzurePolicy, CallbackSettings
from verdict_relay.errors import CallbackAuthError, MalformedPayloadError, PayloadError
from verdict_relay.models.verdict import Finding, JobStatus, Suggestion, Verdict
from verdict_relay.providers.azure_review import AzureReviewAdapter, evaluate, evaluate_review
from verdict_relay.providers.base import CallbackRequest, VerifyContext

PROVIDER = "azure-review"
TOKEN = "azure-token-0123456789abcdef"
NEXT_TOKEN = "azure-token-rotated-fedcba9876543210"
HUAWEI_TOKEN = "huawei-token-0123456789abcdef"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def parse_one(payload: Any, policy: AzurePolicy | None = None) -> Verdict:
    verdicts = AzureReviewAdapter(policy).parse(payload)
    assert len(verdicts) == 1
    return verdicts[0]


def job_with(status: str = "Complete", **metadata: str) -> dict[str, Any]:
    """The seed's Get job response with its status and ResultMetaData replaced."""
    job: dict[str, Any] = load_payload(PROVIDER, "job-get")
    job["Status"] = status
    job["ResultMetaData"] = [{"Key": key, "Value": value} for key, value in metadata.items()]
    return job


def by_category(verdict: Verdict) -> dict[str, Finding]:
    return {finding.category: finding for finding in verdict.findings}


# --- fixtures to verdicts ---------------------------------------------------------------------------------


def test_seed_get_job_with_low_scores_passes_by_policy() -> None:
    verdict = parse_one(load_payload(PROVIDER, "job-get"))

    assert verdict.provider == PROVIDER
    assert verdict.job_id == "2017213fee37b184345gu9606e5d14e3"
    assert verdict.status is JobStatus.SUCCEEDED
    assert verdict.suggestion is Suggestion.PASS
    assert verdict.decided_by == "policy"
    assert verdict.findings == [
        Finding(category="adult", label="adult", confidence=0.007, suggestion=Suggestion.PASS),
        Finding(category="racy", label="racy", confidence=0.022, suggestion=Suggestion.PASS),
    ]
    assert verdict.error is None
    # The latest JobExecutionReport time, seven fractional digits and no zone -> UTC, microseconds.
    finished = datetime(2017, 9, 21, 22, 0, 47, 492056, tzinfo=UTC)
    assert verdict.updated_at == finished
    assert verdict.completed_at == finished
    assert verdict.created_at is None
    # The empty ReviewId and CallBackEndpoint are left out.
    assert verdict.metadata == {"team": "teamA", "workflow_id": "default", "content_type": "Image"}


def test_get_job_with_high_scores_blocks_and_carries_the_review_id() -> None:
    verdict = parse_one(load_payload(PROVIDER, "job-get-adult"))

    assert verdict.status is JobStatus.SUCCEEDED
    assert verdict.suggestion is Suggestion.BLOCK
    assert verdict.findings == [
        Finding(category="adult", label="adult", confidence=0.934, suggestion=Suggestion.BLOCK),
        Finding(category="racy", label="racy", confidence=0.971, suggestion=Suggestion.BLOCK),
        Finding(category="workflow", label="review_created", suggestion=Suggestion.REVIEW),
    ]
    assert verdict.categories == ["adult", "racy", "workflow"]
    assert verdict.metadata["review_id"] == "201711r7b1c2d3e4f5a6b7c8d9e0f1a2b3"
    assert verdict.completed_at == datetime(2017, 11, 2, 10, 15, 3, 118742, tzinfo=UTC)


def test_get_job_never_copies_the_callback_endpoint_which_holds_our_token() -> None:
    verdict = parse_one(load_payload(PROVIDER, "job-get-adult"))

    assert "relay.example.com" not in verdict.model_dump_json()


def test_text_job_with_profanity_is_reviewed_with_the_matched_terms() -> None:
    verdict = parse_one(load_payload(PROVIDER, "job-get-text-profanity"))

    assert verdict.status is JobStatus.SUCCEEDED
    assert verdict.suggestion is Suggestion.REVIEW
    assert verdict.findings == [
        Finding(
            category="profanity",
            label="profanity",
            suggestion=Suggestion.REVIEW,
            segments=["crap", "damn"],
        ),
        Finding(category="workflow", label="review_created", suggestion=Suggestion.REVIEW),
    ]
    assert verdict.metadata["content_type"] == "Text"


def test_a_job_whose_workflow_created_a_review_is_at_least_review_whatever_its_scores() -> None:
    # Low scores, but the team's workflow sent the content to a human: the reviewer's decision comes by callback
    # only, if ever, so the job's verdict is review, and published
    job = job_with(adultScore="0.30", isAdult="False", racyScore="0.01", isRacy="False")
    job["ReviewId"] = "201712r0a9"
    callback: dict[str, Any] = load_payload(PROVIDER, "job-callback")
    callback["Metadata"] = {"adultscore": "0.30", "a": "False", "racyscore": "0.01", "r": "False"}

    for verdict in (parse_one(job), parse_one(callback)):
        assert (verdict.suggestion, verdict.decided_by) == (Suggestion.REVIEW, "policy")
        assert by_category(verdict)["workflow"] == Finding(
            category="workflow", label="review_created", suggestion=Suggestion.REVIEW
        )
        assert by_category(verdict)["adult"].suggestion is Suggestion.PASS

    # Configurable: block, or pass to judge by the thresholds alone; no review id, no workflow finding
    assert parse_one(job, AzurePolicy(review_created=Suggestion.BLOCK)).suggestion is Suggestion.BLOCK
    passed = parse_one(job, AzurePolicy(review_created=Suggestion.PASS))
    assert (passed.suggestion, "workflow" in by_category(passed)) == (Suggestion.PASS, False)
    job["ReviewId"] = ""
    assert (parse_one(job).suggestion, "workflow" in by_category(parse_one(job))) == (Suggestion.PASS, False)


def test_in_progress_job_is_running_without_a_suggestion() -> None:
    verdict = parse_one(load_payload(PROVIDER, "job-get-inprogress"))

    assert verdict.status is JobStatus.RUNNING
    assert verdict.suggestion is None
    assert verdict.decided_by is None
    assert verdict.findings == []
    assert verdict.updated_at == datetime(2018, 1, 15, 14, 2, 9, 660521, tzinfo=UTC)
    assert verdict.completed_at is None
    assert verdict.metadata == {"team": "teamA", "workflow_id": "default", "content_type": "Video"}


def test_job_callback_is_judged_from_its_metadata_dict() -> None:
    verdict = parse_one(load_payload(PROVIDER, "job-callback"))

    assert verdict.job_id == "2018014caceddebfe9446fab29056fd8d31ffe"
    assert verdict.status is JobStatus.SUCCEEDED
    # adult 0.682 reaches the default review threshold 0.5 but not block 0.8.
    assert verdict.suggestion is Suggestion.REVIEW
    assert verdict.decided_by == "policy"
    assert by_category(verdict)["adult"].suggestion is Suggestion.REVIEW
    assert by_category(verdict)["racy"].suggestion is Suggestion.PASS
    assert verdict.metadata == {
        "workflow_id": "default",
        "review_id": "201801i28fc0f7cbf424447846e509af853ea54",
        "content_id": "contentID",
        "content_type": "Image",
    }
    assert verdict.completed_at is None  # a job callback carries no time


def test_camel_case_job_callback_gives_the_same_verdict_as_pascal_case() -> None:
    pascal = parse_one(load_payload(PROVIDER, "job-callback"))
    camel = parse_one(load_payload(PROVIDER, "job-callback-camelcase"))

    assert camel == pascal


def test_review_callback_is_the_reviewers_decision_keyed_by_review_id() -> None:
    verdict = parse_one(load_payload(PROVIDER, "review-callback"))

    assert verdict.job_id == "201801i28fc0f7cbf424447846e509af853ea54"
    assert verdict.status is JobStatus.SUCCEEDED
    assert verdict.decided_by == "reviewer"
    # Tag a (adult) is true and maps to block by default; r is false and yields no finding. Its category is the
    # one the job's adult score is found under.
    assert verdict.suggestion is Suggestion.BLOCK
    assert verdict.findings == [
        Finding(category="adult", label="a", confidence=1.0, suggestion=Suggestion.BLOCK)
    ]
    modified = datetime(2018, 1, 16, 7, 43, 56, 128563, tzinfo=UTC)
    assert verdict.updated_at == modified
    assert verdict.completed_at == modified
    assert verdict.metadata == {
        "review_id": "201801i28fc0f7cbf424447846e509af853ea54",
        "reviewed_by": "reviewer01",
        "content_id": "contentID",
    }


def test_review_verdict_joins_the_job_verdict_through_metadata_review_id() -> None:
    job = parse_one(load_payload(PROVIDER, "job-callback"))
    review = parse_one(load_payload(PROVIDER, "review-callback"))

    assert job.metadata["review_id"] == review.job_id


# --- statuses ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("azure_status", "expected"),
    [
        ("Pending", JobStatus.PENDING),
        ("InProgress", JobStatus.RUNNING),
        ("inprogress", JobStatus.RUNNING),
        ("Complete", JobStatus.SUCCEEDED),
        ("Completed", JobStatus.SUCCEEDED),
        ("COMPLETE", JobStatus.SUCCEEDED),
        ("Failed", JobStatus.FAILED),
        ("Error", JobStatus.FAILED),
    ],
)
def test_azure_statuses_map_to_canonical_statuses(azure_status: str, expected: JobStatus) -> None:
    verdict = parse_one(job_with(azure_status, adultScore="0.1", isAdult="False"))

    assert verdict.status is expected


def test_pending_job_has_no_suggestion_and_no_completion_time() -> None:
    verdict = parse_one(job_with("Pending", adultScore="0.99"))

    assert verdict.suggestion is None
    assert verdict.findings == []
    assert verdict.completed_at is None


def test_failed_job_carries_the_latest_execution_report_message_as_its_error() -> None:
    # Given a failed job whose report is listed out of time order
    job = job_with("Failed")
    job["JobExecutionReport"] = [
        {"Ts": "2017-09-21T22:00:46.1098543", "Msg": "Starting Execution - Try 1"},
        {"Ts": "2017-09-21T22:00:49.0000001", "Msg": "Failed to get isadult response from Moderator"},
        {"Ts": "2017-09-21T22:00:47.5", "Msg": "Retrying"},
    ]

    verdict = parse_one(job)

    assert verdict.status is JobStatus.FAILED
    assert verdict.suggestion is None
    assert verdict.decided_by is None
    assert verdict.findings == []
    assert verdict.error is not None
    assert verdict.error.code == "job_failed"
    assert verdict.error.message == "Failed to get isadult response from Moderator"
    assert verdict.completed_at == datetime(2017, 9, 21, 22, 0, 49, tzinfo=UTC)


def test_a_failed_jobs_error_is_its_last_message_other_than_the_note_of_results_posted_to_our_callback() -> (
    None
):
    # Given a failed job whose newest report entry is Azure's note of the results posted to its callback URL
    job = job_with("Failed")
    job["JobExecutionReport"] = [
        {
            "Ts": "2017-09-21T22:00:50",
            "Msg": "Posted results to the Callbackendpoint: https://example.com/callbacks/azure-review?token=t",
        },
        {"Ts": "2017-09-21T22:00:49", "Msg": "Failed to get isadult response from Moderator"},
        {"Ts": "2017-09-21T22:00:46", "Msg": "Starting Execution - Try 1"},
    ]

    verdict = parse_one(job)

    # Then its error says why it failed, and its time is still that of the newest entry
    assert verdict.error is not None
    assert verdict.error.message == "Failed to get isadult response from Moderator"
    assert verdict.completed_at == datetime(2017, 9, 21, 22, 0, 50, tzinfo=UTC)


def test_failed_job_callback_without_a_report_still_has_an_error() -> None:
    callback = load_payload(PROVIDER, "job-callback")
    callback["Status"] = "Error"

    verdict = parse_one(callback)

    assert verdict.status is JobStatus.FAILED
    assert verdict.error is not None
    assert verdict.error.code == "job_failed"
    assert verdict.error.message


def test_unknown_status_is_refused_naming_the_status_field() -> None:
    with pytest.raises(PayloadError) as raised:
        parse_one(job_with("Cancelled"))

    assert raised.value.field == "status"
    assert "Cancelled" in raised.value.problem


def test_missing_status_is_refused_naming_the_status_field() -> None:
    callback = load_payload(PROVIDER, "job-callback")
    del callback["Status"]

    with pytest.raises(PayloadError) as raised:
        parse_one(callback)

    assert raised.value.field == "status"


# --- the verdict policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "score", "expected"),
    [
        ("adult", "0.49", Suggestion.PASS),
        ("adult", "0.5", Suggestion.REVIEW),
        ("adult", "0.79", Suggestion.REVIEW),
        ("adult", "0.8", Suggestion.BLOCK),
        ("racy", "0.49", Suggestion.PASS),
        ("racy", "0.5", Suggestion.REVIEW),
        ("racy", "0.89", Suggestion.REVIEW),
        ("racy", "0.9", Suggestion.BLOCK),
    ],
)
def test_the_default_thresholds_are_the_documented_ones(
    category: str, score: str, expected: Suggestion
) -> None:
    # Given the default policy (docs/providers.md: review at 0.5 for both, block at 0.8 adult and 0.9 racy)
    # When an unflagged job scores the category so (the other category at nothing)
    other = "racy" if category == "adult" else "adult"
    verdict = parse_one(job_with(**{f"{category}Score": score, f"{other}Score": "0.01"}))

    # Then it is judged by those thresholds
    assert by_category(verdict)[category].suggestion is expected


def test_thresholds_given_for_one_category_keep_the_others_defaults() -> None:
    # Given a policy that sets adult's block threshold only
    policy = AzurePolicy.model_validate({"block_threshold": {"Adult": 0.7}})

    # When a job with a high racy score and a mid adult score is judged
    verdict = parse_one(job_with(adultScore="0.75", racyScore="0.95"), policy)

    # Then adult meets the new threshold and racy still meets its default one
    assert policy.block_threshold == {"adult": 0.7, "racy": 0.9}
    assert by_category(verdict)["adult"].suggestion is Suggestion.BLOCK
    assert by_category(verdict)["racy"].suggestion is Suggestion.BLOCK


def test_flag_alone_sends_a_low_score_to_review() -> None:
    verdict = parse_one(job_with(adultScore="0.01", isAdult="True"))

    assert verdict.suggestion is Suggestion.REVIEW
    assert by_category(verdict)["adult"].suggestion is Suggestion.REVIEW


def test_category_without_thresholds_is_decided_by_its_flag_alone() -> None:
    policy = AzurePolicy(review_threshold={"racy": None}, block_threshold={"racy": None})

    unflagged = parse_one(job_with(racyScore="0.99", isRacy="False"), policy)
    flagged = parse_one(job_with(racyScore="0.99", isRacy="True"), policy)

    assert unflagged.suggestion is Suggestion.PASS
    assert flagged.suggestion is Suggestion.REVIEW


@pytest.mark.parametrize("category", ["violence", "Category1", "adult_content", "self-harm"])
def test_any_category_a_policy_names_is_read_from_its_score_and_flag_keys(category: str) -> None:
    # A name the policy takes (Azure's text classes are Category1 to Category3) must be one the job is read by:
    # a threshold that never applies would publish a score the operator meant to block as pass
    policy = AzurePolicy.model_validate({"block_threshold": {category: 0.5}})

    scored = parse_one(job_with(**{f"{category}Score": "0.95"}), policy)
    flagged = parse_one(job_with(**{f"is{category}": "True"}), policy)

    assert scored.suggestion is Suggestion.BLOCK
    assert by_category(scored)[category.lower()].confidence == 0.95
    assert flagged.suggestion is Suggestion.REVIEW


def test_job_suggestion_is_the_worst_category() -> None:
    verdict = parse_one(job_with(adultScore="0.6", racyScore="0.95"))

    assert by_category(verdict)["adult"].suggestion is Suggestion.REVIEW
    assert by_category(verdict)["racy"].suggestion is Suggestion.BLOCK
    assert verdict.suggestion is Suggestion.BLOCK


def test_profanity_suggestion_is_configurable() -> None:
    policy = AzurePolicy(profanity=Suggestion.BLOCK)

    verdict = parse_one(load_payload(PROVIDER, "job-get-text-profanity"), policy)

    assert verdict.suggestion is Suggestion.BLOCK


def test_text_job_without_profanity_passes_with_a_profanity_finding() -> None:
    verdict = parse_one(job_with(**{"text.HasProfanity": "False"}))

    assert verdict.suggestion is Suggestion.PASS
    assert verdict.findings == [Finding(category="profanity", label="profanity", suggestion=Suggestion.PASS)]


def test_matched_terms_without_a_profanity_result_count_as_profanity() -> None:
    verdict = parse_one(job_with(matchTerms='["crap"]'))

    assert verdict.suggestion is Suggestion.REVIEW
    assert by_category(verdict)["profanity"].segments == ["crap"]


def test_a_matched_term_cut_inside_a_character_is_kept_with_the_replacement_character_and_the_others() -> (
    None
):
    verdict = parse_one(job_with(matchTerms='["crap", "12\\ud83d"]', adultScore="0.1", racyScore="0.1"))

    assert verdict.suggestion is Suggestion.REVIEW
    assert by_category(verdict)["profanity"].segments == ["crap", "12\ufffd"]
    assert verdict.model_dump_json()  # storable


@pytest.mark.parametrize(
    ("profanity_key", "terms_key"), [("text.HasProfanity", "matchTerms"), ("HasProfanity", "text.MatchTerms")]
)
def test_both_documented_spellings_of_the_profanity_keys_are_read(profanity_key: str, terms_key: str) -> None:
    # Given clean text jobs, and profane ones, whose result keys come with or without the "text." prefix
    clean = job_with(**{profanity_key: "False"})
    profane = job_with(**{profanity_key: "True", terms_key: '["crap"]'})

    # When they are judged
    clean_verdict, profane_verdict = parse_one(clean), parse_one(profane)

    # Then the clean one passes on its profanity result and the profane one carries its matched terms
    assert clean_verdict.suggestion is Suggestion.PASS
    assert clean_verdict.findings == [
        Finding(category="profanity", label="profanity", suggestion=Suggestion.PASS)
    ]
    assert profane_verdict.suggestion is Suggestion.REVIEW
    assert by_category(profane_verdict)["profanity"].segments == ["crap"]


def test_match_terms_holding_the_text_screen_response_yield_its_terms() -> None:
    # Given matchTerms holding a text screen response: the terms under "Terms", each object with its "Term"
    screen = (
        '{"OriginalText": "Is this a crap email?", "Language": "eng", "Terms": ['
        '{"Index": 10, "OriginalIndex": 10, "ListId": 0, "Term": "crap"}]}'
    )

    # When the job is judged
    verdict = parse_one(job_with(matchTerms=screen))

    # Then the term found is the profanity finding's segment
    assert verdict.suggestion is Suggestion.REVIEW
    assert by_category(verdict)["profanity"].segments == ["crap"]


def test_a_term_matched_twice_is_one_segment_of_the_profanity_finding_only() -> None:
    # Given a text job whose matchTerms lists one term at two places, and which also reports scores
    match_terms = (
        '[{"Index": 6, "OriginalIndex": 6, "ListId": 0, "Term": "crap"},'
        ' {"Index": 30, "OriginalIndex": 30, "ListId": 0, "Term": "crap"}]'
    )
    job = job_with(**{"text.HasProfanity": "True", "matchTerms": match_terms, "adultScore": "0.1"})

    # When it is judged
    verdict = parse_one(job)

    # Then the term is one segment, of the profanity finding and of no other
    assert by_category(verdict)["profanity"].segments == ["crap"]
    assert by_category(verdict)["adult"].segments == []


def test_a_profanity_result_of_false_is_not_overruled_by_matched_terms() -> None:
    # Given a text job that reports no profanity, though its matchTerms lists a term
    job = job_with(**{"text.HasProfanity": "False", "matchTerms": '["crap"]'})

    # When it is judged
    verdict = parse_one(job)

    # Then its own profanity result decides: it passes
    assert verdict.suggestion is Suggestion.PASS
    assert by_category(verdict)["profanity"].suggestion is Suggestion.PASS


def test_score_and_flag_keys_of_categories_no_policy_names_are_ignored() -> None:
    # Given a job with low adult and racy scores and other keys shaped like scores and flags (Azure's image
    # evaluation names, a text classification score), some of them not numbers or booleans at all
    job = job_with(
        adultScore="0.01",
        racyScore="0.01",
        AdultClassificationScore="0.96",
        IsImageAdultClassified="True",
        **{"text.Classification.Category1.Score": "0.97", "isTextOnly": "n/a", "ocrScore": "high"},
    )

    # When it is judged by the default policy
    verdict = parse_one(job)

    # Then only the documented keys are read: it passes with the adult and racy findings alone
    assert verdict.suggestion is Suggestion.PASS
    assert [finding.category for finding in verdict.findings] == ["adult", "racy"]


@pytest.mark.parametrize("match_terms", ["not json", "{", "42", '{"Foo": 1}', "[]", "[null, 3]", "[" * 5000])
def test_unreadable_match_terms_never_fail_the_parse(match_terms: str) -> None:
    verdict = parse_one(job_with(**{"text.HasProfanity": "True", "matchTerms": match_terms}))

    assert verdict.suggestion is Suggestion.REVIEW
    assert by_category(verdict)["profanity"].segments == []


def test_completed_job_with_nothing_to_judge_goes_to_review() -> None:
    verdict = parse_one(job_with(someOtherKey="whatever"))

    assert verdict.status is JobStatus.SUCCEEDED
    assert verdict.suggestion is Suggestion.REVIEW
    assert verdict.decided_by == "policy"
    assert verdict.findings == []


def test_evaluate_is_a_pure_mapping_of_scores_flags_and_profanity() -> None:
    suggestion, findings = evaluate(
        {"adult": 0.85, "racy": 0.1}, {"adult": False, "racy": True}, False, AzurePolicy()
    )

    assert suggestion is Suggestion.BLOCK
    assert [(f.category, f.suggestion) for f in findings] == [
        ("adult", Suggestion.BLOCK),
        ("racy", Suggestion.REVIEW),
        ("profanity", Suggestion.PASS),
    ]


def test_evaluate_gives_a_flag_only_category_no_confidence() -> None:
    _, findings = evaluate({}, {"adult": True}, None, AzurePolicy())

    assert findings == [
        Finding(category="adult", label="adult", confidence=None, suggestion=Suggestion.REVIEW)
    ]


# --- reviewer tags ----------------------------------------------------------------------------------------


def test_reviewer_tags_map_through_the_policy() -> None:
    suggestion, findings = evaluate_review({"a": False, "r": True}, AzurePolicy())

    assert suggestion is Suggestion.REVIEW
    assert findings == [Finding(category="racy", label="r", confidence=1.0, suggestion=Suggestion.REVIEW)]


def test_unknown_true_reviewer_tag_goes_to_review() -> None:
    suggestion, findings = evaluate_review({"sc": True}, AzurePolicy())

    assert suggestion is Suggestion.REVIEW
    assert findings == [Finding(category="sc", label="sc", confidence=1.0, suggestion=Suggestion.REVIEW)]


def test_unknown_tag_suggestion_is_configurable() -> None:
    suggestion, _ = evaluate_review({"sc": True}, AzurePolicy(unknown_tag=Suggestion.BLOCK))

    assert suggestion is Suggestion.BLOCK


def test_reviewer_tag_mapping_is_configurable() -> None:
    policy = AzurePolicy(reviewer_tags={"a": Suggestion.REVIEW, "r": Suggestion.PASS})
    review = load_payload(PROVIDER, "review-callback")
    review["ReviewerResultTags"] = {"a": "True", "r": "True"}

    verdict = parse_one(review, policy)

    assert verdict.suggestion is Suggestion.REVIEW
    assert [(f.label, f.suggestion) for f in verdict.findings] == [
        ("a", Suggestion.REVIEW),
        ("r", Suggestion.PASS),
    ]


def test_reviewer_tags_given_in_the_document_keep_the_defaults_of_the_others() -> None:
    # Given a providers document that maps one more tag, in its own casing, and removes "r"
    policy = AzurePolicy.model_validate({"reviewer_tags": {"V": "block", "r": None}})
    review = load_payload(PROVIDER, "review-callback")
    review["ReviewerResultTags"] = {"a": "True", "r": "True", "v": "True"}

    # When a reviewer's decision with all three tags is parsed
    verdict = parse_one(review, policy)

    # Then "a" is still blocked by its default, "v" as configured, and "r" is an unknown tag
    assert policy.reviewer_tags == {"a": Suggestion.BLOCK, "v": Suggestion.BLOCK}
    assert [(f.category, f.label, f.suggestion) for f in verdict.findings] == [
        ("adult", "a", Suggestion.BLOCK),
        ("racy", "r", policy.unknown_tag),
        ("v", "v", Suggestion.BLOCK),
    ]


def test_reviewer_tags_are_matched_in_any_case_and_labelled_in_lower_case() -> None:
    review = load_payload(PROVIDER, "review-callback")
    review["ReviewerResultTags"] = {"Violence": "True", "A": "True"}

    verdict = parse_one(review, AzurePolicy.model_validate({"reviewer_tags": {"VIOLENCE": "block"}}))

    assert [(f.category, f.label, f.suggestion) for f in verdict.findings] == [
        ("adult", "a", Suggestion.BLOCK),
        ("violence", "violence", Suggestion.BLOCK),
    ]


@pytest.mark.parametrize("tags", [["a"], {"a": "maybe"}, "block"])
def test_reviewer_tags_that_are_not_a_map_of_suggestions_are_refused_naming_the_field(tags: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        AzurePolicy.model_validate({"reviewer_tags": tags})

    assert caught.value.errors()[0]["loc"][0] == "reviewer_tags"


@pytest.mark.parametrize(
    "document",
    [
        {"reviewer_tags": {"A": "review", "a": None}},
        {"review_threshold": {"adult": 0.4, "Adult": 0.6}},
        {"block_threshold": {"RACY": None, "racy": 0.7}},
    ],
)
def test_a_key_given_twice_in_different_cases_is_refused_rather_than_settled_by_its_order(
    document: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError, match="is given twice"):
        AzurePolicy.model_validate(document)


def test_review_with_all_tags_false_passes() -> None:
    review = load_payload(PROVIDER, "review-callback")
    review["ReviewerResultTags"] = {"a": "false", "r": "FALSE"}

    verdict = parse_one(review)

    assert verdict.suggestion is Suggestion.PASS
    assert verdict.decided_by == "reviewer"
    assert verdict.findings == []


# --- key casing and bad values ----------------------------------------------------------------------------


def test_keys_and_metadata_keys_in_any_case_are_read() -> None:
    job = {
        "ID": "job-1",
        "STATUS": "complete",
        "teamname": "teamA",
        "resultMetaData": [
            {"key": "ADULTSCORE", "value": "0.9"},
            {"KEY": "IsRacy", "VALUE": "tRuE"},
        ],
        "jobexecutionreport": [{"ts": "2017-09-21T22:00:47Z", "msg": "Execution Complete"}],
    }

    verdict = parse_one(job)

    assert verdict.job_id == "job-1"
    assert verdict.suggestion is Suggestion.BLOCK
    assert by_category(verdict)["adult"].confidence == 0.9
    assert by_category(verdict)["racy"].suggestion is Suggestion.REVIEW
    assert verdict.metadata == {"team": "teamA"}


def test_same_key_in_two_cases_is_refused_as_ambiguous() -> None:
    callback = load_payload(PROVIDER, "job-callback")
    callback["status"] = "Error"

    with pytest.raises(PayloadError) as raised:
        parse_one(callback)

    assert raised.value.field.lower() == "status"


@pytest.mark.parametrize("bad_score", ["high", "1.5", "-0.1", "nan", "", "True"])
def test_bad_score_is_refused_naming_the_metadata_key(bad_score: str) -> None:
    with pytest.raises(PayloadError) as raised:
        parse_one(job_with(adultScore=bad_score))

    assert raised.value.field == "ResultMetaData.adultScore"


@pytest.mark.parametrize("boolean", [True, False])
def test_a_score_sent_as_a_json_boolean_is_refused_not_read_as_one_or_zero(boolean: bool) -> None:
    # Azure sends scores as text; true read as 1.0 would block, false as 0.0 would pass
    with pytest.raises(PayloadError) as raised:
        parse_one(job_with(adultScore=boolean))  # type: ignore[arg-type]

    assert raised.value.field == "ResultMetaData.adultScore"


def test_bad_score_in_a_job_callback_names_the_metadata_key() -> None:
    callback = load_payload(PROVIDER, "job-callback")
    callback["Metadata"]["racyscore"] = "0,5"

    with pytest.raises(PayloadError) as raised:
        parse_one(callback)

    assert raised.value.field == "Metadata.racyscore"


@pytest.mark.parametrize("bad_flag", ["yes", "1", "", "Truee"])
def test_bad_flag_is_refused_naming_the_metadata_key(bad_flag: str) -> None:
    with pytest.raises(PayloadError) as raised:
        parse_one(job_with(adultScore="0.1", isAdult=bad_flag))

    assert raised.value.field == "ResultMetaData.isAdult"


def test_bad_reviewer_tag_is_refused_naming_the_tag() -> None:
    review = load_payload(PROVIDER, "review-callback")
    review["ReviewerResultTags"]["r"] = "maybe"

    with pytest.raises(PayloadError) as raised:
        parse_one(review)

    assert raised.value.field == "ReviewerResultTags.r"


def test_flag_sent_twice_with_different_values_is_refused() -> None:
    callback = load_payload(PROVIDER, "job-callback")
    callback["Metadata"]["isadult"] = "True"  # contradicts "a": "False"

    with pytest.raises(PayloadError) as raised:
        parse_one(callback)

    assert "conflicts" in raised.value.problem


def test_bad_execution_report_time_is_refused_naming_the_field() -> None:
    job = job_with(adultScore="0.1")
    job["JobExecutionReport"][0]["Ts"] = "yesterday"

    with pytest.raises(PayloadError) as raised:
        parse_one(job)

    assert raised.value.field == "jobexecutionreport.0.ts"


# --- shapes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [[], "job", 42, None, [{"Id": "x", "Status": "Complete"}]])
def test_payload_that_is_not_an_object_is_refused(payload: Any) -> None:
    with pytest.raises(PayloadError) as raised:
        parse_one(payload)

    assert raised.value.field == "(root)"


def test_unknown_shape_is_refused() -> None:
    with pytest.raises(PayloadError) as raised:
        parse_one({"Error": {"Code": "NotFound", "Message": "Job not found"}})

    assert raised.value.field == "(root)"


def test_payload_with_markers_of_two_shapes_and_no_callback_type_is_refused() -> None:
    payload = load_payload(PROVIDER, "job-callback")
    del payload["CallBackType"]
    payload["Id"] = "another-id"

    with pytest.raises(PayloadError) as raised:
        parse_one(payload)

    assert raised.value.field == "(root)"


def test_callbacks_without_callback_type_are_recognised_by_their_keys() -> None:
    job_callback = load_payload(PROVIDER, "job-callback")
    review_callback = load_payload(PROVIDER, "review-callback")
    del job_callback["CallBackType"], review_callback["CallBackType"]

    assert parse_one(job_callback) == parse_one(load_payload(PROVIDER, "job-callback"))
    assert parse_one(review_callback) == parse_one(load_payload(PROVIDER, "review-callback"))


def test_unknown_callback_type_is_refused_naming_it() -> None:
    payload = load_payload(PROVIDER, "job-callback")
    payload["CallBackType"] = "Workflow"

    with pytest.raises(PayloadError) as raised:
        parse_one(payload)

    assert raised.value.field == "callbacktype"


def test_job_callback_without_job_id_is_refused_naming_it() -> None:
    payload = load_payload(PROVIDER, "job-callback")
    del payload["JobId"]

    with pytest.raises(PayloadError) as raised:
        parse_one(payload)

    assert raised.value.field == "jobid"


def test_parsing_does_not_change_the_callers_payload() -> None:
    payload = load_payload(PROVIDER, "job-callback-camelcase")
    before = copy.deepcopy(payload)

    parse_one(payload)

    assert payload == before


# --- callbacks: parsing and authentication ----------------------------------------------------------------


def request_for(body: bytes, token: str | None = None) -> CallbackRequest:
    return CallbackRequest(body=body, headers={}, query={"token": token} if token is not None else {})


def context_with(*tokens: str) -> VerifyContext:
    return VerifyContext(settings=CallbackSettings(tokens=list(tokens)), now=NOW)


@pytest.mark.parametrize("fixture", ["job-callback", "job-callback-camelcase", "review-callback"])
def test_parse_callback_returns_the_verdict_of_the_body(fixture: str) -> None:
    result = AzureReviewAdapter().parse_callback(request_for(load_payload_bytes(PROVIDER, fixture), TOKEN))

    verdict = parse_one(load_payload(PROVIDER, fixture))
    # A reviewer's decision cannot be fetched from the jobs API: it is marked as the body's only.
    if fixture == "review-callback":
        assert (result.verdicts, result.body_only) == ([], [verdict])
    else:
        assert (result.verdicts, result.body_only) == ([verdict], [])
    assert result.jobs_to_fetch == []


def test_parse_callback_refuses_a_body_that_is_not_json() -> None:
    with pytest.raises(MalformedPayloadError):
        AzureReviewAdapter().parse_callback(request_for(b"<xml/>", TOKEN))


def test_verify_callback_accepts_the_configured_token() -> None:
    body = load_payload_bytes(PROVIDER, "job-callback")

    AzureReviewAdapter().verify_callback(request_for(body, TOKEN), context_with(TOKEN))


@pytest.mark.parametrize("presented", [TOKEN, NEXT_TOKEN])
def test_verify_callback_accepts_both_tokens_during_rotation(presented: str) -> None:
    body = load_payload_bytes(PROVIDER, "job-callback")

    AzureReviewAdapter().verify_callback(request_for(body, presented), context_with(TOKEN, NEXT_TOKEN))


@pytest.mark.parametrize(
    "presented",
    [None, "", "wrong-token-0123456789abcdef", HUAWEI_TOKEN, TOKEN.upper(), TOKEN + "x"],
    ids=["missing", "empty", "wrong", "other-providers-token", "other-case", "longer"],
)
def test_verify_callback_rejects_a_missing_or_wrong_token(presented: str | None) -> None:
    # Given Azure's settings hold only Azure's token (Huawei's token is configured for Huawei alone)
    body = load_payload_bytes(PROVIDER, "job-callback")

    with pytest.raises(CallbackAuthError) as raised:
        AzureReviewAdapter().verify_callback(request_for(body, presented), context_with(TOKEN))

    assert TOKEN not in raised.value.message


def test_verify_callback_refuses_when_no_token_is_configured() -> None:
    # Azure signs nothing: with no URL token configured there is nothing to check, so nothing gets in.
    body = load_payload_bytes(PROVIDER, "job-callback")

    with pytest.raises(CallbackAuthError):
        AzureReviewAdapter().verify_callback(request_for(body, TOKEN), context_with())


def test_adapter_identity() -> None:
    adapter = AzureReviewAdapter()

    assert adapter.name == PROVIDER
    assert adapter.callback_ack_status == 200
    assert adapter.policy == AzurePolicy()


# --- out-of-range values: refused as payload errors, quoted only in part ------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**load_payload(PROVIDER, "job-callback"), "JobId": "\u00e9" * 257}, "jobid"),
        ({**load_payload(PROVIDER, "job-get"), "Id": "\U0001f600" * 129}, "id"),
        ({**load_payload(PROVIDER, "review-callback"), "ReviewId": "\u00e9" * 257}, "reviewid"),
    ],
    ids=["job-callback", "get-job", "review-callback"],
)
def test_an_id_over_512_bytes_is_refused_naming_it(payload: dict[str, Any], field: str) -> None:
    # 257 or 129 characters, but over 512 bytes: more than the table's key takes
    with pytest.raises(PayloadError) as raised:
        parse_one(payload)

    assert raised.value.field == field
    assert "bytes" in raised.value.problem


@pytest.mark.parametrize("digits", [400, 4000])
def test_a_score_too_large_for_a_float_is_refused_naming_the_key(digits: int) -> None:
    # An integer of hundreds of digits (1 and zeros): float() raises OverflowError rather than giving infinity
    with pytest.raises(PayloadError) as raised:
        parse_one(job_with(adultScore=10**digits))  # type: ignore[arg-type]

    assert raised.value.field == "ResultMetaData.adultScore"
    assert "0" * 41 not in raised.value.message


LONG = "x" * 1000


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (job_with(adultScore=LONG), "ResultMetaData.adultScore"),
        (job_with(isAdult=LONG), "ResultMetaData.isAdult"),
        (job_with(status=LONG), "status"),
        ({**load_payload(PROVIDER, "job-callback"), "CallBackType": LONG}, "callbacktype"),
        (
            {**load_payload(PROVIDER, "review-callback"), "ReviewerResultTags": {"a": LONG}},
            "ReviewerResultTags.a",
        ),
    ],
    ids=["score", "flag", "status", "callback-type", "reviewer-tag"],
)
def test_a_refused_value_is_quoted_only_in_part(payload: dict[str, Any], field: str) -> None:
    # The message is returned to the caller and logged: a whole value sent back would be theirs to size
    with pytest.raises(PayloadError) as raised:
        parse_one(payload)

    assert raised.value.field == field
    assert "x" * 30 in raised.value.message  # enough to recognise it
    assert "x" * 41 not in raised.value.message
