"""The project's exception hierarchy. Each error carries the HTTP status and the stable code it maps to.

Handlers turn these into responses in one place (``handlers/http_errors.py``); nothing matches message strings.
"""

from __future__ import annotations


class VerdictRelayError(Exception):
    """Base of every error the project raises on purpose."""

    status_code = 500
    code = "internal_error"
    public_message: str | None = None
    """What a response says instead of ``message``, for errors whose message is for the operator only."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientError(VerdictRelayError):
    """The caller sent something we cannot accept: always a 4xx, never stores anything."""

    status_code = 400
    code = "bad_request"


class MalformedPayloadError(ClientError):
    """A body that is not valid JSON (or XML, where accepted), or not valid UTF-8."""

    code = "malformed_payload"


class PayloadError(ClientError):
    """A well-formed payload that does not have the shape a provider's payload has.

    ``field`` names the offending field as a dotted path (``result.image_detail.0.time``).
    """

    status_code = 422
    code = "invalid_payload"

    def __init__(self, provider: str, field: str, problem: str) -> None:
        super().__init__(f"{provider} payload: field '{field}': {problem}")
        self.provider = provider
        self.field = field
        self.problem = problem


class UnsupportedMediaTypeError(ClientError):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLargeError(ClientError):
    status_code = 413
    code = "payload_too_large"


class UnknownProviderError(ClientError):
    status_code = 404
    code = "unknown_provider"

    def __init__(self, provider: str) -> None:
        super().__init__(f"unknown provider '{provider}'")


class NotFoundError(ClientError):
    status_code = 404
    code = "not_found"


class IdConflictError(ClientError):
    """A callback's verdict for an id the store holds as something it cannot be: an Azure reviewer's decision
    whose review id is the id of a job this deployment follows (review and job ids share one key space)."""

    status_code = 409
    code = "id_conflict"


class CallbackAuthError(ClientError):
    """A callback whose signature, token or timestamp does not check out. Messages never echo secrets."""

    status_code = 401
    code = "unauthorized"


class ConfigurationError(VerdictRelayError):
    """The deployment's configuration is invalid, naming the offending key. The message names the secret and
    the deployment's settings, so a response never carries it: callers get ``public_message``, the log the rest."""

    code = "configuration_error"
    public_message = "the service is misconfigured; nothing was acknowledged, send again"


class ConfigurationUnavailableError(ConfigurationError):
    """The providers document could not be read (Secrets Manager throttled, unreachable, or access lost)."""

    status_code = 503
    code = "configuration_unavailable"
    public_message = "the service's configuration could not be read; nothing was acknowledged, send again"


class StorageError(VerdictRelayError):
    """DynamoDB or S3 failed in a way a retry by the sender may fix (the sender gets a 5xx and re-sends).
    ``transient``: throttled, out of reach, timed out or failing on AWS's side, so the same call may succeed a
    moment later; not a refusal (denied access, a missing table) that would fail the same way."""

    status_code = 503
    code = "storage_unavailable"
    public_message = "storage is unavailable; try again"

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ArchiveError(StorageError):
    """S3 failed storing, tagging or reading a job's archived payload (a verdict or raw payload too large for its
    item). The table may be working: one job's payload out of S3's reach must not stop the other jobs.

    ``may_answer_again`` is false only when S3 said the object is gone (``NoSuchKey``): the operator's way out
    then is to fetch the result afresh, where any other failure (throttled, out of reach) may pass on retry."""

    def __init__(self, message: str, *, may_answer_again: bool = True) -> None:
        super().__init__(message)
        self.may_answer_again = may_answer_again


class ItemRefusedError(StorageError):
    """DynamoDB refused one item's write for good (a ValidationException: an item it will not take, such as one
    past its 400 KB). The table works: one job's item must not stop the other jobs."""


class PublishError(VerdictRelayError):
    """SNS refused or failed a publish; the verdict stays stored as unpublished. ``unavailable``: SNS could not
    be reached, timed out, throttled or failed on its side, so the next publish would most likely fail (and
    wait) the same way; otherwise SNS answered and refused this one message."""

    status_code = 503
    code = "publish_failed"

    def __init__(self, message: str, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


class ProviderApiError(VerdictRelayError):
    """A provider's HTTP API failed or answered with an error."""

    status_code = 502
    code = "provider_error"
