"""The callback receiver end to end: real handler, moto DynamoDB/SNS/S3, an SQS queue on the topic."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.helpers import emf_counts, huawei_signature, load_payload, load_payload_bytes, with_changes
from tests.integration.conftest import (
    AZURE_TOKENS,
    HUAWEI_AUDIO_SEEDS,
    HUAWEI_AUDIO_TOKENS,
    HUAWEI_SEEDS,
    ApiClient,
    configure_environment,
)
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.local.http_api import LambdaContext
from verdict_relay.models.jobs import SignedClaim

SEED = HUAWEI_SEEDS[0]


def signed(body: bytes, seed: str = SEED) -> dict[str, str]:
    return {"X-Auth-Signature": huawei_signature(seed, body)}


def test_signed_huawei_video_callback_is_stored_and_published_once(api: ApiClient, aws: FakeAws) -> None:
    # Given the seed example of a finished video job, signed with the job's seed
    body = load_payload_bytes("huawei-video", "succeeded")

    # When Huawei delivers it
    response = api.callback("huawei-video", body, headers=signed(body))

    # Then it is acknowledged with 200, stored, and published once with filterable attributes
    assert response.status == 200
    stored = api.get_job("huawei-video", "xxx")
    assert stored.status == 200
    assert stored.body["status"] == "succeeded"
    assert stored.body["suggestion"] == "block"
    assert len(stored.body["findings"]) == 10
    published = aws.published()
    assert len(published) == 1
    assert published[0]["verdict"]["job_id"] == "xxx"
    assert published[0]["attributes"]["provider"] == "huawei-video"
    assert published[0]["attributes"]["suggestion"] == "block"
    assert published[0]["attributes"]["status"] == "succeeded"
    assert json.loads(published[0]["attributes"]["categories"]) == ["image_text", "porn", "xxx"]


def test_callbacks_with_text_cut_inside_a_character_are_stored_with_the_replacement_character(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a signed Huawei callback whose OCR text was cut inside an emoji, and an Azure reviewer's decision
    # (which no API can fetch again) whose ContentId was cut the same way
    huawei = load_payload_bytes("huawei-video", "succeeded").replace(
        b'"ocr_text" : "123"', b'"ocr_text" : "12\\ud83d"', 1
    )
    assert b"\\ud83d" in huawei
    azure = json.dumps(load_payload("azure-review", "review-callback")).encode()
    azure = azure.replace(b'"ContentId": "', b'"ContentId": "cut \\ud83d ', 1)
    assert b"\\ud83d" in azure
    review_id = load_payload("azure-review", "review-callback")["ReviewId"]

    # When they are delivered, Then each is accepted (a 400 would be refused at every re-send) and stored
    assert api.callback("huawei-video", huawei, headers=signed(huawei)).status == 200
    assert api.callback("azure-review", azure, query={"token": AZURE_TOKENS[0]}).status == 200
    assert api.get_job("huawei-video", "xxx").body["findings"][0]["text"] == "12\ufffd"
    assert api.get_job("azure-review", review_id).body["decided_by"] == "reviewer"


def test_raw_payload_is_kept_compressed_with_the_verdict(api: ApiClient, aws: FakeAws) -> None:
    from verdict_relay.handlers.dependencies import dependencies

    body = load_payload_bytes("huawei-audio", "succeeded")
    response = api.callback(
        "huawei-audio",
        body,
        headers=signed(body, seed=HUAWEI_AUDIO_SEEDS[0]),
        query={"token": HUAWEI_AUDIO_TOKENS[0]},
    )
    assert response.status == 200
    job_id = json.loads(body)["job_id"]

    assert dependencies().store.raw_payload("huawei-audio", job_id) == body


def test_a_huawei_signature_re_sent_with_its_ids_split_elsewhere_is_refused_and_stores_nothing(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a signed pass callback accepted for job-7f3a21 (request req-9), with trust: body (no API credentials)
    payload = load_payload("huawei-video", "succeeded")
    payload.update(job_id="job-7f3a21", request_id="req-9", result={"suggestion": "pass"})
    genuine = json.dumps(payload).encode()
    signature = {"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], genuine)}
    assert api.callback("huawei-video", genuine, headers=signature).status == 200

    # When the same signature comes with job-7f3a2 and request 1req-9 (create_time + job_id + request_id is the
    # same text, so the signature holds) and a block result
    forged = with_changes("huawei-video", "succeeded", job_id="job-7f3a2", request_id="1req-9")
    response = api.callback("huawei-video", forged, headers=signature)

    # Then it is refused as forged, and nothing is stored or published for the other job
    assert response.status == 401
    assert "already accepted for another job" in response.body["error"]["message"]
    assert api.get_job("huawei-video", "job-7f3a2").status == 404
    assert aws.published() == []
    # And Huawei re-sending the genuine callback is still acknowledged, as before
    assert api.callback("huawei-video", genuine, headers=signature).status == 200
    assert api.get_job("huawei-video", "job-7f3a21").body["suggestion"] == "pass"


@pytest.mark.parametrize(
    ("first_accepted", "replay_stored"),
    [(timedelta(days=45, minutes=1), False), (timedelta(days=44), True), (None, False)],
    ids=["half-the-retention-ago-a-replay", "within-it-a-re-send", "undated-a-replay"],
)
def test_a_signed_callback_for_a_job_no_longer_held_is_taken_only_within_half_the_retention_of_its_acceptance(
    api: ApiClient,
    aws: FakeAws,
    capsys: pytest.CaptureFixture[str],
    first_accepted: timedelta | None,
    replay_stored: bool,
) -> None:
    # Given a signed block callback accepted and published (trust: body), first_accepted ago (the default 90-day
    # retention), or by a version that did not date it, whose job the store no longer holds: deleted with its
    # verdict at the end of its retention (or never stored: the write failed)
    body = load_payload_bytes("huawei-video", "succeeded")
    assert api.callback("huawei-video", body, headers=signed(body)).status == 200
    assert len(aws.published()) == 1
    client = aws.session.client("dynamodb")
    [binding] = [item for item in aws.table_items() if item["sk"]["S"] == "SIGNED"]
    dating: dict[str, Any] = {"UpdateExpression": "REMOVE claimed_at"}
    if first_accepted is not None:
        claimed_at = int((datetime.now(UTC) - first_accepted).timestamp())
        dating = {
            "UpdateExpression": "SET claimed_at = :at",
            "ExpressionAttributeValues": {":at": {"N": str(claimed_at)}},
        }
    client.update_item(
        TableName=aws.resources.table_name, Key={"pk": binding["pk"], "sk": binding["sk"]}, **dating
    )
    client.delete_item(
        TableName=aws.resources.table_name, Key={"pk": {"S": "huawei-video#xxx"}, "sk": {"S": "STATE"}}
    )
    capsys.readouterr()

    # When the callback comes again (twice), with another result (the signature does not cover it)
    replay = with_changes("huawei-video", "succeeded", result={"suggestion": "review"})
    responses = [api.callback("huawei-video", replay, headers=signed(body)).status for _ in range(2)]

    # Then it is acknowledged either way; stored and published again only within half the retention, as a
    # provider re-sends a callback whose first storing failed; later (or undated), a replay: nothing stored
    assert responses == [200, 200]
    assert (api.get_job("huawei-video", "xxx").status == 200) is replay_stored
    assert len(aws.published()) == (1 if replay_stored else 0)
    retired = emf_counts(capsys.readouterr().out, service="verdict-relay").get("CallbackForRetiredJob", 0)
    assert retired == (0 if replay_stored else 2)


def test_a_final_callback_whose_signed_text_was_first_accepted_long_ago_is_stored_while_its_job_is_held(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a job whose 'running' callback was accepted more than half the retention ago (the same signed text
    # as its final callback: the job's creation time and ids), and which the store still holds
    running = with_changes("huawei-video", "running", job_id="xxx", request_id="xxxx")
    assert api.callback("huawei-video", running, headers=signed(running)).status == 200
    [binding] = [item for item in aws.table_items() if item["sk"]["S"] == "SIGNED"]
    long_ago = int((datetime.now(UTC) - timedelta(days=46)).timestamp())
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": binding["pk"], "sk": binding["sk"]},
        UpdateExpression="SET claimed_at = :at",
        ExpressionAttributeValues={":at": {"N": str(long_ago)}},
    )

    # When its final callback comes, Then it is the job's verdict, stored and published: not a replay of a job
    # gone with its retention
    final = load_payload_bytes("huawei-video", "succeeded")
    assert api.callback("huawei-video", final, headers=signed(final)).status == 200
    assert api.get_job("huawei-video", "xxx").body["status"] == "succeeded"
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["xxx"]


@pytest.mark.parametrize(
    ("retention", "later", "claim"),
    [
        (timedelta(days=90), timedelta(days=44), SignedClaim.RECENT),
        (timedelta(days=90), timedelta(days=45, seconds=2), SignedClaim.LONG_AGO),
        (timedelta(days=1), timedelta(hours=12, seconds=2), SignedClaim.LONG_AGO),  # half a shorter retention
    ],
)
def test_a_signed_texts_binding_dates_from_its_first_acceptance(
    aws: FakeAws, retention: timedelta, later: timedelta, claim: SignedClaim
) -> None:
    from verdict_relay.dal.archive import PayloadArchive
    from verdict_relay.dal.store import JobStore

    store = JobStore(
        aws.resources.table_name,
        aws.session.client("dynamodb"),
        PayloadArchive(aws.resources.bucket, lambda: aws.session.client("s3")),
        retention=retention,
    )
    first = datetime(2026, 11, 1, tzinfo=UTC)
    assert store.claim_signed("huawei-v3", "digest-1", "huawei-video", "job-1", first) is SignedClaim.RECENT
    # re-sends in between do not move the date it was first accepted
    assert store.claim_signed("huawei-v3", "digest-1", "huawei-video", "job-1", first + later / 2) is (
        SignedClaim.RECENT
    )
    assert store.claim_signed("huawei-v3", "digest-1", "huawei-video", "job-1", first + later) is claim
    assert store.claim_signed("huawei-v3", "digest-1", "huawei-audio", "job-1", first + later) is (
        SignedClaim.ANOTHER_JOB
    )


def test_a_huawei_video_callback_re_posted_to_the_audio_route_is_refused_when_both_list_its_seed(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given one seed listed by both Huawei entries (accepted, with a warning: it may be rotating out), trust: body
    shared = "one_seed_for_every_job"
    configure_environment(
        monkeypatch,
        aws,
        tmp_path,
        {
            "huawei-video": {"callback": {"seeds": [shared]}},
            "huawei-audio": {"callback": {"seeds": [shared]}},
        },
    )
    api = ApiClient()
    body = load_payload_bytes("huawei-video", "succeeded")
    headers = {"X-Auth-Signature": huawei_signature(shared, body)}
    assert api.callback("huawei-video", body, headers=headers).status == 200

    # When the same bytes and signature are posted to the audio route (Huawei signs the same fields for both)
    response = api.callback("huawei-audio", body, headers=headers)

    # Then they are refused, and no audio job is stored or published
    assert response.status == 401
    job_id = json.loads(body)["job_id"]
    assert api.get_job("huawei-audio", job_id).status == 404
    assert [(m["verdict"]["provider"], m["verdict"]["job_id"]) for m in aws.published()] == [
        ("huawei-video", job_id)
    ]
    # And the document's read warned of the shared seed by its keys
    warned = [
        r for r in caplog.records if r.getMessage().startswith("callback secrets listed by two providers")
    ]
    assert [r.keys for r in warned] == [["huawei-audio.callback.seeds.0 (also huawei-video's)"]]
    assert shared not in caplog.text


def test_a_seed_huawei_echoes_in_the_jobs_creation_parameters_is_not_kept_in_the_stored_payload(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a callback whose request_params echo the job's creation parameters, its seed among them (the
    # callback's signing key: kept, it would let anyone who reads the payloads sign callbacks)
    payload = load_payload("huawei-video", "succeeded")
    payload["request_params"]["seed"] = SEED
    body = json.dumps(payload).encode()

    # When it is accepted
    response = api.callback("huawei-video", body, headers=signed(body))

    # Then the raw payload kept with the verdict holds it replaced
    assert response.status == 200
    raw = dependencies_module.dependencies().store.raw_payload("huawei-video", payload["job_id"])
    assert raw is not None
    assert SEED.encode() not in raw
    assert json.loads(raw)["request_params"]["seed"] == "REDACTED"


def test_signature_made_with_the_previous_seed_is_accepted_during_rotation(
    api: ApiClient, aws: FakeAws
) -> None:
    body = load_payload_bytes("huawei-video", "succeeded")

    response = api.callback("huawei-video", body, headers=signed(body, seed=HUAWEI_SEEDS[1]))

    assert response.status == 200
    assert api.get_job("huawei-video", "xxx").body["status"] == "succeeded"
    assert len(aws.published()) == 1


def test_base64_signature_and_lower_case_header_are_accepted(api: ApiClient, aws: FakeAws) -> None:
    body = load_payload_bytes("huawei-video", "succeeded")
    signature = huawei_signature(SEED, body, encoding="base64")

    response = api.callback("huawei-video", body, headers={"x-auth-signature": signature})

    assert response.status == 200
    assert api.get_job("huawei-video", "xxx").body["status"] == "succeeded"
    assert len(aws.published()) == 1


def test_hundred_duplicate_callbacks_store_one_verdict_and_publish_once(api: ApiClient, aws: FakeAws) -> None:
    body = load_payload_bytes("huawei-video", "succeeded")

    statuses = {api.callback("huawei-video", body, headers=signed(body)).status for _ in range(100)}

    assert statuses == {200}
    assert len(aws.published()) == 1
    states = [i for i in aws.table_items() if i["sk"]["S"] == "STATE"]
    assert len(states) == 1
    assert not [i for i in aws.table_items() if i["sk"]["S"].startswith("CONFLICT#")]


def test_a_progress_callback_sent_again_changes_nothing_stored(api: ApiClient, aws: FakeAws) -> None:
    # Given a job whose 'running' notification was stored
    running = with_changes("huawei-video", "running", job_id="job-again")
    assert api.callback("huawei-video", running, headers=signed(running)).status == 200
    before = aws.job_items()

    # When the provider sends it again, Then it is acknowledged and the stored job is as it was (not rewritten)
    assert api.callback("huawei-video", running, headers=signed(running)).status == 200
    assert aws.job_items() == before
    assert before[0]["status"]["S"] == "running"


def test_late_running_callback_after_success_is_ignored(api: ApiClient, aws: FakeAws) -> None:
    # Given a job that finished
    done = with_changes("huawei-video", "succeeded", job_id="job-order")
    running = with_changes("huawei-video", "running", job_id="job-order")
    assert api.callback("huawei-video", done, headers=signed(done)).status == 200

    # When its earlier 'running' notification arrives late
    response = api.callback("huawei-video", running, headers=signed(running))

    # Then it is acknowledged (so Huawei stops re-sending) but the job does not go backwards
    assert response.status == 200
    assert api.get_job("huawei-video", "job-order").body["status"] == "succeeded"
    assert len(aws.published()) == 1


def test_a_registered_job_moves_to_running_and_a_late_pending_answer_does_not_move_it_back(
    api: ApiClient, aws: FakeAws
) -> None:
    from verdict_relay.dal.archive import PayloadArchive
    from verdict_relay.dal.store import JobStore
    from verdict_relay.models.jobs import NextPoll, Transition
    from verdict_relay.models.verdict import JobStatus, Verdict

    # Given a registered job (pending) whose 'running' notification comes
    assert api.register({"provider": "huawei-video", "job_id": "job-forward"}).status == 201
    running = with_changes("huawei-video", "running", job_id="job-forward")
    assert api.callback("huawei-video", running, headers=signed(running)).status == 200

    # Then it is running
    assert api.get_job("huawei-video", "job-forward").body["status"] == "running"

    # When a poll answered before that notification, saying pending, is recorded after it
    s3 = aws.session.client("s3")
    store = JobStore(
        aws.resources.table_name,
        aws.session.client("dynamodb"),
        PayloadArchive(aws.resources.bucket, lambda: s3),
    )
    pending = Verdict(provider="huawei-video", job_id="job-forward", status=JobStatus.PENDING)  # type: ignore[call-arg]
    now = datetime.now(UTC)
    late = store.record(pending, b"{}", now, publish=False, next_poll=NextPoll(now + timedelta(minutes=2), 1))

    # Then it is a stale answer: the job stays running, to be polled at its new time
    assert late.transition is Transition.STALE
    assert api.get_job("huawei-video", "job-forward").body["status"] == "running"


def test_callbacks_in_random_order_end_in_the_terminal_verdict(api: ApiClient, aws: FakeAws) -> None:
    bodies = [
        with_changes("huawei-video", "running", job_id="job-shuffle"),
        with_changes("huawei-video", "succeeded", job_id="job-shuffle"),
    ] * 5
    random.Random(7).shuffle(bodies)

    for body in bodies:
        assert api.callback("huawei-video", body, headers=signed(body)).status == 200

    assert api.get_job("huawei-video", "job-shuffle").body["status"] == "succeeded"
    assert len(aws.published()) == 1


def test_a_finished_jobs_callback_resent_with_another_result_changes_nothing_and_stores_nothing(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a job stored as block from a signed callback (Huawei's signature covers the ids, not the result)
    first = with_changes("huawei-video", "succeeded", job_id="job-conflict")
    assert api.callback("huawei-video", first, headers=signed(first)).status == 200
    items_before = len(aws.table_items())

    # When the same signed callback is re-sent again and again with a different result each time
    for suggestion in ("pass", "review", "pass"):
        payload = load_payload("huawei-video", "succeeded")
        payload.update(job_id="job-conflict", result={"suggestion": suggestion})
        second = json.dumps(payload).encode()
        response = api.callback("huawei-video", second, headers=signed(second))
        # Then each is acknowledged (so Huawei stops re-sending), and the stored verdict stands
        assert response.status == 200

    # and nothing is stored for them (no conflict record per re-send), and only the first was published
    assert api.get_job("huawei-video", "job-conflict").body["suggestion"] == "block"
    assert len(aws.table_items()) == items_before
    assert len(aws.published()) == 1


def test_pass_verdict_is_stored_but_not_published(api: ApiClient, aws: FakeAws) -> None:
    payload = load_payload("huawei-video", "succeeded")
    payload.update(job_id="job-pass", result={"suggestion": "pass"})
    body = json.dumps(payload).encode()

    assert api.callback("huawei-video", body, headers=signed(body)).status == 200

    assert api.get_job("huawei-video", "job-pass").body["suggestion"] == "pass"
    assert aws.published() == []


def test_failed_job_is_published_as_review_because_nothing_was_moderated(
    api: ApiClient, aws: FakeAws
) -> None:
    body = load_payload_bytes("huawei-video", "failed")

    assert api.callback("huawei-video", body, headers=signed(body)).status == 200

    published = aws.published()
    assert len(published) == 1
    assert published[0]["verdict"]["status"] == "failed"
    assert published[0]["verdict"]["suggestion"] == "review"
    assert published[0]["verdict"]["decided_by"] == "policy"


def test_a_publish_sns_refuses_keeps_the_verdict_owed_and_the_sweep_publishes_it_later(
    api: ApiClient, aws: FakeAws
) -> None:
    from datetime import UTC, datetime, timedelta

    from verdict_relay.handlers.dependencies import dependencies

    # Given SNS refusing the publish (the topic is gone; SNS out of reach is tests/reliability/test_faults.py's)
    sns = aws.session.client("sns")
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=aws.resources.topic_arn)["Subscriptions"]
    sns.delete_topic(TopicArn=aws.resources.topic_arn)
    body = load_payload_bytes("huawei-video", "succeeded")

    # When a block verdict arrives
    response = api.callback("huawei-video", body, headers=signed(body))

    # Then the callback is still acknowledged and the verdict stored with its publish owed
    assert response.status == 200
    state = next(i for i in aws.table_items() if i["sk"]["S"] == "STATE")
    assert state["publish_state"]["S"] == "pending"
    assert state["unpublished_provider"]["S"] == "huawei-video"

    # When SNS is back and the owed publishes are swept
    sns.create_topic(Name=aws.resources.topic_arn.rsplit(":", 1)[1])
    sns.subscribe(TopicArn=aws.resources.topic_arn, Protocol="sqs", Endpoint=subscriptions[0]["Endpoint"])
    later = datetime.now(UTC) + timedelta(minutes=2)  # past the failed writer's publish claim
    swept = dependencies().ingest.publish_owed("huawei-video", lambda: later)

    # Then it is published exactly once and no longer owed
    assert swept == 1
    assert len(aws.published()) == 1
    state = next(i for i in aws.table_items() if i["sk"]["S"] == "STATE")
    assert state["publish_state"]["S"] == "published"
    assert "unpublished_provider" not in state
    assert dependencies().ingest.publish_owed("huawei-video", lambda: later) == 0


@dataclass
class InvocationEndingIn(LambdaContext):
    seconds_left: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds_left * 1000)


def test_a_callback_finishing_a_job_too_close_to_its_timeout_leaves_the_publish_to_the_sweep(
    api: ApiClient, aws: FakeAws
) -> None:
    from datetime import UTC, datetime, timedelta

    from verdict_relay.handlers.dependencies import dependencies
    from verdict_relay.logic.ingest import PUBLISH_TIME_S

    # Given an invocation with less time left than a publish and its confirmation may take at their worst
    api.context = InvocationEndingIn(seconds_left=PUBLISH_TIME_S - 1)
    body = load_payload_bytes("huawei-video", "succeeded")

    # When a block verdict arrives
    response = api.callback("huawei-video", body, headers=signed(body))

    # Then it is acknowledged and stored owed, not published: cut off between SNS taking it and the store
    # confirming it, it would be sent again
    assert response.status == 200
    state = next(i for i in aws.table_items() if i["sk"]["S"] == "STATE")
    assert state["publish_state"]["S"] == "pending"
    assert aws.published() == []
    # And the next sweep sends it: the receiver gave its claim up rather than leave the sweep to wait it out
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert dependencies().ingest.publish_owed("huawei-video", lambda: later) == 1
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["xxx"]


def two_hour_video(job_id: str) -> dict[str, Any]:
    """A finished 2-hour video: a frame every 5 s, each with details carrying unique text (compresses poorly)."""
    payload = load_payload("huawei-video", "succeeded")
    payload["job_id"] = job_id
    frame = payload["result"]["image_detail"][0]
    payload["result"]["image_detail"] = [
        {**frame, "time": t * 5, "ocr_text": f"{random.Random(t).getrandbits(2048):0512x}"}
        for t in range(1440)
    ]
    return payload


def test_large_payload_goes_to_s3_and_reads_back(api: ApiClient, aws: FakeAws) -> None:
    from verdict_relay.handlers.dependencies import dependencies

    # Given a 2-hour video whose result is too large for its item
    payload = two_hour_video("job-large")
    body = json.dumps(payload).encode()

    assert api.callback("huawei-video", body, headers=signed(body)).status == 200

    keys = aws.bucket_keys()
    assert any(k.startswith("jobs/huawei-video/job-large/") and k.endswith("/raw.json.gz") for k in keys)
    assert any(k.startswith("jobs/huawei-video/job-large/") and k.endswith("/verdict.json.gz") for k in keys)
    assert dependencies().store.raw_payload("huawei-video", "job-large") == body
    stored = dependencies().store.get("huawei-video", "job-large")
    assert stored is not None
    assert stored.verdict is not None
    assert len(stored.verdict.findings) == 1440 * 8 + 2
    # About 7 MB of JSON, over what Lambda may return to API Gateway: GET /jobs sends it trimmed and says so
    read = api.get_job("huawei-video", "job-large")
    assert read.headers["X-Findings-Truncated"] == "true"
    assert 0 < len(read.body["findings"]) < 1440 * 8
    # SNS takes 256 KiB: the message carries the strongest findings and says it was trimmed
    (message,) = aws.published()
    assert message["attributes"]["findings_truncated"] == "true"
    assert 0 < len(message["verdict"]["findings"]) < 1440 * 8


def test_a_losing_repeat_of_a_large_result_leaves_the_winners_archived_objects_alone(
    api: ApiClient, aws: FakeAws
) -> None:
    from verdict_relay.handlers.dependencies import dependencies

    # Given a large result recorded from its callback (archived in S3)
    payload = two_hour_video("job-large")
    first = json.dumps(payload).encode()
    assert api.callback("huawei-video", first, headers=signed(first)).status == 200
    stored = api.get_job("huawei-video", "job-large").body

    # When the same result comes again in other bytes (another request id: the same outcome)
    payload["request_id"] = "0f0e0d0c0b0a09080706050403020100"
    again = json.dumps(payload).encode()
    assert api.callback("huawei-video", again, headers=signed(again)).status == 200

    # Then the repeat is a duplicate, and what was kept is still the first delivery's, in S3 and in the item
    assert dependencies().store.raw_payload("huawei-video", "job-large") == first
    assert api.get_job("huawei-video", "job-large").body == stored
    assert len(aws.published()) == 1


def test_the_time_a_large_result_takes_to_archive_is_added_to_its_writers_publish_claim(aws: FakeAws) -> None:
    import time
    from datetime import UTC, datetime

    from verdict_relay.dal.archive import PayloadArchive
    from verdict_relay.dal.store import JobStore
    from verdict_relay.models.verdict import JobStatus, Suggestion, Verdict

    # Given S3 takes a second over each object, and a result too large for its item
    s3 = aws.session.client("s3")
    s3.meta.events.register("before-send.s3.PutObject", lambda **_: time.sleep(1.0))
    store = JobStore(
        aws.resources.table_name,
        aws.session.client("dynamodb"),
        PayloadArchive(aws.resources.bucket, lambda: s3),
    )
    raw = random.Random(7).randbytes(400 * 1024)  # compresses to no less: archived
    verdict = Verdict(
        provider="huawei-video",
        job_id="slow-archive",
        status=JobStatus.SUCCEEDED,
        suggestion=Suggestion.BLOCK,
    )  # type: ignore[call-arg]
    now = datetime.now(UTC)

    # When the job's terminal verdict is recorded by the writer that will publish it
    result = store.record(verdict, raw, now, publish=True)

    # Then its claim lasts the whole claim after the archiving: the publish comes after it, and the sweep must
    # not be free to send the verdict while this writer still may
    assert result.publish
    assert aws.bucket_keys()
    state = next(i for i in aws.table_items() if i["sk"]["S"] == "STATE")
    assert float(state["publish_claimed_until"]["N"]) - now.timestamp() >= 60 + 1.0


def test_azure_job_callback_with_current_or_previous_token_is_accepted(api: ApiClient, aws: FakeAws) -> None:
    body = load_payload_bytes("azure-review", "job-callback")
    job_id = load_payload("azure-review", "job-callback")["JobId"]

    for token in AZURE_TOKENS:
        assert api.callback("azure-review", body, query={"token": token}).status == 200

    assert api.get_job("azure-review", job_id).body["status"] == "succeeded"


def test_azure_review_callback_becomes_a_reviewer_verdict(api: ApiClient, aws: FakeAws) -> None:
    body = load_payload_bytes("azure-review", "review-callback")
    review_id = load_payload("azure-review", "review-callback")["ReviewId"]

    assert api.callback("azure-review", body, query={"token": AZURE_TOKENS[0]}).status == 200

    verdict = api.get_job("azure-review", review_id).body
    assert verdict["decided_by"] == "reviewer"


def test_a_reviewers_revised_decision_is_kept_as_a_conflict_record_as_no_api_returns_it(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a reviewer's decision stored as block
    first = load_payload("azure-review", "review-callback")
    review_id = first["ReviewId"]
    assert (
        api.callback("azure-review", json.dumps(first).encode(), query={"token": AZURE_TOKENS[0]}).status
        == 200
    )

    # When the reviewer revises it (the tags flipped, later)
    revised = {
        **first,
        "ModifiedOn": "2018-01-16T09:00:00Z",
        "ReviewerResultTags": {"a": "False", "r": "False"},
    }
    assert (
        api.callback("azure-review", json.dumps(revised).encode(), query={"token": AZURE_TOKENS[0]}).status
        == 200
    )

    # Then the first decision stands and the revision is kept beside it: the callback is its only copy
    assert api.get_job("azure-review", review_id).body["suggestion"] == "block"
    conflicts = [i for i in aws.table_items() if i["sk"]["S"].startswith("CONFLICT#")]
    assert [c["suggestion"]["S"] for c in conflicts] == ["pass"]
    assert len(aws.published()) == 1


def test_base64_encoded_body_is_decoded_before_the_signature_check(api: ApiClient, aws: FakeAws) -> None:
    body = load_payload_bytes("huawei-video", "succeeded")

    response = api.callback("huawei-video", body, headers=signed(body), base64_encoded=True)

    assert response.status == 200
    assert api.get_job("huawei-video", "xxx").status == 200


def test_callback_for_an_unregistered_job_is_recorded(api: ApiClient, aws: FakeAws) -> None:
    body = with_changes("huawei-video", "succeeded", job_id="never-registered")

    assert api.callback("huawei-video", body, headers=signed(body)).status == 200

    assert api.get_job("huawei-video", "never-registered").body["status"] == "succeeded"


def test_the_sns_client_is_created_by_the_first_publish_not_at_cold_start(
    api: ApiClient, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    created: list[str] = []
    create = boto3.session.Session.client

    def recording(self: boto3.session.Session, service_name: str, *args: Any, **kwargs: Any) -> Any:
        created.append(service_name)
        return create(self, service_name, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", recording)

    # A registration, a job still running and a read publish nothing: no SNS client is created
    running = with_changes("huawei-video", "running", job_id="job-lazy")
    assert api.register({"provider": "huawei-video", "job_id": "job-lazy"}).status == 201
    assert api.callback("huawei-video", running, headers=signed(running)).status == 200
    assert api.get_job("huawei-video", "job-lazy").status == 200
    assert created == ["dynamodb"]

    # The first block verdict creates it and publishes; the next one uses the same client
    for job_id in ("job-lazy", "job-next"):
        finished = with_changes("huawei-video", "succeeded", job_id=job_id)
        assert api.callback("huawei-video", finished, headers=signed(finished)).status == 200
    assert created == ["dynamodb", "sns"]
    assert sorted(p["verdict"]["job_id"] for p in aws.published()) == ["job-lazy", "job-next"]
