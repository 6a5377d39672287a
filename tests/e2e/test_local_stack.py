"""The local stack as a user runs it: ``verdict-relay local`` in its own process, driven over real HTTP."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from verdict_relay.models.verdict import PROVIDER_NAMES

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-callback-token-0001"


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.mark.parametrize(
    ("settings", "published"),
    [
        ({}, 4 * len(PROVIDER_NAMES)),  # every job's verdict but the pass one's
        # and a grace for jobs the provider does not know, which the simulation keeps at 0 all the same (its
        # expired jobs are expected expired at their first poll)
        (
            {
                "PUBLISH_PASS_VERDICTS": "true",
                "UNMODERATED_SUGGESTION": "block",
                "UNKNOWN_JOB_GRACE_SECONDS": "3600",
            },
            5 * len(PROVIDER_NAMES),
        ),
    ],
    ids=["defaults", "pass-published-unmoderated-blocked"],
)
def test_simulated_run_ends_with_every_job_verdict_as_expected(
    settings: dict[str, str], published: int
) -> None:
    # When a script runs the simulation to its end (make run ARGS="--duration 60 --exit-when-done"), with the
    # functions' settings in its environment, which the local stack applies and the summary judges by
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "verdict_relay.cli",
            "local",
            "--simulate",
            "--duration",
            "60",
            "--port",
            "0",
            "--poll-interval",
            "1",
            "--exit-when-done",
            "--show-messages",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**_environment(), **settings},
        check=False,
    )

    # Then it exits 0 once done, with a summary: every job as expected, duplicates published once, expired as review
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = 5 * len(PROVIDER_NAMES)  # the scenario's default: 5 jobs a provider
    assert f"every simulated job has its verdict: all {jobs} as expected\n" in result.stdout
    summary = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert summary["ok"] is True
    assert summary["resolved"] == summary["jobs"] == jobs
    assert summary["published"] == published
    # each of them also printed as a subscriber gets it (--show-messages)
    shown = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"attributes"')]
    assert len(shown) == published
    assert all(
        m["attributes"]["suggestion"] == {"Type": "String", "Value": m["body"]["suggestion"]} for m in shown
    )
    assert {m["attributes"]["categories"]["Type"] for m in shown if "categories" in m["attributes"]} == {
        "String.Array"
    }
    assert summary["duplicated_jobs_published_once"] is True
    assert summary["expired_published_as_unmoderated"] is True
    assert summary["simulator_requests_over_rate_limit"] == 0


class Stack:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None

    def send(
        self, method: str, path: str, headers: dict[str, str], body: bytes | Iterable[bytes] | None = None
    ) -> tuple[int, Any]:
        """A request framed exactly as given (urllib sets Content-Length itself and cannot send chunks)."""
        connection = http.client.HTTPConnection(urlsplit(self.base_url).netloc, timeout=10)
        try:
            connection.request(
                method, path, body=body, headers=headers, encode_chunked=not isinstance(body, bytes)
            )
            response = connection.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            connection.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    providers = tmp_path_factory.mktemp("stack") / "providers.json"
    providers.write_text(json.dumps({"azure-review": {"callback": {"tokens": [TOKEN]}}}))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "verdict_relay.cli",
            "local",
            "--providers",
            str(providers),
            "--port",
            "0",
            "--duration",
            "90",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=_environment(),
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("Verdict Relay local stack: "), first
    yield Stack(first.split(": ", 1)[1].strip())
    process.terminate()
    process.wait(timeout=30)


def test_register_then_read_a_job_over_http(stack: Stack) -> None:
    status, body = stack.call(
        "POST", "/jobs", {"provider": "alibaba-mps", "job_id": "e2e-1", "metadata": {"content_id": "c-1"}}
    )
    assert status == 201
    assert body["status"] == "pending"

    status, body = stack.call("GET", "/jobs/alibaba-mps/e2e-1")
    assert status == 200
    assert body["metadata"] == {"content_id": "c-1"}


def test_callback_with_the_token_is_stored_and_readable(stack: Stack) -> None:
    payload = json.loads((ROOT / "events" / "providers" / "azure-review" / "job-callback.json").read_text())

    status, _ = stack.call("POST", f"/callbacks/azure-review?token={TOKEN}", payload)

    assert status == 200
    status, body = stack.call("GET", f"/jobs/azure-review/{payload['JobId']}")
    assert status == 200
    assert body["status"] == "succeeded"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/callbacks/azure-review", {"JobId": "x"}, 401, "unauthorized"),
        ("POST", f"/callbacks/azure-review?token={TOKEN}", b"{broken", 400, "malformed_payload"),
        ("POST", "/callbacks/acme", {}, 404, "unknown_provider"),
        ("POST", "/jobs", {"provider": "acme", "job_id": "x"}, 422, "invalid_request"),
        ("GET", "/jobs/alibaba-mps/unknown", None, 404, "not_found"),
    ],
)
def test_bad_requests_get_the_deployed_status_and_a_json_error(
    stack: Stack, method: str, path: str, body: Any, status: int, code: str
) -> None:
    got_status, got_body = stack.call(method, path, body)

    assert got_status == status
    assert got_body["error"]["code"] == code


@pytest.mark.parametrize(
    ("method", "path", "allowed"), [("PUT", "/jobs", "POST"), ("DELETE", "/jobs/alibaba-mps/x", "GET")]
)
def test_undeclared_methods_are_refused_with_405_and_the_allowed_ones(
    stack: Stack, method: str, path: str, allowed: str
) -> None:
    request = urllib.request.Request(stack.base_url + path, method=method)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=15)

    assert refused.value.code == 405
    assert refused.value.headers["Allow"] == allowed
    assert json.loads(refused.value.read())["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "tokens", [["wrong-token-xxxxxxxx", TOKEN], [TOKEN, TOKEN]], ids=["wrong-then-right", "right-twice"]
)
def test_a_callback_token_given_twice_in_the_url_is_refused_as_when_deployed(
    stack: Stack, tokens: list[str]
) -> None:
    # Given a callback URL with ?token= twice, the right token last (API Gateway passes every value in
    # multiValueQueryStringParameters, the last in queryStringParameters)
    payload = json.loads((ROOT / "events" / "providers" / "azure-review" / "job-callback.json").read_text())
    query = "&".join(f"token={token}" for token in tokens)

    # When it is posted to the local API
    status, body = stack.call("POST", f"/callbacks/azure-review?{query}", payload)

    # Then it is refused as the deployed function refuses it, not accepted on the last value
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert "more than once" in body["error"]["message"]


@pytest.mark.parametrize("length", ["abc", "-5", "+5"])
def test_a_content_length_that_is_not_a_byte_count_gets_a_json_400(stack: Stack, length: str) -> None:
    # Given a request whose Content-Length is not a count of bytes
    headers = {"Content-Type": "application/json", "Content-Length": length}

    # When it is sent to the local API
    status, body = stack.send("POST", "/jobs", headers)

    # Then it is answered with a JSON 400 saying so, not a dropped connection
    assert status == 400
    assert body["error"]["code"] == "bad_request"
    assert "Content-Length" in body["error"]["message"]


def test_a_chunked_request_body_reaches_the_handler_whole(stack: Stack) -> None:
    # Given a job registration sent with Transfer-Encoding: chunked, in several chunks, as API Gateway accepts it
    job = json.dumps({"provider": "huawei-video", "job_id": "e2e-chunked", "metadata": {"content_id": "c-9"}})
    chunks = [job[:10].encode(), job[10:25].encode(), job[25:].encode()]

    # When it is posted to the local API
    status, body = stack.send("POST", "/jobs", {"Content-Type": "application/json"}, iter(chunks))

    # Then the job is registered from the whole body and reads back
    assert status == 201, body
    status, body = stack.call("GET", "/jobs/huawei-video/e2e-chunked")
    assert (status, body["metadata"]) == (200, {"content_id": "c-9"})


def test_a_chunked_body_over_api_gateways_payload_limit_gets_its_413(stack: Stack) -> None:
    # Given a chunked body whose first chunk alone is over 10 MB, API Gateway's payload limit
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}

    # When it is sent to the local API (refused on the chunk's size line, before its data)
    status, body = stack.send("POST", "/jobs", headers, f"{10 * 1024 * 1024 + 1:x}\r\n{{}}".encode())

    # Then it gets API Gateway's own answer, as a body over the limit with a Content-Length does
    assert (status, body) == (413, {"message": "Request Too Long"})


def test_a_malformed_chunked_body_gets_a_json_400(stack: Stack) -> None:
    # Given a chunked body whose chunk size is not hexadecimal
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}

    # When it is sent to the local API
    status, body = stack.send("POST", "/jobs", headers, b"zz\r\n{}\r\n0\r\n\r\n")

    # Then it is answered with a JSON 400 naming the chunked encoding, not passed on as some other body
    assert status == 400
    assert body["error"]["code"] == "bad_request"
    assert "chunk" in body["error"]["message"]


def test_a_body_in_a_transfer_coding_other_than_chunked_gets_a_json_501(stack: Stack) -> None:
    # Given a body sent gzip-compressed as a transfer coding, which the local API does not decode
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "gzip, chunked"}

    # When it is sent to the local API
    status, body = stack.send("POST", "/jobs", headers, b"2\r\n{}\r\n0\r\n\r\n")

    # Then it is refused naming the coding, not passed on as an empty or still-encoded body
    assert status == 501
    assert body["error"]["code"] == "not_implemented"
    assert "gzip" in body["error"]["message"]


def test_a_gzip_compressed_body_is_decompressed_as_api_gateway_does(stack: Stack) -> None:
    # Given a job registration sent with Content-Encoding: gzip, which API Gateway decompresses for the function
    job = json.dumps({"provider": "huawei-video", "job_id": "e2e-gzip"}).encode()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

    # When it is posted to the local API
    status, body = stack.send("POST", "/jobs", headers, gzip.compress(job))

    # Then the job is registered from the decompressed body
    assert status == 201, body
    assert stack.call("GET", "/jobs/huawei-video/e2e-gzip")[0] == 200


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("gzip", b'{"provider": "huawei-video", "job_id": "e2e-not-gzip"}'), ("br", b"\x0b\x02\x80{}\x03")],
    ids=["not-compressed-as-said", "unsupported-coding"],
)
def test_a_body_not_decodable_as_its_content_encoding_says_gets_api_gateways_415(
    stack: Stack, encoding: str, body: bytes
) -> None:
    # When a body is sent with a Content-Encoding it is not in, or one API Gateway does not decode
    status, answer = stack.send(
        "POST", "/jobs", {"Content-Type": "application/json", "Content-Encoding": encoding}, body
    )

    # Then it gets API Gateway's own 415 and nothing is registered (not the body read as if it were plain)
    assert (status, answer) == (415, {"message": "Unsupported Media Type"})
    assert stack.call("GET", "/jobs/huawei-video/e2e-not-gzip")[0] == 404


def test_a_gzip_body_that_inflates_past_api_gateways_limit_gets_its_413(
    stack: Stack,
) -> None:
    # Given 10 KB of gzip that stands for 100 MB
    bomb = gzip.compress(b" " * 100 * 1024 * 1024)

    # When it is sent to the local API
    status, body = stack.send(
        "POST", "/jobs", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, bomb
    )

    # Then it gets API Gateway's answer for a body past its limit
    assert (status, body) == (413, {"message": "Request Too Long"})


@pytest.mark.parametrize(("method", "path"), [("GET", "/status"), ("POST", "/callbacks"), ("GET", "/jobs/x")])
def test_a_route_the_api_does_not_have_gets_api_gateways_missing_authentication_token(
    stack: Stack, method: str, path: str
) -> None:
    # When a request is sent to a path no route of the template declares
    status, body = stack.send(
        method, path, {"Content-Type": "application/json"}, b"{}" if method == "POST" else None
    )

    # Then it gets API Gateway's own answer for it, as the deployed stage gives it
    assert (status, body) == (403, {"message": "Missing Authentication Token"})


def test_a_request_with_two_different_content_lengths_gets_a_json_400(stack: Stack) -> None:
    # Given a job registration whose Content-Length is sent twice, with two different sizes
    job = json.dumps({"provider": "huawei-video", "job_id": "e2e-two-lengths"}).encode()
    head = (
        f"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(job)}\r\n"
    )
    request = head.encode() + f"Content-Length: {len(job) - 1}\r\nConnection: close\r\n\r\n".encode() + job

    # When it is sent to the local API
    with socket.create_connection(urlsplit(stack.base_url).netloc.split(":"), timeout=10) as connection:
        connection.sendall(request)
        answer = b"".join(iter(lambda: connection.recv(65536), b""))

    # Then it is refused naming Content-Length, and the job is not registered from either reading of the body
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", answer[:300]
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "bad_request"
    assert stack.call("GET", "/jobs/huawei-video/e2e-two-lengths")[0] == 404


def test_a_chunked_body_whose_chunks_add_up_past_api_gateways_limit_gets_its_413(stack: Stack) -> None:
    # Given a chunked body of two chunks, each under 10 MB, API Gateway's payload limit, together over it
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    size = 6 * 1024 * 1024
    body = (
        f"{size:x}\r\n".encode() + b" " * size + f"\r\n{size:x}\r\n{{}}".encode()
    )  # refused on the 2nd line

    # When it is sent to the local API
    status, answer = stack.send("POST", "/jobs", headers, body)

    # Then it gets API Gateway's own answer, as one chunk over the limit does, not the function's
    assert (status, answer) == (413, {"message": "Request Too Long"})


def test_a_callback_token_given_twice_once_empty_is_refused_as_when_deployed(stack: Stack) -> None:
    # Given a callback URL with ?token= twice, the first empty (API Gateway keeps a parameter with an empty value:
    # multiValueQueryStringParameters {"token": ["", <token>]})
    payload = json.loads((ROOT / "events" / "providers" / "azure-review" / "job-callback.json").read_text())

    # When it is posted to the local API
    status, body = stack.call("POST", f"/callbacks/azure-review?token=&token={TOKEN}", payload)

    # Then it is refused as the deployed function refuses a token given twice, not accepted on the one non-empty
    assert status == 401
    assert "more than once" in body["error"]["message"]
