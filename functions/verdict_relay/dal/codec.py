"""Compression and fingerprints for what the store keeps: the provider's raw payload and the verdict."""

from __future__ import annotations

import gzip
import hashlib
import json

from verdict_relay.models.verdict import Verdict


def compress(data: bytes) -> bytes:
    # mtime=0 keeps the bytes of equal payloads equal: a repeat stores the same bytes (under keys of its own in S3).
    return gzip.compress(data, compresslevel=6, mtime=0)


def decompress(data: bytes) -> bytes:
    return gzip.decompress(data)


def verdict_json(verdict: Verdict) -> bytes:
    return verdict.model_dump_json(exclude_none=False).encode("utf-8")


def outcome_fingerprint(verdict: Verdict) -> str:
    """What makes two terminal verdicts the same result: status, suggestion, findings and errors.

    Timestamps and metadata are left out, so the callback body and a later poll of the same finished job (which
    may differ in shape, e.g. Azure's callback and GET) count as one result, not a conflict.
    """
    outcome = verdict.model_dump(
        mode="json", include={"status", "suggestion", "findings", "error", "item_errors"}
    )
    canonical = json.dumps(outcome, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
