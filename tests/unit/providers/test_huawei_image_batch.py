"""Huawei Image Moderation v1.0 batch jobs: result queries and job lists to verdicts; callbacks refused."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.helpers import (
    RECASING_IDS,
    RECASINGS,
    SUGGESTION_KEYS,
    load_payload,
    load_payload_bytes,
    recased,
)
from verdict_relay.config import CallbackSettings
from verdict_relay.errors import CallbackAuthError, PayloadError
from verdict_relay.logic.policy import VerdictPolicy
from verdict_relay.models.verdict import ContentRef, Finding, JobStatus, Suggestion, VerdictError
from verdict_relay.providers.base import CallbackRequest, VerifyContext
from verdict_relay.providers.huawei_image_batch import HuaweiImageBatchAdapter

PROVIDER = "huawei-image-batch"
TERRORISM_URL = "https://obs-test-llg.obs.myhuaweicloud.com/terrorism"
CLARITY_URL = "https://obs-test-llg.obs.myhuaweicloud.com/clarity-detect"
BEACH_URL = "https://obs-test-llg.obs.myhuaweicloud.com/beach"
BANNER_URL = "https://obs-test-llg.obs.myhuaweicloud.com/banner"
HUGE_URL = "https://obs-test-llg.obs.myhuaweicloud.com/huge.tiff"

adapter = HuaweiImageBatchAdapter()


def only_verdict(payload: Any) -> Any:
    verdicts = adapter.parse(payload)
    assert len(verdicts) == 1
    return verdicts[0]


def test_finished_seed_job_passes_as_the_provider_says() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "finish"))

    assert verdict.provider == PROVIDER
    assert verdict.job_id == "44d93b70-db01-4f96-a618-2a79c964c4b2"
    assert verdict.status is JobStatus.SUCCEEDED
    assert verdict.suggestion is Suggestion.PASS
    assert verdict.decided_by == "provider"
    assert verdict.item_errors == []
    assert verdict.error is None
    # two images: no single content, the findings name their image
    assert verdict.content is None
    assert verdict.created_at == datetime(2018, 1, 2, 15, 3, 4, tzinfo=UTC)
    assert verdict.completed_at == datetime(2018, 1, 2, 15, 3, 4, tzinfo=UTC)


def test_every_scored_label_but_normal_is_a_finding_of_its_image() -> None:
    findings = only_verdict(load_payload(PROVIDER, "finish")).findings

    # fire (first image), knife, terrorist, bloody (second): the "normal" entries are left out
    assert [(f.item, f.label) for f in findings] == [
        (TERRORISM_URL, "fire"),
        (CLARITY_URL, "knife"),
        (CLARITY_URL, "terrorist"),
        (CLARITY_URL, "bloody"),
    ]
    assert findings[3] == Finding(
        category="terrorism", label="bloody", confidence=0.3086, suggestion=Suggestion.PASS, item=CLARITY_URL
    )


def test_running_seed_job_has_no_suggestion_yet() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "running"))

    assert verdict.status is JobStatus.RUNNING
    assert verdict.suggestion is None
    assert verdict.decided_by is None
    assert verdict.findings == []
    assert verdict.completed_at is None
    assert verdict.updated_at == datetime(2018, 11, 22, 6, 17, 16, tzinfo=UTC)


def test_failed_item_goes_to_item_errors_and_the_job_takes_the_worst_moderated_suggestion() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "finish-with-failed-item"))

    assert verdict.status is JobStatus.SUCCEEDED
    assert verdict.suggestion is Suggestion.BLOCK
    assert verdict.decided_by == "provider"
    assert verdict.error is None
    assert verdict.item_errors == [
        VerdictError(code="AIS.0103", message="The image size does not meet the requirements.", item=HUGE_URL)
    ]
    assert verdict.completed_at == datetime(2018, 11, 22, 6, 17, 38, tzinfo=UTC)


def test_category_suggestions_label_findings_and_an_unexplained_review_is_a_finding_of_its_image() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "finish-with-failed-item"))
    findings = verdict.findings

    assert findings == [
        Finding(
            category="porn", label="porn", confidence=0.9712, suggestion=Suggestion.BLOCK, item=BEACH_URL
        ),
        Finding(
            category="porn", label="sexy", confidence=0.0214, suggestion=Suggestion.BLOCK, item=BEACH_URL
        ),
        # the banner is "review" with no per-category suggestion: which category caused it is not said, so
        # its finding has no suggestion, and the image's own review is one more finding
        Finding(
            category="ad",
            label="qr_code",
            confidence=0.7421,
            suggestion=None,
            item=BANNER_URL,
            text="scan for free coins",
        ),
        Finding(
            category="image",
            label="image",
            suggestion=Suggestion.REVIEW,
            item=BANNER_URL,
            text="scan for free coins",
        ),
    ]
    assert verdict.categories == ["image", "porn"]


def test_an_image_rated_block_by_its_suggestion_alone_is_in_the_verdicts_categories() -> None:
    # Given a batch of an image that says block only in its own suggestion (the API page's items carry no
    # category_suggestions) and an image rated review in the "ad" category
    payload = {
        "result": {
            "job_id": "mixed",
            "status": "finish",
            "items": [
                {
                    "url": BEACH_URL,
                    "suggestion": "block",
                    "detail": {"porn": [{"label": "porn", "confidence": 0.99}], "ad": [{"label": "normal"}]},
                },
                {
                    "url": BANNER_URL,
                    "suggestion": "review",
                    "category_suggestions": {"ad": "review"},
                    "detail": {"ad": [{"label": "qr_code", "confidence": 0.74}]},
                },
            ],
        }
    }

    # When it is parsed
    verdict = only_verdict(payload)

    # Then the blocked image is a block finding of its own, so a subscriber filtering on categories sees it
    assert verdict.suggestion is Suggestion.BLOCK
    assert [(f.item, f.category, f.label, f.suggestion) for f in verdict.findings] == [
        (BEACH_URL, "porn", "porn", None),
        (BEACH_URL, "image", "image", Suggestion.BLOCK),
        (BANNER_URL, "ad", "qr_code", Suggestion.REVIEW),
    ]
    assert verdict.categories == ["ad", "image"]


def test_sdk_spelling_category_suggestion_is_read_too() -> None:
    payload = load_payload(PROVIDER, "finish-with-failed-item")
    banner = payload["result"]["items"][1]
    banner["category_suggestion"] = {"ad": "review"}

    findings = only_verdict(payload).findings

    assert findings[2].suggestion is Suggestion.REVIEW


def one_image(**item: Any) -> dict[str, Any]:
    return {"result": {"job_id": "single", "status": "finish", "items": [{"url": BEACH_URL, **item}]}}


@pytest.mark.parametrize(
    ("item_suggestion", "category_suggestions"),
    [
        ("block", {"porn": "block"}),
        ("review", {"porn": "review"}),
        ("review", {"porn": "block"}),
        ("review", {"porn": "pass", "ad": "review"}),
        ("pass", {}),
    ],
)
def test_an_image_whose_findings_are_as_strict_as_it_gets_no_finding_of_its_own(
    item_suggestion: str, category_suggestions: dict[str, str]
) -> None:
    payload = one_image(
        suggestion=item_suggestion,
        category_suggestions=category_suggestions,
        detail={"porn": [{"label": "porn", "confidence": 0.9}]},
    )

    findings = only_verdict(payload).findings

    assert "image" not in [f.category for f in findings]
    assert findings[0].category == "porn"


def test_a_category_rated_block_without_a_detail_saying_what_is_a_finding_of_its_own() -> None:
    payload = one_image(
        suggestion="block",
        category_suggestions={"porn": "block", "politics": "pass", "ad": "review"},
        detail={"porn": [], "ad": [{"label": "qr_code", "confidence": 0.7}]},
    )

    findings = only_verdict(payload).findings

    assert [(f.category, f.label, f.suggestion) for f in findings] == [
        ("ad", "qr_code", Suggestion.REVIEW),
        ("porn", "porn", Suggestion.BLOCK),
    ]
    assert only_verdict(payload).categories == ["ad", "porn"]


def test_lists_sent_as_null_are_read_as_empty() -> None:
    # A category whose list is null is rated like one with an empty list
    payload = one_image(
        suggestion="block",
        category_suggestions={"porn": "block", "ad": "review"},
        detail={"porn": None, "ad": [{"label": "qr_code", "confidence": 0.7}]},
    )

    assert [(f.category, f.label) for f in only_verdict(payload).findings] == [
        ("ad", "qr_code"),
        ("porn", "porn"),
    ]

    payload["result"]["items"] = None
    verdict = only_verdict(payload)
    assert (verdict.status, verdict.suggestion, verdict.findings) == (JobStatus.SUCCEEDED, None, [])


def test_the_first_face_of_a_face_detail_list_is_the_findings_box() -> None:
    # Given a politics entry whose face_detail lists two faces, as the API page's List allows
    payload = one_image(
        suggestion="review",
        category_suggestions={"politics": "review"},
        detail={
            "politics": [
                {
                    "label": "someone",
                    "face_detail": [
                        {"x": 10, "y": 20, "w": 30, "h": 40},
                        {"x": 100, "y": 200, "w": 5, "h": 6},
                    ],
                }
            ]
        },
    )

    # When it is parsed
    box = only_verdict(payload).findings[0].face_location

    # Then the first face is the finding's box
    assert box is not None
    assert (box.top_left_x, box.top_left_y, box.bottom_right_x, box.bottom_right_y) == (10, 20, 40, 60)


def test_a_face_detail_missing_its_size_is_no_box_and_the_finding_is_kept() -> None:
    # Given a politics entry whose face_detail has a position but no width or height
    payload = one_image(
        suggestion="review",
        category_suggestions={"politics": "review"},
        detail={"politics": [{"label": "someone", "confidence": 0.81, "face_detail": {"x": 10, "y": 20}}]},
    )

    # When it is parsed
    findings = only_verdict(payload).findings

    # Then the finding is read without a box rather than the batch failing to parse
    assert findings == [
        Finding(
            category="politics",
            label="someone",
            confidence=0.81,
            suggestion=Suggestion.REVIEW,
            item=BEACH_URL,
        )
    ]


def test_face_detail_given_as_a_list_as_the_api_page_documents_it_becomes_a_box() -> None:
    payload = one_image(
        suggestion="review",
        category_suggestions={"politics": "review"},
        detail={"politics": [{"label": "someone", "face_detail": [{"x": 10, "y": 20, "w": 30, "h": 40}]}]},
    )

    box = only_verdict(payload).findings[0].face_location

    assert box is not None
    assert (box.top_left_x, box.top_left_y, box.bottom_right_x, box.bottom_right_y) == (10, 20, 40, 60)


def test_single_image_job_names_its_content_and_face_detail_becomes_a_box() -> None:
    payload = {
        "result": {
            "job_id": "single",
            "status": "finish",
            "create_time": "2018-11-22 06:17:09",
            "update_time": "2018-11-22 06:17:12",
            "items": [
                {
                    "url": BEACH_URL,
                    "suggestion": "review",
                    "category_suggestions": {"politics": "review"},
                    "detail": {
                        "politics": [
                            {
                                "label": "someone",
                                "confidence": 0.81,
                                "face_detail": {"x": 10, "y": 20, "w": 30, "h": 40},
                            }
                        ]
                    },
                }
            ],
        }
    }

    verdict = only_verdict(payload)

    assert verdict.content == ContentRef(url=BEACH_URL)
    assert verdict.suggestion is Suggestion.REVIEW
    assert verdict.created_at == datetime(2018, 11, 22, 6, 17, 9, tzinfo=UTC)
    box = verdict.findings[0].face_location
    assert (box.top_left_x, box.top_left_y, box.bottom_right_x, box.bottom_right_y) == (10, 20, 40, 60)


def test_finished_job_whose_every_item_failed_has_no_suggestion() -> None:
    payload = load_payload(PROVIDER, "finish-with-failed-item")
    payload["result"]["items"] = payload["result"]["items"][2:]

    verdict = only_verdict(payload)

    assert verdict.status is JobStatus.SUCCEEDED
    assert verdict.suggestion is None
    assert verdict.decided_by is None
    assert [e.item for e in verdict.item_errors] == [HUGE_URL]


def test_failed_job_gets_an_error_and_no_suggestion() -> None:
    payload = load_payload(PROVIDER, "running")
    payload["result"]["status"] = "failed"

    verdict = only_verdict(payload)

    assert verdict.status is JobStatus.FAILED
    assert verdict.suggestion is None
    assert verdict.error is not None
    assert verdict.error.code == "job_failed"
    assert verdict.completed_at == datetime(2018, 11, 22, 6, 17, 16, tzinfo=UTC)


def test_a_failed_job_keeps_the_images_it_moderated_and_a_blocked_image_is_published_as_block() -> None:
    # Given a batch Huawei reports as failed after moderating two images (block, review) and failing a third
    payload = load_payload(PROVIDER, "finish-with-failed-item")
    payload["result"]["status"] = "failed"
    policy = VerdictPolicy()

    # When it is parsed and the policy settles it
    verdict = only_verdict(payload)
    final = policy.finalize(verdict)

    # Then the job stays failed, keeps the moderated images' findings, and is published as block, not review
    assert verdict.status is JobStatus.FAILED
    assert [(f.item, f.label, f.suggestion) for f in verdict.findings] == [
        (BEACH_URL, "porn", Suggestion.BLOCK),
        (BEACH_URL, "sexy", Suggestion.BLOCK),
        (BANNER_URL, "qr_code", None),
        (BANNER_URL, "image", Suggestion.REVIEW),
    ]
    assert [e.item for e in verdict.item_errors] == [HUGE_URL]
    assert (final.status, final.suggestion, final.decided_by) == (
        JobStatus.FAILED,
        Suggestion.BLOCK,
        "policy",
    )
    assert final.error is not None
    assert final.error.code == "job_failed"
    assert policy.should_publish(final)


def test_a_failed_job_with_its_own_error_code_keeps_it_as_the_error() -> None:
    # Given a failed batch that says why it failed
    payload = {
        "result": {
            "job_id": "f1",
            "status": "failed",
            "error_code": "AIS.0402",
            "error_msg": "Download failed",
            "items": [{"url": BEACH_URL}],
        }
    }

    # When it is parsed
    verdict = only_verdict(payload)

    # Then the provider's reason is the verdict's error, not the generic one
    assert verdict.status is JobStatus.FAILED
    assert verdict.error == VerdictError(code="AIS.0402", message="Download failed")


@pytest.mark.parametrize("order", [("pass", "block"), ("review", "block"), ("pass", "review")])
def test_the_jobs_suggestion_is_its_strictest_images_whatever_the_order(order: tuple[str, str]) -> None:
    # Given a finished batch of two images, the stricter one second, each with its category's suggestion
    milder, stricter = order
    payload = {
        "result": {
            "job_id": "two",
            "status": "finish",
            "items": [
                {
                    "url": BANNER_URL,
                    "suggestion": milder,
                    "category_suggestions": {"porn": milder},
                    "detail": {"porn": [{"label": "sexy", "confidence": 0.2}]},
                },
                {
                    "url": BEACH_URL,
                    "suggestion": stricter,
                    "category_suggestions": {"porn": stricter},
                    "detail": {"porn": [{"label": "porn", "confidence": 0.97}]},
                },
            ],
        }
    }

    # When it is parsed
    verdict = only_verdict(payload)

    # Then the provider's suggestion for the job is the stricter image's
    assert verdict.suggestion is Suggestion(stricter)
    assert verdict.decided_by == "provider"


def test_a_passed_image_with_no_detail_adds_no_finding() -> None:
    # Given a finished batch whose one image passed and names nothing it scored
    payload = one_image(suggestion="pass")

    # When it is parsed
    verdict = only_verdict(payload)

    # Then it passes with no finding: nothing was found in it
    assert verdict.suggestion is Suggestion.PASS
    assert verdict.findings == []


def test_a_failed_jobs_image_rated_block_without_per_category_suggestions_still_makes_it_block() -> None:
    # Given a failed batch whose one moderated image says block only in its own suggestion (its finding has
    # none), and whose other image the job never reached (neither suggestion nor error_code)
    payload = {
        "result": {
            "job_id": "b1",
            "status": "failed",
            "items": [
                {
                    "url": BEACH_URL,
                    "suggestion": "block",
                    "detail": {"porn": [{"label": "porn", "confidence": 0.99}]},
                },
                {"url": BANNER_URL},
            ],
        }
    }

    # When it is parsed (the unreached image is not an error) and settled
    verdict = only_verdict(payload)
    final = VerdictPolicy().finalize(verdict)

    # Then the image's block is the verdict's, and a finding of the image
    assert [(f.item, f.label, f.suggestion) for f in verdict.findings] == [
        (BEACH_URL, "porn", None),
        (BEACH_URL, "image", Suggestion.BLOCK),
    ]
    assert verdict.item_errors == []
    assert (final.status, final.suggestion) == (JobStatus.FAILED, Suggestion.BLOCK)


@pytest.mark.parametrize("change", RECASINGS, ids=RECASING_IDS)
@pytest.mark.parametrize("name", ["finish", "finish-with-failed-item", "running", "job-list"])
def test_status_and_suggestions_are_read_in_any_case_and_without_surrounding_whitespace(
    name: str, change: Callable[[str], str]
) -> None:
    # Given a result query or job list whose statuses and suggestions (items', per category) are recased
    payload = load_payload(PROVIDER, name)
    variant = recased(payload, change)
    assert variant != payload

    # Then it gives the verdicts of the lower-case original: a FINISH job is finished, a Block image blocks
    assert adapter.parse(variant) == adapter.parse(payload)


@pytest.mark.parametrize("change", RECASINGS, ids=RECASING_IDS)
@pytest.mark.parametrize("name", ["finish", "finish-with-failed-item"])
def test_suggestions_alone_are_read_in_any_case(name: str, change: Callable[[str], str]) -> None:
    # Given a fixture whose status is as documented but whose suggestions are recased
    payload = load_payload(PROVIDER, name)
    variant = recased(payload, change, SUGGESTION_KEYS)
    assert variant != payload

    # Then it gives the verdict of the lower-case original
    assert adapter.parse(variant) == adapter.parse(payload)


def test_a_finish_job_in_upper_case_with_a_block_image_is_published_as_block() -> None:
    payload = one_image(
        suggestion="Block",
        category_suggestions={"porn": "BLOCK"},
        detail={"porn": [{"label": "porn", "confidence": 0.99}]},
    )
    payload["result"]["status"] = "FINISH"
    policy = VerdictPolicy()

    final = policy.finalize(only_verdict(payload))

    assert (final.status, final.suggestion, final.decided_by) == (
        JobStatus.SUCCEEDED,
        Suggestion.BLOCK,
        "provider",
    )
    assert [(f.category, f.suggestion) for f in final.findings] == [("porn", Suggestion.BLOCK)]
    assert policy.should_publish(final)


def test_job_list_seed_gives_one_listed_verdict_per_job() -> None:
    verdicts = adapter.parse(load_payload(PROVIDER, "job-list"))

    assert len(verdicts) == 1
    listed = verdicts[0]
    assert listed.job_id == "53ba32e2-c96a-4d0a-a1df-6ddc75f40aed"
    assert listed.status is JobStatus.SUCCEEDED
    assert listed.suggestion is None
    assert listed.findings == []
    assert listed.metadata == {"source": "job-list"}
    assert listed.created_at == datetime(2018, 11, 22, 6, 17, 9, tzinfo=UTC)
    assert listed.completed_at == datetime(2018, 11, 22, 6, 17, 16, tzinfo=UTC)


def test_job_list_maps_every_status() -> None:
    payload = {
        "result": [
            {"job_id": f"job-{status}", "status": status, "create_time": "2018-11-22T06:17:09Z"}
            for status in ("created", "running", "finish", "failed")
        ]
    }

    statuses = [v.status for v in adapter.parse(payload)]

    assert statuses == [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED]


def test_a_listed_job_is_completed_only_when_finished_and_a_failed_one_says_so() -> None:
    # Given a job list with a running, a finished and a failed job, each updated after its creation
    payload = {
        "result": [
            {
                "job_id": f"job-{status}",
                "status": status,
                "create_time": "2018-11-22T06:17:09Z",
                "update_time": "2018-11-22T06:20:00Z",
            }
            for status in ("running", "finish", "failed")
        ]
    }

    # When it is parsed (what `verdict-relay normalize` shows for a job list)
    running, finished, failed = adapter.parse(payload)

    # Then only the finished and failed jobs have a completion time, and only the failed one an error
    updated = datetime(2018, 11, 22, 6, 20, tzinfo=UTC)
    assert (running.completed_at, running.error) == (None, None)
    assert (finished.completed_at, finished.error) == (updated, None)
    assert failed.completed_at == updated
    assert failed.error is not None
    assert failed.error.code == "job_failed"


def test_empty_job_list_gives_no_verdicts() -> None:
    assert adapter.parse({"result": []}) == []


def test_error_body_is_a_payload_error_on_result_naming_the_code() -> None:
    with pytest.raises(PayloadError, match=r"AIS\.0005") as raised:
        adapter.parse({"error_code": "AIS.0005", "error_msg": "The service does not exist."})

    assert raised.value.field == "result"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p["result"].pop("job_id"), "result.job_id"),
        (lambda p: p["result"].update(status="done"), "result.status"),
        (lambda p: p["result"].update(create_time="02/01/2018"), "result.create_time"),
        (
            lambda p: p["result"]["items"][0]["detail"]["terrorism"][0].update(confidence="abc"),
            "result.items.0.detail.terrorism.0.confidence",
        ),
        (
            lambda p: p["result"]["items"][0]["detail"].update(terrorism={"label": "fire"}),
            "result.items.0.detail.terrorism",
        ),
        (lambda p: p["result"]["items"][1].update(suggestion="ok"), "result.items.1.suggestion"),
        (lambda p: p["result"]["items"][1].pop("suggestion"), "result.items.1.suggestion"),
        (lambda p: p["result"]["items"][0].pop("url"), "result.items.0.url"),
        (lambda p: p.update(result="finish"), "result"),
        (lambda p: p.pop("result"), "result"),
        (lambda p: p.update(result=[{"job_id": "x", "status": "finished"}]), "result.0.status"),
    ],
    ids=[
        "missing-job-id",
        "unknown-status",
        "bad-time",
        "confidence-string",
        "detail-not-a-list",
        "unknown-suggestion",
        "item-without-suggestion-or-error",
        "item-without-url",
        "result-not-object",
        "missing-result",
        "list-unknown-status",
    ],
)
def test_malformed_payload_raises_a_payload_error_naming_the_field(change: Any, field: str) -> None:
    payload = copy.deepcopy(load_payload(PROVIDER, "finish"))
    change(payload)

    with pytest.raises(PayloadError) as raised:
        adapter.parse(payload)

    assert raised.value.field == field


@pytest.mark.parametrize("payload", ["not json", ["result"], None, 42])
def test_payload_that_is_not_an_object_is_a_payload_error(payload: Any) -> None:
    with pytest.raises(PayloadError) as raised:
        adapter.parse(payload)

    assert raised.value.field == "(root)"


def test_callbacks_are_refused_even_with_secrets_configured() -> None:
    request = CallbackRequest(
        body=load_payload_bytes(PROVIDER, "finish"), headers={}, query={"token": "tok_0123456789abcdef"}
    )
    context = VerifyContext(
        settings=CallbackSettings(tokens=["tok_0123456789abcdef"], seeds=["any_seed_00000001"]),
        now=datetime.now(UTC),
    )

    with pytest.raises(CallbackAuthError, match="no callbacks"):
        adapter.verify_callback(request, context)
    with pytest.raises(CallbackAuthError, match="no callbacks"):
        adapter.parse_callback(request)


# --- job ids are limited in UTF-8 bytes, as the table's key counts them ---


def test_a_queried_job_whose_id_is_over_512_bytes_is_a_payload_error_naming_it() -> None:
    payload = copy.deepcopy(load_payload(PROVIDER, "finish"))
    payload["result"]["job_id"] = "\u00e9" * 257  # 257 characters, 514 bytes

    with pytest.raises(PayloadError) as raised:
        adapter.parse(payload)

    assert raised.value.field == "result.job_id"


def test_a_listed_job_whose_id_is_over_512_bytes_is_a_payload_error_naming_it() -> None:
    payload = copy.deepcopy(load_payload(PROVIDER, "job-list"))
    payload["result"][0]["job_id"] = "\U0001f600" * 129  # 129 characters, 516 bytes

    with pytest.raises(PayloadError) as raised:
        adapter.parse(payload)

    assert raised.value.field == "result.0.job_id"


@pytest.mark.parametrize("number", [float("inf"), float("nan")])
def test_a_confidence_that_is_not_finite_is_a_payload_error(number: float) -> None:
    payload = copy.deepcopy(load_payload(PROVIDER, "finish"))
    payload["result"]["items"][0]["detail"]["terrorism"][0]["confidence"] = number

    with pytest.raises(PayloadError) as raised:
        adapter.parse(payload)

    assert raised.value.field == "result.items.0.detail.terrorism.0.confidence"
